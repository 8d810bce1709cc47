#!/usr/bin/env bash
# `make bench`: measures the figures issues 8, 14 and 17 set targets for, on this machine,
# and rewrites BENCHMARKS.md. The noisy figures are repeated (redemption and the flood: five
# runs each) and reported as their median and spread.
#
#   1. redemption vs. one bare argon2id verification   cargo bench -p domain --bench redemption
#   2. the Casbin gate at 10,000 organizations          cargo bench -p domain --bench gate
#   3. admin pages at 100,000 members, 1,000,000 events cargo bench -p domain --bench admin_pages
#   4. flood of wrong passwords against the binary      cargo bench -p server --bench flood
#   5. the browser's download, gzipped                  scripts/build-site.sh --release --frontend-only
#   6. guesses evaluated under a 200-way burst          cargo bench -p domain --bench burst
#   7. security mail: outbox throughput to a local SMTP server, and a redemption's time with
#      the delivery worker idle and busy                 cargo bench -p server --bench mail
#   8. time to interactive in Chromium, CPU throttled 4× scripts/bench-tti.sh (Playwright),
#      against the release binary and the release frontend of part 5
#
# Everything is built first and measured after, so that no compiler shares the CPU with a
# measurement. Each part leaves a Markdown fragment in target/bench/; a part that fails or
# cannot run leaves a note saying so instead of a figure. Not part of `make test`.
#
# Environment:
#   LIFELINE_BENCH_POSTGRES_URL  PostgreSQL for parts 3 and 7 (default postgres://postgres@127.0.0.1:5432/test);
#                                a database is created for the run and dropped after it
#   LIFELINE_BENCH_MEMBERS, LIFELINE_BENCH_EVENTS   scale of part 3 (default 100000, 1000000)
#   BENCH_PARTS                  which parts to run, e.g. "1 2" (default "1 2 3 4 5 6 7 8"); the
#                                report then says the others were not run
#   LIFELINE_BENCH_SERVER_ENV    extra "NAME=value ..." for the server of part 4, to diagnose
#                                (the report then says it is not the server as shipped)
#   BENCH_SKIP_WASM_BUILD=1      measure whatever target/site/pkg holds instead of building the
#                                release frontend (the report says which build it measured)
set -uo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
ROOT=$PWD
OUT=$ROOT/target/bench
REPORT=$ROOT/BENCHMARKS.md
PARTS=${BENCH_PARTS:-1 2 3 4 5 6 7 8}
export LIFELINE_BENCH_OUT=$OUT

say() { printf '\033[1mbench:\033[0m %s\n' "$*"; }
wants() { [[ " $PARTS " == *" $1 "* ]]; }

rm -rf "$OUT"
mkdir -p "$OUT"

started=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cores=$(grep -c '^processor' /proc/cpuinfo)
ram=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
kernel=$(uname -r)
rustc_version=$(rustc --version)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " plus uncommitted changes" || true)

# A part that could not give its figures says so, with the end of its log.
not_measured() {
  local fragment=$1 title=$2 why=$3 log=${4:-}
  {
    printf '## %s\n\n**Not measured:** %s\n' "$title" "$why"
    if [ -n "$log" ] && [ -s "$log" ]; then
      printf '\nLast lines of its output:\n\n```\n'
      tail -n 15 "$log"
      printf '```\n'
    fi
  } >"$OUT/$fragment.md"
}

# --- Build everything first ------------------------------------------------------------
build_ok=1
if wants 1 || wants 2 || wants 3 || wants 4 || wants 6 || wants 7; then
  say "building the benchmarks and the release lifeline binary (cargo bench --no-run)"
  # One package at a time, as the parts run them: features unify per command, and a build
  # of both at once would be rebuilt by the first part that names one.
  { cargo bench --no-run -p domain && cargo bench --no-run -p server; } >"$OUT/build.log" 2>&1 || build_ok=0
fi

# Part 7 sends to scripts/smtp-sink.py, which runs on aiosmtpd in target/tools/smtp-venv.
if wants 7 && ! target/tools/smtp-venv/bin/python -c 'import aiosmtpd' >/dev/null 2>&1; then
  say "installing the SMTP server part 7 sends to (scripts/ensure-tools.sh --test)"
  scripts/ensure-tools.sh --test >"$OUT/smtp-tools.log" 2>&1 || true
