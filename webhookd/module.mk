# webhookd: topic files become libwebhookd.a (so unit tests can link them); webhookd.c holds main().
ifneq ($(wildcard webhookd/webhookd.c),)
$(eval $(call static_lib,webhookd,$(filter-out webhookd/webhookd.c,$(sort $(wildcard webhookd/*.c)))))
LIBS_ALL := $(BUILD)/lib/libwebhookd.a $(LIBS_ALL)
BINS_ALL += $(BIN)/webhookd
PROGRAMS += $(BIN)/webhookd
$(BIN)/webhookd_SRCS := webhookd/webhookd.c
endif
