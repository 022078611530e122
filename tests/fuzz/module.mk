# One libFuzzer harness per parser: tests/fuzz/fuzz-<parser>.c, seeds in corpus/<parser>/.
# Only built in the SAN=fuzz variant (clang); `make fuzz` takes care of that.
ifeq ($(SAN),fuzz)
FUZZ_SRCS := $(call only_filter,tests/fuzz/fuzz-,$(sort $(wildcard tests/fuzz/fuzz-*.c)))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(FUZZ_SRCS))
PROGRAMS += $(FUZZERS)
$(foreach t,$(FUZZ_SRCS),$(eval $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(t))_SRCS := $(t)))
$(foreach t,$(FUZZERS),$(eval $(t)_LDLIBS := -fsanitize=fuzzer))
endif
