# netd (daemon, netd.c) and cocoon-net (CLI, cocoon-net.c) share libnetd.a.
ifneq ($(wildcard netd/netd.c),)
$(eval $(call static_lib,netd,$(filter-out netd/netd.c netd/cocoon-net.c,$(sort $(wildcard netd/*.c)))))
LIBS_ALL := $(BUILD)/lib/libnetd.a $(LIBS_ALL)
BINS_ALL += $(BIN)/netd $(BIN)/cocoon-net
PROGRAMS += $(BIN)/netd $(BIN)/cocoon-net
$(BIN)/netd_SRCS := netd/netd.c
$(BIN)/cocoon-net_SRCS := netd/cocoon-net.c
endif
