# libepoch (every .c in epoch-client/ but epoch.c) + the epoch CLI (epoch.c holds main()).
epoch_LIB_SRCS := $(filter-out epoch-client/epoch.c,$(sort $(wildcard epoch-client/*.c)))
ifneq ($(epoch_LIB_SRCS),)
$(eval $(call static_lib,epoch,$(epoch_LIB_SRCS)))
LIBS_ALL := $(BUILD)/lib/libepoch.a $(LIBS_ALL)
endif
ifneq ($(wildcard epoch-client/epoch.c),)
BINS_ALL += $(BIN)/epoch
PROGRAMS += $(BIN)/epoch
$(BIN)/epoch_SRCS := epoch-client/epoch.c
endif
