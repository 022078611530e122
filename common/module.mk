# libcocoon: the only code two processes share. It is linked last (everything uses it).
COMMON_SRCS := $(call only_filter,common/src/,$(sort $(wildcard common/src/*.c)))
$(eval $(call static_lib,cocoon,$(COMMON_SRCS)))
LIBS_ALL := $(BUILD)/lib/libcocoon.a
