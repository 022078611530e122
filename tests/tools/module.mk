# Test-only C programs that integration scenarios drive (e.g. the Kubernetes client against
# kubesim): tests/tools/<name>.c → $(BUILD)/tests/tools/<name>; scripts find them in $TOOLS.
TOOL_SRCS := $(call only_filter,tests/tools/,$(sort $(wildcard tests/tools/*.c)))
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRCS))
PROGRAMS += $(TOOLS)
$(foreach t,$(TOOL_SRCS),$(eval $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(t))_SRCS := $(t)))
