# Cocoon suite — one non-recursive GNU Makefile. Each folder contributes a module.mk that
# appends to the variables below; everything lands in $(BUILD) (binaries in $(BUILD)/bin).
#
# Variants of the same tree are built by re-invoking this Makefile with another BUILD
# directory and flags (never by recursing into folders):
#   SAN=asan  ASan+UBSan build (make check-asan)
#   SAN=fuzz  clang + libFuzzer instrumentation (make fuzz)

.DEFAULT_GOAL := all
SHELL := /bin/bash

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?=
WERROR  ?= $(if $(CI),1,)
FUZZ_SECONDS ?= 10
# ONLY="quantity meta": build just these common modules (plus log and buf), their unit
# tests, fuzzers and benches, and no daemons — for working on one module at a time.
ONLY    ?=
# $(call only_filter,PREFIX,FILES): FILES, or with ONLY set those named PREFIX<m>.c,
# PREFIX<m>_*.c or PREFIX<m>-*.c (so "http" does not pick up "httpc").
only_filter = $(if $(ONLY),$(filter $(foreach m,$(ONLY) log buf,$(1)$(m).c $(1)$(m)_%.c $(1)$(m)-%.c),$(2)),$(2))

# pkg-config for every library; http-parser and wslay ship no .pc file in Debian, so
# they fall back to plain -l flags.
PKGS := libsystemd libcurl jansson libssh openssl nanomsg yaml-0.1 zlib libnl-route-3.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) \
	$(shell pkg-config --libs http-parser 2>/dev/null || echo -lhttp_parser) \
	$(shell pkg-config --libs wslay 2>/dev/null || echo -lwslay) -lm
CMOCKA_CFLAGS := $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
	-Wformat=2 -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS ?= -O2 -g
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)
ALL_CFLAGS := -std=gnu11 $(WARN) $(if $(WERROR),-Werror,) -D_GNU_SOURCE -fPIE \
	-DCOCOON_VERSION='"$(VERSION)"' \
	-Icommon/include $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
ALL_LDFLAGS := -pie $(LDFLAGS)

ifeq ($(SAN),asan)
ALL_CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1
ALL_LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SAN),fuzz)
CC := clang
ALL_CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -O1 -DFUZZING
ALL_LDFLAGS += -fsanitize=address,undefined
endif

BIN := $(BUILD)/bin
# V=1 shows full command lines.
Q := $(if $(V),,@)

# Filled in by the module.mk files.
LIBS_ALL :=        # static libraries, in link order (dependents first)
PROGRAMS :=        # every linked program (daemons, tests, fuzzers, benches)
BINS_ALL :=        # $(BIN)/<name>
UNIT_TESTS :=      # $(BUILD)/tests/unit/test-*
FUZZERS :=         # $(BUILD)/tests/fuzz/fuzz-*
BENCHES :=         # $(BUILD)/bench/*
INTEGRATION_TESTS := $(sort $(wildcard tests/integration/[0-9]*.sh))

# A static library from the .c files of a folder: $(call static_lib,name,srcs)
define static_lib
$(1)_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$(2))
$(BUILD)/lib/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	@rm -f $$@
	$(if $(V),,@echo "  AR      $$@")
	$(Q)$$(AR) rcs $$@ $$^
endef

# A program linked against every library: $(call program,path). Module files only
# declare `PROGRAMS += path`, `path_SRCS := …` and optionally `path_LDLIBS := …`; the rules
# are generated after every module is read, when LIBS_ALL is complete.
define program
$(1): $$(patsubst %.c,$(BUILD)/obj/%.o,$($(1)_SRCS)) $(LIBS_ALL)
	@mkdir -p $$(@D)
	$(if $(V),,@echo "  LINK    $$@")
	$(Q)$$(CC) $$(ALL_CFLAGS) $$(ALL_LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBS_ALL) $$(PKG_LIBS) $($(1)_LDLIBS)
