#!/usr/bin/env bash
# Runs each libFuzzer target in fuzz/ for SECONDS (default 60).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Targets: frame_decoder, spawn_request, shepherd_input (all by default).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Works on the stable
# toolchain: RUSTC_BOOTSTRAP=1 lets it take the -Z flags libFuzzer needs,
# and the sanitizer runtimes ship with rust-std. FUZZ_TOOLCHAIN=nightly uses
# `cargo +nightly` instead.
#
# Environment:
#   FUZZ_SANITIZER  address (default) or none (faster, no ASan)
#   FUZZ_MERGE=1    afterwards, add the inputs that found new coverage to
#                   the committed corpus fuzz/corpus/TARGET (then review and
#                   commit them; the replay test runs every file there)
#   CARGO_TARGET_DIR  where to build (default fuzz/target)
#
# The committed corpus is read, never written by a run: new inputs go to
# fuzz/corpus-new/TARGET, crashes to fuzz/artifacts/TARGET (both ignored by
# git). Exits non-zero if any target found a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame_decoder spawn_request shepherd_input)
fi
sanitizer=${FUZZ_SANITIZER:-address}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi
toolchain=()
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    toolchain=("+$FUZZ_TOOLCHAIN")
else
    export RUSTC_BOOTSTRAP=1
fi

cd fuzz
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus-new/$target" "corpus/$target"
    log=$(mktemp)
    echo "== $target: ${secs}s, sanitizer $sanitizer"
    if cargo "${toolchain[@]}" fuzz run -s "$sanitizer" "$target" \
        "corpus-new/$target" "corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' "$log" || true
        grep -E '^Done [0-9]+ runs' "$log" || true
    else
        status=1
        tail -n 60 "$log"
        echo "== $target FAILED: crash input in fuzz/artifacts/$target/" >&2
    fi
    rm -f "$log"
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        cargo "${toolchain[@]}" fuzz run -s "$sanitizer" "$target" \
            "corpus/$target" "corpus-new/$target" -- -merge=1 >/dev/null 2>&1
        echo "   merged: $(ls "corpus/$target" | wc -l) files in fuzz/corpus/$target"
    fi
done
exit $status
