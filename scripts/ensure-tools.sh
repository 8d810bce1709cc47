#!/usr/bin/env bash
# Installs what building, running and testing Lifeline needs, and only what is missing.
# Idempotent: on a machine that has everything it checks versions and returns in a second.
#
#   scripts/ensure-tools.sh          the build tools (wasm target, wasm-bindgen): enough for
#                                    scripts/build-site.sh, `make run` and `make build`
#   scripts/ensure-tools.sh --test   the same, plus Chromium, the end-to-end test packages and
#                                    the SMTP server the mail tests send to (PyPI aiosmtpd)
#   scripts/ensure-tools.sh --release  the same, plus wasm-opt and terser for optimised wasm
#                                    and JS (npm binaryen, npm terser)
#   scripts/ensure-tools.sh --watch  the same, plus cargo-leptos for `cargo leptos watch`
#                                    (optional: about 600 crates, 15 to 100 minutes on 2 cores)
#
# Everything comes from the package registries (crates.io, npm, PyPI, Debian): nothing here
# downloads a prebuilt binary from anywhere else, which cargo-leptos would otherwise try.
set -euo pipefail

cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.7   # 0.3.8+ needs a newer rustc than 1.95 to install
BINARYEN_VERSION=132
TERSER_VERSION=5.51.4
AIOSMTPD_VERSION=1.4.6
SMTP_VENV=target/tools/smtp-venv
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)

say() { printf '\033[1mensure-tools:\033[0m %s\n' "$*"; }
fail() { printf 'ensure-tools: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again."
[ -n "$WASM_BINDGEN_VERSION" ] || fail "cannot read the wasm-bindgen version from Cargo.lock"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# Rust links with the system C compiler, and SQLite and ring build C code.
if ! command -v cc >/dev/null || ! command -v c++ >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing a C toolchain (build-essential) for linking and the C parts of SQLite and ring"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config >/dev/null
  else
    fail "a C compiler is missing: run 'sudo apt-get install build-essential pkg-config'"
  fi
fi

if command -v rustup >/dev/null; then
  for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      say "adding the $component component"
      rustup component add "$component"
    fi
  done
fi

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (must match Cargo.lock)"
  # Not --locked: the registry copy of its lock file lacks one dependency.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ "${1:-}" = "--watch" ]; then
  # Only for `cargo leptos watch` (rebuild and reload on every change); every make target
  # builds with scripts/build-site.sh instead.
  if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (15 to 100 minutes on 2 cores, once)"
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
  fi
  exit 0
fi

if [ "${1:-}" = "--release" ]; then
  # npm's binaryen, not Debian's: Debian's wasm-opt 108 emits wasm that fails to hydrate
  # ("WebAssembly.Table.set(): Argument 1 is invalid for table").
  if [ "$(target/tools/node_modules/.bin/wasm-opt --version 2>/dev/null | awk '{print $3}')" != "$BINARYEN_VERSION" ] \
    || [ "$(target/tools/node_modules/.bin/terser --version 2>/dev/null | awk '{print $2}')" != "$TERSER_VERSION" ]; then
    command -v npm >/dev/null || fail "release builds need npm for wasm-opt and terser: run 'sudo apt-get install nodejs npm'"
    say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) and terser@$TERSER_VERSION into target/tools"
    npm install --prefix target/tools --no-audit --no-fund --no-save \
      "binaryen@$BINARYEN_VERSION" "terser@$TERSER_VERSION"
  fi
  exit 0
fi

[ "${1:-}" = "--test" ] || exit 0

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    fail "the browser tests need Chromium at /usr/bin/chromium: run 'sudo apt-get install chromium'"
  fi
fi

command -v npm >/dev/null || fail "the browser tests need Node.js 20+ and npm: run 'sudo apt-get install nodejs npm'"
if [ ! -d end2end/node_modules ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "installing the end-to-end test packages (npm ci)"
  # Playwright drives Debian's Chromium; it must not try to download a browser of its own.
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

# The integration tests' SMTP server (scripts/smtp-sink.py) runs on aiosmtpd in its own venv.
if [ "$("$SMTP_VENV/bin/python" -c 'import aiosmtpd; print(aiosmtpd.__version__)' 2>/dev/null)" != "$AIOSMTPD_VERSION" ]; then
  command -v python3 >/dev/null || fail "the mail tests need Python 3 with venv: run 'sudo apt-get install python3 python3-venv'"
  say "installing aiosmtpd $AIOSMTPD_VERSION (PyPI) into $SMTP_VENV for the mail tests"
  if ! "$SMTP_VENV/bin/python" -c '' 2>/dev/null; then
    python3 -m venv --clear "$SMTP_VENV" \
      || fail "cannot create a Python venv: run 'sudo apt-get install python3-venv'"
  fi
  "$SMTP_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi
