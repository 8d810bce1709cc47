# Lifeline's two commands for a newcomer:
#   make run    install what is missing, build, and serve on http://127.0.0.1:3000 (SQLite)
#   make test   install what is missing, then every check CI runs
# Both are idempotent and quick when everything is already installed and built.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)

# The server-side crates, built with the `ssr` feature of `app`.
SSR_CRATES := -p server -p domain -p migrations -p app --features app/ssr
# The browser side, built for wasm with the `hydrate` feature of `app`.
WASM_CRATES := -p frontend -p app --target wasm32-unknown-unknown

.PHONY: run test tools test-tools fmt-check clippy unit build e2e release

# Built with plain cargo and wasm-bindgen (scripts/build-site.sh), so that a first run does not
# wait for cargo-leptos to compile; `cargo leptos watch` remains for live reload (README).
run: tools
	@scripts/build-site.sh
	target/debug/lifeline

test: test-tools fmt-check clippy unit build e2e
	@scripts/test-summary.sh

tools:
	@scripts/ensure-tools.sh

test-tools:
	@scripts/ensure-tools.sh --test

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --all-targets $(SSR_CRATES) -- -D warnings
	cargo clippy --all-targets $(WASM_CRATES) -- -D warnings

# Unit and integration tests on SQLite, and on PostgreSQL too when
# LIFELINE_TEST_POSTGRES_URL names a server (each test creates and drops its own database).
unit:
	@mkdir -p target/test-logs
	cargo test $(SSR_CRATES) 2>&1 | tee target/test-logs/unit.log

# The server binary and the hydrated site (wasm, JS, CSS) the browser tests run against.
build:
	@scripts/build-site.sh

e2e:
	@mkdir -p target/test-logs
	cd end2end && npx playwright test 2>&1 | tee ../target/test-logs/e2e.log

# The README's pictures (docs/images/members-console.png, codes-sheet.png), taken by
# end2end/screenshots against the real binary on a fresh database. Not part of `test`.
.PHONY: screenshots
screenshots: test-tools build
	cd end2end && npx playwright test --config screenshots.config.ts

# An optimised build: target/release/lifeline and target/site (wasm-opt and terser from npm).
release:
	@scripts/ensure-tools.sh --release
	@scripts/build-site.sh --release

# Issue 8's figures on this machine (redemption, Casbin at scale, admin pages at 100,000
# members and 1,000,000 events on SQLite and PostgreSQL, a wrong-password flood, the gzipped
# browser download), each next to its baseline in the same run; rewrites BENCHMARKS.md.
# Not part of `test`: it builds in release mode and runs for several minutes.
.PHONY: bench
bench: tools
	@scripts/bench.sh
