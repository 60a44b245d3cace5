# C side of the DPDK benchmark: make -f bench/dpdk/bench.mk [BUILD=build]  -> $(BUILD)/dpdk-bench
BUILD ?= build
$(BUILD)/dpdk-bench: bench/dpdk/bench.c
	@mkdir -p $(BUILD)
	$(CC) -O2 -g -Wall -o $@ $< $(shell pkg-config --cflags libdpdk) $(shell pkg-config --libs libdpdk)
