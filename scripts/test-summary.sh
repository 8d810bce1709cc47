#!/usr/bin/env bash
# Prints one closing line for the whole suite, "summary: N passed, N failed", from the logs
# that `make test` keeps of the Rust tests and the browser journeys.
set -euo pipefail
cd "$(dirname "$0")/.."
rust=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' target/test-logs/unit.log)
browser=$(sed -n 's/^ *\([0-9]*\) passed (.*/\1/p' target/test-logs/e2e.log | tail -n 1)
passed=$(awk '{ p += $1 } END { print p + 0 }' <<<"$rust")
failed=$(awk '{ f += $2 } END { print f + 0 }' <<<"$rust")
echo "Rust tests: $passed passed; browser journeys: ${browser:-0} passed"
echo "summary: $((passed + ${browser:-0})) passed, $failed failed"
