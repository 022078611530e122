# One cmocka binary per tests/unit/test-<module>.c, linked against every library.
UNIT_SRCS := $(call only_filter,tests/unit/test-,$(sort $(wildcard tests/unit/test-*.c)))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
PROGRAMS += $(UNIT_TESTS)
$(foreach t,$(UNIT_SRCS),$(eval $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(t))_SRCS := $(t)))
$(foreach t,$(UNIT_TESTS),$(eval $(t)_LDLIBS := $(CMOCKA_LIBS)))
$(BUILD)/obj/tests/unit/%.o: ALL_CFLAGS += $(CMOCKA_CFLAGS) -Itests/unit
