#!/usr/bin/env bash
# Soak test (not in CI): mixed load against a release qserve-host and the fake agent for
# 30 minutes by default, sampling the daemon's RSS, open fds and agents every 10 s:
#   bash scripts/soak.sh                 # 30 minutes
#   bash scripts/soak.sh --minutes 2     # a short run
#   bash scripts/soak.sh --help          # every flag of the driver (bench/src/soak/main.rs)
# Exits non-zero when an event was lost or repeated, a request failed unexpectedly, or the
# idle daemon holds more fds after the load than before it. See docs/benchmarks.md, "Soak".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

cargo build --release -p qserve-host -p qserve-e2e -p qserve-bench \
    --bin qserve-host --bin fake-agent --bin qserve-soak

command=(
    "$repo/target/release/qserve-soak"
    --qserve-host "$repo/target/release/qserve-host"
    --fake-agent "$repo/target/release/fake-agent"
    "$@"
)
echo "soak: ${command[*]}"
echo "soak: load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"${command[@]}"