fi

wasm_build="none"
if wants 5 || wants 8; then
  if [ "${BENCH_SKIP_WASM_BUILD:-0}" = 1 ]; then
    wasm_build="skipped by BENCH_SKIP_WASM_BUILD=1"
  else
    say "building the release frontend (wasm-release profile, wasm-opt) into target/bench-site"
    scripts/ensure-tools.sh --release >"$OUT/wasm-build.log" 2>&1 || true
    # Its own site root: target/site stays what the development server and browser tests use.
    if LEPTOS_SITE_ROOT="target/bench-site" \
      scripts/build-site.sh --release --frontend-only >>"$OUT/wasm-build.log" 2>&1; then
      wasm_build="release"
    else
      wasm_build="failed"
    fi
  fi
fi

# --- Measure ---------------------------------------------------------------------------
run() {
  local part=$1 fragment=$2 title=$3
  shift 3
  if ! wants "$part"; then
    not_measured "$fragment" "$title" "not run (BENCH_PARTS=\"$PARTS\")."
    return
  fi
  if [ "$build_ok" = 0 ]; then
    not_measured "$fragment" "$title" "the benchmarks did not build." "$OUT/build.log"
    return
  fi
  say "part $part: $*"
  local t0=$SECONDS
  if ! "$@" >"$OUT/$fragment.log" 2>&1; then
    not_measured "$fragment" "$title" "the benchmark failed after $((SECONDS - t0)) s." "$OUT/$fragment.log"
  elif [ ! -s "$OUT/$fragment.md" ]; then
    not_measured "$fragment" "$title" "the benchmark wrote no figures." "$OUT/$fragment.log"
  fi
  say "part $part took $((SECONDS - t0)) s"
}

run 1 1-redemption "1. Backup-code redemption vs. one bare argon2id verification" \
  cargo bench -p domain --bench redemption
run 2 2-gate "2. The gate at scale (Casbin, 10,000 organizations)" \
  cargo bench -p domain --bench gate
run 3 3-admin-pages "3. Admin pages at scale" \
  cargo bench -p domain --bench admin_pages
run 4 4-flood "4. Flood resilience" \
  cargo bench -p server --bench flood
run 6 6-burst "6. Guesses evaluated per lock window under a 200-way burst" \
  cargo bench -p domain --bench burst
run 7 7-mail "7. Security mail: outbox throughput, and redemption with the worker busy" \
  cargo bench -p server --bench mail

