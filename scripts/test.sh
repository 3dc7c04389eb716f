#!/usr/bin/env bash
# Runs every test verbosely into .test.log, prints the package lines and any
# failure, and ends with one line counting the tests: "tests: N passed, N failed, N skipped".
set -uo pipefail
log=.test.log
go test -v "$@" ./... >"$log" 2>&1
status=$?
grep -E '^(ok|FAIL|\?)\s' "$log"
if [ $status -ne 0 ]; then
  echo "---- failures (full log in $log) ----"
  grep -nE -- '--- FAIL|^panic:|^FAIL|\[build failed\]|_test\.go:[0-9]+:|^\s+Error' "$log" | head -200
  echo "---- last lines ----"
  tail -60 "$log"
fi
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if [ $status -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
