# probed: topic files become libprobed.a (so unit tests can link them); probed.c holds main().
ifneq ($(wildcard probed/probed.c),)
$(eval $(call static_lib,probed,$(filter-out probed/probed.c,$(sort $(wildcard probed/*.c)))))
LIBS_ALL := $(BUILD)/lib/libprobed.a $(LIBS_ALL)
BINS_ALL += $(BIN)/probed
PROGRAMS += $(BIN)/probed
$(BIN)/probed_SRCS := probed/probed.c
endif
