#!/usr/bin/env bash
# Runs every test of qserve, on a fresh clone as on a developer's machine:
#   1. the npm packages the end-to-end tests use (real `qwen --acp`, DaemonClient), if missing
#   2. every Wasm guest component, built from source (guest/build.sh installs its toolchain
#      when it is missing and it may)
#   3. the builtin policies compiled once into the tests' shared component cache
#   4. cargo test --workspace
# Extra arguments go to `cargo test` (e.g. `bash scripts/test.sh -- --nocapture`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/npm-deps.sh
bash guest/build.sh
# Compile the builtin policies once into the cache every test daemon shares
# (a debug build compiles builtin:rules in ~50 s; tests that start daemons
# on it in parallel would each pay that, against their start-up timeout).
cargo build -p qserve-host
target/debug/qserve-host --cache-dir target/test-component-cache policy list
cargo test --workspace "$@"
