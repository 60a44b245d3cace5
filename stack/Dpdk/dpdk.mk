# DPDK glue: build/libusertcp-dpdk.so, the only object in the project linked against DPDK.
# libusertcp.so does not link it; DpdkDevice loads it with NativeLibrary.TryLoad when a DPDK device is created.
#
# Included by the top-level Makefile (which defines BUILD), or standalone:
#   make -f stack/Dpdk/dpdk.mk BUILD=build
# Needs Debian's libdpdk-dev (DPDK 22.11) and pkg-config.

BUILD ?= build
DPDK_GLUE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
DPDK_PKG_CONFIG ?= pkg-config
DPDK_CFLAGS = $(shell $(DPDK_PKG_CONFIG) --cflags libdpdk)
DPDK_LIBS = $(shell $(DPDK_PKG_CONFIG) --libs libdpdk)

# Standalone use builds just the glue; when included, the includer's first target stays the default.
.DEFAULT_GOAL ?= dpdk-glue

.PHONY: dpdk-glue dpdk-glue-check
dpdk-glue: $(BUILD)/libusertcp-dpdk.so

# -fvisibility=hidden: only the utd_* functions marked UTD_EXPORT are exported.
# -Wl,-z,defs: an unresolved DPDK symbol fails the link instead of the first dlopen.
$(BUILD)/libusertcp-dpdk.so: $(DPDK_GLUE_DIR)/glue.c $(DPDK_GLUE_DIR)/dpdk.mk
	@mkdir -p $(BUILD)
	@$(DPDK_PKG_CONFIG) --exists libdpdk || { echo "libdpdk not found: apt-get install libdpdk-dev pkg-config" >&2; exit 1; }
	$(CC) -O2 -g -fPIC -shared -Wall -Wextra -fvisibility=hidden -Wl,-z,defs \
		$(DPDK_CFLAGS) -o $@ $< $(DPDK_LIBS)

# Lists the exported symbols (a quick check that the glue is complete).
dpdk-glue-check: $(BUILD)/libusertcp-dpdk.so
	nm -D --defined-only $< | grep ' T utd_'