endef

include common/module.mk
ifeq ($(ONLY),)
include epoch-client/module.mk
include webhookd/module.mk
include operatord/module.mk
include vkd/module.mk
include probed/module.mk
include netd/module.mk
endif
include tests/unit/module.mk
include tests/fuzz/module.mk
include bench/module.mk
include tests/tools/module.mk

$(foreach p,$(PROGRAMS),$(eval $(call program,$(p))))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(if $(V),,@echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

.PHONY: all deps test demo check-unit check-integration check-asan fuzz fuzz-build bench \
	install clean help format tests-build

all: $(BINS_ALL)                 ## build every daemon and CLI into build/bin/

deps:                            ## install the Debian packages the build, tests and demo need
	@./scripts/install-deps.sh

# Builds run in parallel (JOBS); test runners never do, so their output stays readable.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

tests-build: all $(UNIT_TESTS) $(TOOLS)

check-unit:                      ## run the cmocka unit tests
	@$(MAKE) --no-print-directory -j$(JOBS) tests-build
	@scripts/run-tests.sh $(if $(SAN),$(SAN)-)unit $(BUILD) $(UNIT_TESTS)

check-integration:               ## run the integration scenarios (may need root and netns)
	@$(MAKE) --no-print-directory -j$(JOBS) all $(TOOLS)
	@BIN=$(abspath $(BIN)) TOOLS=$(abspath $(BUILD)/tests/tools) BUILD=$(abspath $(BUILD)) \
		scripts/run-tests.sh \
		$(if $(SAN),$(SAN)-)integration $(BUILD) $(INTEGRATION_TESTS)

check-asan:                      ## unit + integration tests built with ASan+UBSan
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=asan check-unit; rc=$$?; \
	 $(MAKE) --no-print-directory BUILD=build/asan SAN=asan check-integration || rc=1; exit $$rc

fuzz-build: $(FUZZERS)
fuzz:                            ## run every fuzz harness for FUZZ_SECONDS each
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/fuzz SAN=fuzz fuzz-build
	@scripts/run-fuzz.sh build/fuzz $(FUZZ_SECONDS)

bench:                           ## run the benchmarks (figures, not pass/fail)
	@$(MAKE) --no-print-directory -j$(JOBS) all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done
	@for b in bench/*.sh; do [ -e "$$b" ] || continue; echo "== $$b"; \
		BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) $$b || exit 1; done

test: deps                       ## everything CI runs: deps, build, unit, integration, asan, fuzz
	@rm -rf $(BUILD)/results build/asan/results build/fuzz/results
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory check-unit; \
	 $(MAKE) --no-print-directory check-integration; \
	 $(MAKE) --no-print-directory check-asan; \
	 $(MAKE) --no-print-directory fuzz; \
	 scripts/summary.sh $(BUILD)/results build/asan/results build/fuzz/results

demo: deps                       ## run the suite locally on embedded defaults
	@$(MAKE) --no-print-directory -j$(JOBS) all $(TOOLS)
	@scripts/demo.sh $(BUILD)

install: all                     ## install binaries, units and manifests under DESTDIR/PREFIX
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BINS_ALL) $(DESTDIR)$(PREFIX)/bin/
	for u in systemd/*.service systemd/*.socket; do [ -e "$$u" ] || continue; \
		sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' "$$u" >$(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u); \
		chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u); done

format:                          ## reformat the C sources with clang-format
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:                           ## remove every build directory
	rm -rf build

help:                            ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^[^:]*:([a-z-]+):.*## /\1\t/; s/^([a-z-]+):.*## /\1\t/' | \
		awk -F'\t' '{ printf "  %-18s %s\n", $$1, $$2 }'
	@echo "  variables: BUILD=$(BUILD) PREFIX=$(PREFIX) DESTDIR= SAN=asan|fuzz WERROR=1 FUZZ_SECONDS=$(FUZZ_SECONDS)"
