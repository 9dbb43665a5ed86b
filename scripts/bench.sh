#!/usr/bin/env bash
# Benchmarks qserve-host against the real `qwen serve`, side by side, on the same fake agent:
#   1. the npm packages (`qwen serve` comes from @qwen-code/qwen-code), if missing
#   2. release builds of qserve-host, the fake agent and the benchmark
#   3. the benchmark, with the arguments given here, e.g.
#        bash scripts/bench.sh                 # 3 rounds, 20 000-chunk bursts, 16 subscribers
#        bash scripts/bench.sh --quick         # a short smoke run
#        bash scripts/bench.sh --rounds 5 --chunks 50000
#      (`bash scripts/bench.sh --help` lists every flag.)
# The machine should be otherwise idle: both daemons and the measuring client share its cores.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/npm-deps.sh
cargo build --release -p qserve-host -p qserve-e2e -p qserve-bench --bins

command=(
    "$repo/target/release/qserve-bench"
    --qserve-host "$repo/target/release/qserve-host"
    --fake-agent "$repo/target/release/fake-agent"
    --qwen "$repo/tests/npm/node_modules/.bin/qwen"
    "$@"
)
echo "bench: ${command[*]}"
echo "bench: load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"${command[@]}"
echo "bench: ran ${command[*]}"
