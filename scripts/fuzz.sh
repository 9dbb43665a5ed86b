#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds each (default 60), on the stable
# toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags) and without a
# sanitizer (`--sanitizer none`: the targets are safe Rust; libFuzzer still finds panics,
# failed assertions, timeouts and runaway memory):
#   bash scripts/fuzz.sh            # 60 s per target
#   bash scripts/fuzz.sh 180        # 3 minutes per target
#   bash scripts/fuzz.sh 30 sse_frame last_event_id
# Needs `cargo install cargo-fuzz`. Corpora go to fuzz/corpus/TARGET, crashes to
# fuzz/artifacts/TARGET (both ignored by git). See docs/testing.md, "Fuzzing".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(rpc_lines sse_frame last_event_id read_slice resolve_path http_checks)
fi
declare -A dicts=([resolve_path]=dicts/path.dict [http_checks]=dicts/http.dict)

export RUSTC_BOOTSTRAP=1
# One build for every target; only the fuzz crate's own target dir.
cargo fuzz build --sanitizer none

failed=0
for target in "${targets[@]}"; do
    args=(-max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1)
    if [ -n "${dicts[$target]:-}" ]; then
        args+=(-dict="${dicts[$target]}")
    fi
    mkdir -p "corpus/$target"
    echo "fuzz: $target for ${seconds}s"
    if ! cargo fuzz run --sanitizer none "$target" "corpus/$target" -- "${args[@]}" \
        2>&1 | tee "/tmp/qserve-fuzz-$target.log" | grep -E '^(#[0-9]+\s+DONE|Done|stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY|thread .* panicked)'; then
        :
    fi
    if grep -qE 'panicked|ERROR: libFuzzer|SUMMARY: libFuzzer' "/tmp/qserve-fuzz-$target.log"; then
        echo "fuzz: $target FOUND A FAILURE (log /tmp/qserve-fuzz-$target.log)"
        failed=1
    fi
done
exit "$failed"
