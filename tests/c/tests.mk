# GoogleTest suites for the C shim and POSIX parity (included by the top-level Makefile).
TEST_BUILD := $(BUILD)/tests
CXXFLAGS_T := -std=gnu++17 -O1 -g -Wall -Wextra -pthread
GTEST_LIBS := -lgtest -lgtest_main -pthread -ldl
PROBES     := probe_deferred probe_fork probe_calls probe_exec probe_fdnumbers
C_SUITES   := forwarding_test socket_parity_test shim_test conn_parity_test packetdrill_test inet6_parity_test
# Helper programs that are not probes (no probe_common.h): the kernel peer of conn_parity_test.
C_PROGS    := peer

$(TEST_BUILD) $(TEST_BUILD)/progs:
	mkdir -p $@

$(TEST_BUILD)/helpers.o: tests/c/helpers.cc tests/c/helpers.h | $(TEST_BUILD)
	$(CXX) $(CXXFLAGS_T) -c $< -o $@

$(TEST_BUILD)/%: tests/c/%.cc $(TEST_BUILD)/helpers.o tests/c/helpers.h tests/c/peer_client.h | $(TEST_BUILD)
	$(CXX) $(CXXFLAGS_T) $< $(TEST_BUILD)/helpers.o -o $@ $(GTEST_LIBS)

$(TEST_BUILD)/progs/%: tests/c/progs/%.c tests/c/progs/probe_common.h | $(TEST_BUILD)/progs
	$(CC) -std=gnu17 -O1 -g -Wall $< -o $@ -ldl

# Fortified on purpose: its read/recv/recvfrom/poll must become the __*_chk variants.
$(TEST_BUILD)/progs/probe_fortify: tests/c/progs/probe_fortify.c tests/c/progs/probe_common.h | $(TEST_BUILD)/progs
	$(CC) -std=gnu17 -O2 -D_FORTIFY_SOURCE=2 -Wall $< -o $@ -ldl

$(TEST_BUILD)/progs/peer: tests/c/progs/peer.c | $(TEST_BUILD)/progs
	$(CC) -std=gnu17 -O1 -g -Wall $< -o $@

C_TEST_BINS := $(addprefix $(TEST_BUILD)/,$(C_SUITES)) $(addprefix $(TEST_BUILD)/progs/,$(PROBES) probe_fortify $(C_PROGS))

$(TEST_BUILD)/shim_bench: bench/shim/shim_bench.cc | $(TEST_BUILD)
	$(CXX) -std=gnu++17 -O2 -g $< -o $@ -lbenchmark -pthread

test-c: all $(C_TEST_BINS)
	scripts/run-c-tests.sh

$(TEST_BUILD)/shim_loop: bench/shim/shim_loop.c | $(TEST_BUILD)
	$(CC) -std=gnu17 -O2 -g $< -o $@
