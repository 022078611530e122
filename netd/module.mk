# netd (daemon, netd.c) and cocoon-net (CLI, cocoon-net.c) share libnetd.a (every other
# .c file in netd/). Each binary is built once its main file exists.
netd_MAINS := $(wildcard netd/netd.c netd/cocoon-net.c)
ifneq ($(netd_MAINS),)
$(eval $(call static_lib,netd,$(filter-out netd/netd.c netd/cocoon-net.c,$(sort $(wildcard netd/*.c)))))
LIBS_ALL := $(BUILD)/lib/libnetd.a $(LIBS_ALL)
endif
ifneq ($(wildcard netd/netd.c),)
BINS_ALL += $(BIN)/netd
PROGRAMS += $(BIN)/netd
$(BIN)/netd_SRCS := netd/netd.c
endif
ifneq ($(wildcard netd/cocoon-net.c),)
BINS_ALL += $(BIN)/cocoon-net
PROGRAMS += $(BIN)/cocoon-net
$(BIN)/cocoon-net_SRCS := netd/cocoon-net.c
endif
