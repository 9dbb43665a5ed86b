#!/usr/bin/env bash
# Runs every test of qserve, on a fresh clone as on a developer's machine:
#   1. the npm packages the end-to-end tests use (the real `qwen --acp`, `gemini --acp` and
#      `claude-code-acp`, DaemonClient, playwright-core), and the Debian packages they drive
#      (chromium, nginx: scripts/system-deps.sh), if missing
#   2. every Wasm guest component, built from source (guest/build.sh installs its toolchain
#      when it is missing and it may)
#   3. the example policies in Rust, Python and JavaScript (scripts/build-example-policies.sh:
#      toolchains from PyPI and npm at pinned versions; a missing package fails here, loudly)
#   4. the builtin policies compiled once into the tests' shared component cache
#   5. cargo test --workspace
# Extra arguments go to `cargo test` (e.g. `bash scripts/test.sh -- --nocapture`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/npm-deps.sh
bash scripts/system-deps.sh
bash guest/build.sh
# The e2e tests run these through qserve-host (tests/tests/policy_languages.rs).
bash scripts/build-example-policies.sh --no-test
# Compile the builtin and example policies once into the cache every test
# daemon shares (even with cranelift optimized in the dev profile, the Python
# and JS components take ~25 s of CPU each; tests that start daemons on them
# in parallel would each pay that, against their start-up timeout).
cargo build -p qserve-host
target/debug/qserve-host --cache-dir target/test-component-cache policy list
for example in target/example-policies/policy-{rust,python,js}.wasm; do
    target/debug/qserve-host --cache-dir target/test-component-cache policy check "$example"
done
cargo test --workspace "$@"
