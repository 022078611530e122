# vkd: topic files become libvkd.a (so unit tests can link them); vkd.c holds main().
ifneq ($(wildcard vkd/vkd.c),)
$(eval $(call static_lib,vkd,$(filter-out vkd/vkd.c,$(sort $(wildcard vkd/*.c)))))
LIBS_ALL := $(BUILD)/lib/libvkd.a $(LIBS_ALL)
BINS_ALL += $(BIN)/vkd
PROGRAMS += $(BIN)/vkd
$(BIN)/vkd_SRCS := vkd/vkd.c
endif
