# operatord: topic files become liboperatord.a (so unit tests can link them); operatord.c holds main().
ifneq ($(wildcard operatord/operatord.c),)
$(eval $(call static_lib,operatord,$(filter-out operatord/operatord.c,$(sort $(wildcard operatord/*.c)))))
LIBS_ALL := $(BUILD)/lib/liboperatord.a $(LIBS_ALL)
BINS_ALL += $(BIN)/operatord
PROGRAMS += $(BIN)/operatord
$(BIN)/operatord_SRCS := operatord/operatord.c
endif