# Part 5: what the browser downloads (wasm + JS), each file gzip -9.
bundle() {
  local title="5. The browser's download (wasm + JS, gzipped)" pkg kind
  if ! wants 5; then
    not_measured 5-bundle "$title" "not run (BENCH_PARTS=\"$PARTS\")."
    return
  fi
  if [ "$wasm_build" = release ]; then
    pkg=$ROOT/target/bench-site/pkg
    kind="a release build made by this run (\`scripts/build-site.sh --release --frontend-only\`: profile \`wasm-release\`, opt-level z, LTO, wasm-opt -Oz, JS through terser)"
  elif [ -f "$ROOT/target/site/pkg/lifeline.wasm" ]; then
    pkg=$ROOT/target/site/pkg
    kind="**the existing \`target/site/pkg\`, not a release build made by this run** (release frontend build: $wasm_build); if that is a debug build the figure is far above what users download"
  else
    not_measured 5-bundle "$title" "no release frontend build (${wasm_build}) and no target/site/pkg." "$OUT/wasm-build.log"
    return
  fi
  local total=0 rows="" raw gz f
  for f in "$pkg"/*.wasm "$pkg"/*.js; do
    [ -f "$f" ] || continue
    raw=$(stat -c %s "$f")
    gz=$(gzip -9 -c "$f" | wc -c)
    total=$((total + gz))
    rows+="| \`$(basename "$f")\` | $(awk -v b="$raw" 'BEGIN { printf "%.1f KB", b / 1000 }') | $(awk -v b="$gz" 'BEGIN { printf "%.1f KB", b / 1000 }') |"$'\n'
  done
  local verdict
  verdict=$(awk -v b="$total" 'BEGIN {
    kb = b / 1000
    if (kb <= 150) printf "**met** (%.1f KB ≤ 150 KB)", kb
    else printf "**missed** by %.1f KB (%.1f× the target of 150 KB)", kb - 150, kb / 150 }')
  {
    printf '## %s\n\n' "$title"
    printf 'Measured: %s. Sizes in KB of 1,000 bytes; gzip -9 of each file.\n\n' "$kind"
    printf '| file | size | gzipped |\n| --- | --- | --- |\n%s' "$rows"
    printf '| **total** | | **%s** |\n\n' "$(awk -v b="$total" 'BEGIN { printf "%.1f KB", b / 1000 }')"
    printf -- '- Target ≤ 150 KB gzipped (issue 17): %s\n' "$verdict"
  } >"$OUT/5-bundle.md"
}
bundle

# Part 8: what a person waits for in the browser, on the release build of parts 4 and 5.
tti() {
  local title="8. Time to interactive in Chromium (CPU throttled 4×)"
  if ! wants 8; then
    not_measured 8-tti "$title" "not run (BENCH_PARTS=\"$PARTS\")."
    return
  fi
  if [ "$wasm_build" != release ] || [ ! -x "$ROOT/target/release/lifeline" ]; then
    not_measured 8-tti "$title" "no release build to measure (release frontend: $wasm_build)." "$OUT/wasm-build.log"
    return
  fi
  say "part 8: scripts/bench-tti.sh"
  local t0=$SECONDS
  if ! scripts/bench-tti.sh target/release/lifeline target/bench-site >"$OUT/8-tti.log" 2>&1; then
    not_measured 8-tti "$title" "the measurement failed after $((SECONDS - t0)) s." "$OUT/8-tti.log"
  elif [ ! -s "$OUT/8-tti.md" ]; then
    not_measured 8-tti "$title" "the measurement wrote no figures." "$OUT/8-tti.log"
  fi
  say "part 8 took $((SECONDS - t0)) s"
}
tti

# --- The report ------------------------------------------------------------------------
finished=$(date -u '+%H:%M UTC')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
  cat <<EOF
# Lifeline benchmarks

Written by \`make bench\` (scripts/bench.sh); every figure below comes from one run of it on
the machine described here. Do not edit by hand: run \`make bench\` again.

- Machine: ${cpu}, ${cores} cores, ${ram} RAM (from /proc); Linux ${kernel}
- Date: ${started} to ${finished}; load average before ${load_before}, after ${load_after}
- Command: \`make bench\` (parts: ${PARTS}); ${rustc_version}; commit ${commit}${dirty}
- Security parameters as shipped: argon2id m=19 MiB, t=2, p=1. No figure was bought by
  weakening them.
- The machine is shared and noisy: each figure is measured next to its baseline in the same
  run (interleaved rounds, idle just before load), and the ratios are the figures to trust.
  Release builds (the \`bench\` profile); the benchmarks build \`domain\` with its \`testing\`
  feature (fresh databases), which adds test helpers and changes nothing measured.

EOF
  # Every verdict (and every part not measured) at a glance, then the parts in full.
  printf '## Summary\n\n'
  for f in 1-redemption 2-gate 3-admin-pages 4-flood 5-bundle 6-burst 7-mail 8-tti; do
    part=${f%%-*}
    if grep -q '^\*\*Not measured:\*\*' "$OUT/$f.md"; then
      printf -- '- Part %s: %s\n' "$part" "$(grep -m1 '^\*\*Not measured:\*\*' "$OUT/$f.md")"
    else
      grep -E '^- (.*\*\*(met|missed)\*\*|Measured:)' "$OUT/$f.md" | sed "s/^- /- Part $part: /"
    fi
  done
  printf '\n'
  for f in 1-redemption 2-gate 3-admin-pages 4-flood 5-bundle 6-burst 7-mail 8-tti; do
    cat "$OUT/$f.md"
    printf '\n'
  done
} >"$REPORT"
say "wrote $REPORT"
