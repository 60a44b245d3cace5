#!/usr/bin/env bash
# `make test`: every suite, then one closing line "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
scripts/run-c-tests.sh 2>&1 | tee -a "$log" || rc=1
echo "=== end to end (unmodified programs on usertcp over DPDK)"
tests/e2e/run.sh 2>&1 | tee -a "$log" || rc=1
echo "=== managed (xUnit)"
dotnet test tests/managed/UserTcp.Tests.csproj -c Release --nologo 2>&1 | tee -a "$log" | grep -vE '^\s*(Determining|All projects|UserTcp\.[A-Za-z]+ ->)' || rc=1
c_pass=$(sed -n 's/^C tests: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
c_fail=$(sed -n 's/^C tests: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -1)
m_pass=$(grep -oE 'Passed: +[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
m_fail=$(grep -oE 'Failed: +[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
e_pass=$(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
e_fail=$(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -1)
passed=$(( ${c_pass:-0} + ${e_pass:-0} + ${m_pass:-0} ))
failed=$(( ${c_fail:-0} + ${e_fail:-0} + ${m_fail:-0} ))
# A suite that crashed before reporting counts as a failure even if no test said so.
if [ $rc -ne 0 ] && [ $failed -eq 0 ]; then failed=1; fi
echo "tests: $passed passed, $failed failed"
[ $rc -eq 0 ] && [ $failed -eq 0 ]
