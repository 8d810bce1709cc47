#!/usr/bin/env bash
# Builds the `lifeline` server binary and the site it serves (the hydrating wasm, its JS glue,
# the stylesheet and the static assets) with plain `cargo` and `wasm-bindgen`: what
# `cargo leptos build` runs, without the 600-crate cargo-leptos itself to install first.
#
#   scripts/build-site.sh            debug:   target/debug/lifeline and target/site
#   scripts/build-site.sh --release  release: target/release/lifeline and target/site, the
#                                    wasm in the `wasm-release` profile and through wasm-opt,
#                                    the JS minified (tools from scripts/ensure-tools.sh --release)
#   … --frontend-only                the site alone, not the server (make bench's download size)
#
# The site's layout is the one the server's Leptos options name (Cargo.toml's
# `[[workspace.metadata.leptos]]`, `.cargo/config.toml`'s LEPTOS_OUTPUT_NAME):
#   target/site/pkg/lifeline.js     wasm-bindgen's glue (`--target web`)
#   target/site/pkg/lifeline.wasm   the `frontend` crate (Leptos's hydration script asks for
#                                   `<output-name>.wasm`, not wasm-bindgen's `_bg.wasm`)
#   target/site/pkg/lifeline.css    style/main.css
#   target/site/*                   public/*
# LEPTOS_SITE_ROOT overrides target/site, as it does for the server.
set -euo pipefail
cd "$(dirname "$0")/.."

OUTPUT_NAME=lifeline
SITE_ROOT=${LEPTOS_SITE_ROOT:-target/site}
PKG_DIR="$SITE_ROOT/pkg"
TOOLS_BIN="$PWD/target/tools/node_modules/.bin"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say() { printf '\033[1mbuild-site:\033[0m %s\n' "$*"; }
fail() { printf 'build-site: %s\n' "$*" >&2; exit 1; }

release=false
server=true
for option in "$@"; do
  case "$option" in
    --release) release=true ;;
    --frontend-only) server=false ;;
    *) fail "unknown option '$option' (expected --release, --frontend-only or nothing)" ;;
  esac
done

command -v wasm-bindgen >/dev/null || fail "wasm-bindgen is missing: run scripts/ensure-tools.sh"

if $release; then
  server_profile=(--release)
  wasm_profile=wasm-release
else
  server_profile=()
  wasm_profile=debug
fi

# The two builds share one target folder, so cargo runs them one after the other anyway; the
# server first, because `make run` and the tests wait for it.
if $server; then
  say "the server binary"
  cargo build -p server --bin lifeline "${server_profile[@]}"
fi

say "the browser side (frontend, wasm32-unknown-unknown, profile $wasm_profile)"
if $release; then
  cargo build -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release
else
  cargo build -p frontend --lib --target wasm32-unknown-unknown
fi
wasm="target/wasm32-unknown-unknown/$wasm_profile/frontend.wasm"
[ -f "$wasm" ] || fail "cargo did not produce $wasm"

# A fresh folder each time, so that nothing of an earlier build is served by mistake.
staging="$SITE_ROOT.new"
rm -rf "$staging"
mkdir -p "$staging/pkg"

say "wasm-bindgen → $PKG_DIR"
wasm-bindgen --target web --no-typescript --out-name "$OUTPUT_NAME" --out-dir "$staging/pkg" "$wasm"
mv "$staging/pkg/${OUTPUT_NAME}_bg.wasm" "$staging/pkg/$OUTPUT_NAME.wasm"

if $release; then
  [ -x "$TOOLS_BIN/wasm-opt" ] && [ -x "$TOOLS_BIN/terser" ] \
    || fail "release builds need wasm-opt and terser: run scripts/ensure-tools.sh --release"
  say "wasm-opt -Oz, terser"
  # The flags cargo-leptos passes: the features Rust's wasm32 target emits by default.
  "$TOOLS_BIN/wasm-opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$staging/pkg/$OUTPUT_NAME.wasm" -o "$staging/pkg/$OUTPUT_NAME.wasm"
  "$TOOLS_BIN/terser" "$staging/pkg/$OUTPUT_NAME.js" --module --compress --mangle \
    --output "$staging/pkg/$OUTPUT_NAME.js"
fi

cp style/main.css "$staging/pkg/$OUTPUT_NAME.css"
# A gzipped copy beside each file of the package: the server sends `lifeline.wasm.gz` to a
# browser that accepts gzip (a third of the bytes, for a phone on a slow network) and the
# file itself to one that does not.
say "gzip -9 → $PKG_DIR/*.gz"
gzip -9 --keep --force "$staging/pkg/$OUTPUT_NAME.wasm" "$staging/pkg/$OUTPUT_NAME.js" \
  "$staging/pkg/$OUTPUT_NAME.css"
cp -R public/. "$staging/"

rm -rf "$SITE_ROOT"
mv "$staging" "$SITE_ROOT"
if $server; then
  say "done: target/$($release && echo release || echo debug)/lifeline and $SITE_ROOT"
else
  say "done: $SITE_ROOT"
fi
