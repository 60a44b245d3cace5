# usertcp — top-level build. `make` builds build/libusertcp.so; `make setup` installs what a fresh machine needs;
# `make test` runs every test; `make demo` runs the main job. See README.md.

BUILD      := build
CC         ?= gcc
CXX        ?= g++
CFLAGS     := -std=gnu17 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra -Wno-missing-attributes
DOTNET     ?= dotnet
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

CSHIM_SRC  := $(wildcard cshim/*.c)
CSHIM_HDR  := $(wildcard cshim/*.h) cshim/intercept.def
CSHIM_OBJ  := $(patsubst cshim/%.c,$(BUILD)/cshim/%.o,$(CSHIM_SRC))
# Every input of the NativeAOT link: managed sources and projects (the native link step does not notice all of them
# by itself, so the rule below forces it whenever one changed).
MANAGED_SRC := $(shell find stack interpose aot -name '*.cs' -not -path '*/obj/*' -not -path '*/bin/*') \
               $(wildcard stack/*.csproj interpose/*.csproj aot/*.csproj) Directory.Build.props
AOT_NATIVE := aot/obj/Release/net9.0/linux-x64/native

.PHONY: all valgrind setup test test-c test-managed demo bench bench-stack clean
all: $(BUILD)/libusertcp.so $(BUILD)/libusertcp-dpdk.so

$(BUILD)/cshim/%.o: cshim/%.c $(CSHIM_HDR) | $(BUILD)/cshim
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/cshim:
	mkdir -p $@

$(BUILD)/libcshim.a: $(CSHIM_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/usertcp.map: cshim/intercept.def cshim/exports.extra scripts/gen-version-script.sh
	scripts/gen-version-script.sh $@

$(BUILD)/libusertcp.so: $(BUILD)/libcshim.a $(BUILD)/usertcp.map $(MANAGED_SRC)
	rm -f $(AOT_NATIVE)/libusertcp.so
	$(DOTNET) publish aot/UserTcp.Aot.csproj -c Release --nologo -v quiet \
	    -p:CShimArchive=$(abspath $(BUILD)/libcshim.a) -p:VersionScript=$(abspath $(BUILD)/usertcp.map) \
	    -o $(BUILD)/aot
	cp $(BUILD)/aot/libusertcp.so $@

# The same library with a GC heap valgrind can host (see aot/UserTcp.Aot.csproj); for scripts/callgrind-rpc.py.
valgrind: $(BUILD)/valgrind/libusertcp.so
$(BUILD)/valgrind/libusertcp.so: $(BUILD)/libcshim.a $(BUILD)/usertcp.map $(MANAGED_SRC)
	$(DOTNET) publish aot/UserTcp.Aot.csproj -c Release --nologo -v quiet -p:UserTcpValgrind=true \
	    -p:IntermediateOutputPath=obj/valgrind/ -p:OutputPath=bin/valgrind/ \
	    -p:CShimArchive=$(abspath $(BUILD)/libcshim.a) -p:VersionScript=$(abspath $(BUILD)/usertcp.map) \
	    -o $(BUILD)/valgrind/aot
	cp $(BUILD)/valgrind/aot/libusertcp.so $@
	# Symbols without DWARF next to the library: valgrind names the functions and skips the DWARF it cannot read.
	objcopy --strip-debug $(BUILD)/valgrind/aot/libusertcp.so.dbg $(BUILD)/valgrind/libusertcp.so.dbg
	rm -f $(BUILD)/valgrind/aot/libusertcp.so.dbg
	ln -sf ../libusertcp-dpdk.so $(BUILD)/valgrind/libusertcp-dpdk.so

setup:
	scripts/setup.sh

include stack/Dpdk/dpdk.mk
include tests/c/tests.mk

# The README's two commands set up a fresh machine themselves (setup is idempotent and quick once done).
test:
	$(MAKE) --no-print-directory setup
	$(MAKE) --no-print-directory all $(C_TEST_BINS)
	scripts/test-all.sh

test-managed:
	$(DOTNET) test tests/managed/UserTcp.Tests.csproj -c Release --nologo

demo:
	$(MAKE) --no-print-directory setup
	$(MAKE) --no-print-directory all
	scripts/demo.sh

bench: all $(BUILD)/tests/shim_bench $(BUILD)/tests/shim_loop
	scripts/bench-shim.sh

# Stack microbenchmarks (BenchmarkDotNet; several minutes) and bytes per idle connection. See docs/benchmarks.md.
bench-stack:
	$(DOTNET) run -c Release --project bench -- --filter '*'
	$(DOTNET) run -c Release --project bench -- idle-memory 100000

clean:
	rm -rf $(BUILD) */obj */bin tests/managed/obj tests/managed/bin bench/*/obj bench/*/bin
