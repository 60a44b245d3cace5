#!/usr/bin/env bash
# Runs the GoogleTest suites in every mode they are meant for and prints one summary line.
#   forwarding_test:    kernel | LD_PRELOAD without offload | LD_PRELOAD with offload (kernel fds only)
#   socket_parity_test: kernel (the oracle) | LD_PRELOAD with offload (user-stack sockets)
#   shim_test:          runs its own programs with and without LD_PRELOAD
#   conn_parity_test:   connected sockets over the test network against a kernel peer (tests/c/run-conn-parity.sh):
#                       kernel with 198.18.0.2 configured (the oracle) | LD_PRELOAD with the user stack owning it
#   inet6_parity_test:  AF_INET6 sockets, both of the above ways (without and with the test network; UT_CONN_BIN)
#   packetdrill_test:   dlopen()s the library and drives it through packetdrill_interface_init (no LD_PRELOAD)
set -uo pipefail
cd "$(dirname "$0")/.."
B=$(pwd)/build
export UT_TEST_BUILD=$B
lib=$B/libusertcp.so
offload=(USERTCP_IP=198.18.0.2/24)
passed=0 failed=0 failures=()

suite() { # label, then the command
  local label=$1; shift
  local out
  echo "=== $label"
  out=$("$@" 2>&1)
  local rc=$?
  echo "$out" | grep -E '^\[  (FAILED|PASSED|SKIPPED) |^\[==========\]|Failure|error' | head -40
  local p f
  p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ $rc -ne 0 ]; then
    failures+=("$label")
    [ -z "$f" ] && failed=$((failed + 1)) && echo "$out" | tail -20
  fi
}

suite "forwarding (kernel)" "$B/tests/forwarding_test"
suite "forwarding (usertcp, no offload)" env LD_PRELOAD="$lib" "$B/tests/forwarding_test"
suite "forwarding (usertcp, offload on)" env LD_PRELOAD="$lib" "${offload[@]}" "$B/tests/forwarding_test" --gtest_filter='-ForwardingTcp.*'
suite "socket parity (kernel)" "$B/tests/socket_parity_test"
suite "socket parity (usertcp)" env LD_PRELOAD="$lib" "${offload[@]}" "$B/tests/socket_parity_test"
suite "shim" "$B/tests/shim_test"
suite "conn parity (kernel)" tests/c/run-conn-parity.sh kernel
suite "conn parity (usertcp)" tests/c/run-conn-parity.sh usertcp
suite "inet6 parity (kernel)" "$B/tests/inet6_parity_test"
suite "inet6 parity (usertcp)" env LD_PRELOAD="$lib" "${offload[@]}" "$B/tests/inet6_parity_test"
suite "inet6 conn parity (kernel)" env UT_CONN_BIN="$B/tests/inet6_parity_test" tests/c/run-conn-parity.sh kernel
suite "inet6 conn parity (usertcp)" env UT_CONN_BIN="$B/tests/inet6_parity_test" tests/c/run-conn-parity.sh usertcp
suite "packetdrill interface" env -u USERTCP_IP "$B/tests/packetdrill_test"

echo "C tests: $passed passed, $failed failed"
if ((${#failures[@]})); then echo "failing suites: ${failures[*]}"; exit 1; fi
