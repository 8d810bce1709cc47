#!/usr/bin/env bash
# `make bench`, part 8 (issue 17): time to interactive of the sign-in page and the codes sheet
# in Chromium with the CPU throttled 4×, over loopback and "Slow 4G", against a given build:
#
#   scripts/bench-tti.sh target/release/lifeline target/bench-site
#   scripts/bench-tti.sh target/debug/lifeline target/site
#
# Runs end2end/perf/tti.spec.ts (Playwright, end2end/perf.config.ts), which prints a Markdown
# fragment and writes it to $LIFELINE_BENCH_OUT/8-tti.md when that is set. Takes a few minutes
# for a release build, much longer for a debug one (its wasm is many times larger). Exits
# non-zero when the measurement fails.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'bench-tti: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || fail "usage: scripts/bench-tti.sh <lifeline binary> <site root>"
[ -x "$1" ] || fail "$1 is not an executable"
[ -f "$2/pkg/lifeline.wasm" ] || fail "$2 holds no site (no pkg/lifeline.wasm): run scripts/build-site.sh"
# The server runs in a temporary folder: absolute paths, which the report shows relative to here.
binary=$(realpath "$1")
site_root=$(realpath "$2")

cd end2end
LIFELINE_BIN=$binary LIFELINE_E2E_SITE_ROOT=$site_root npx playwright test --config perf.config.ts
