#!/usr/bin/env bash
# Fuzz the parsers that face the outside (fuzz/fuzz_targets/*.rs), each for a
# bounded time, starting from the committed seed corpus in fuzz/corpus/.
#
#   .ci/fuzz.sh                 # every target, FUZZ_SECONDS (default 20) each
#   .ci/fuzz.sh irc_tags ...    # only these targets
#
# Needs the nightly toolchain (libFuzzer's instrumentation is a nightly
# rustc flag) and cargo-fuzz, which it installs when missing. Fails, saying
# so, when either cannot be had: it never skips silently. Exits non-zero on
# the first crash, timeout or out-of-memory and prints the input that caused
# it (under fuzz/artifacts/<target>/); reproduce with
#   cargo +nightly fuzz run -s none --target-dir fuzz/target <target> <that file>
#
# The runs work on a copy of the corpus in a temporary directory, so new
# inputs the fuzzer finds never land in the repository. To grow the
# committed corpus on purpose, run `cargo fuzz run` on fuzz/corpus/<target>
# itself and then `cargo fuzz cmin`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
# Any single input slower than this counts as a failure (a hang).
timeout_secs="${FUZZ_TIMEOUT:-10}"
# Memory per run, MB (libFuzzer's own limit).
rss_mb="${FUZZ_RSS_MB:-2048}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: the nightly Rust toolchain is not installed; install it with" >&2
    echo "      rustup toolchain install nightly --profile minimal" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz: cargo-fuzz could not be installed; the fuzz targets did not run" >&2
        exit 1
    fi
fi

# Build flags shared by build and run, so the run reuses the build:
#  -s none: the targets are safe Rust, where AddressSanitizer finds nothing
#           the language does not already check; without it the build and
#           the runs are faster;
#  --dev:   no optimizations: the cold build (the whole dependency tree with
#           coverage instrumentation) is what costs in CI, not the runs of
#           seconds; debug assertions and overflow checks stay on.
flags=(-s none --dev --target-dir fuzz/target)

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

start=$(date +%s)
echo "fuzz: building ${#targets[@]} targets"
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
    corpus="$work/$target"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$target" ]; then
        cp -R "fuzz/corpus/$target/." "$corpus/"
    fi
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$artifacts"
    echo "fuzz: $target for ${seconds}s ($(find "$corpus" -type f | wc -l) seed inputs)"
    log="$work/$target.log"
    if (cargo +nightly fuzz run "${flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout="$timeout_secs" -rss_limit_mb="$rss_mb" \
        -artifact_prefix="$PWD/$artifacts/" -print_final_stats=1) >"$log" 2>&1; then
        grep -E "^(stat::number_of_executed_units|Done )" "$log" | sed "s/^/fuzz: $target: /" || true
    else
        tail -n 40 "$log" >&2
        crash="$(grep -oE "Test unit written to [^ ]+" "$log" | tail -n 1 | sed 's/Test unit written to //')"
        echo "fuzz: $target FAILED; the input: ${crash:-(none written, see the log above)}" >&2
        failed+=("$target")
    fi
done

echo "fuzz: done in $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
