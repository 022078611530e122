# Benchmarks print figures and ratios against a reference measured in the same run.
BENCH_SRCS := $(call only_filter,bench/bench-,$(sort $(wildcard bench/bench-*.c)))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
PROGRAMS += $(BENCHES)
$(foreach t,$(BENCH_SRCS),$(eval $(patsubst bench/%.c,$(BUILD)/bench/%,$(t))_SRCS := $(t)))
