# libepoch + the epoch CLI (epoch.c holds main()).
ifneq ($(wildcard epoch-client/epoch.c),)
$(eval $(call static_lib,epoch,$(filter-out epoch-client/epoch.c,$(sort $(wildcard epoch-client/*.c)))))
LIBS_ALL := $(BUILD)/lib/libepoch.a $(LIBS_ALL)
BINS_ALL += $(BIN)/epoch
PROGRAMS += $(BIN)/epoch
$(BIN)/epoch_SRCS := epoch-client/epoch.c
endif
