#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, AddressSanitizer)
# and runs each for a bounded time, then prints a table of what each did.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target: the first argument when it is a number, else
# $FUZZ_SECONDS, else 60. TARGET: the targets to run (default: all that
# `cargo fuzz list` names).
#
# Setup, idempotent and quick when done: a nightly toolchain no older than
# the workspace's rust-version (installed, or updated, when it is not; or
# $FUZZ_TOOLCHAIN), its wasm32-unknown-unknown target (wasmlayer-policy
# embeds a runtime built for it), and cargo-fuzz when `cargo fuzz` is
# missing. Builds go to fuzz/target, never the workspace's target/. The
# corpora are fuzz/corpus/<target>/ (the seed-* files are kept in git, what
# the fuzzer adds is not); a crashing input is written to
# fuzz/artifacts/<target>/.
#
# Other settings: FUZZ_JOBS (cargo build jobs), FUZZ_CODEGEN_UNITS (16:
# quicker builds than cargo-fuzz's 1, for a little speed), FUZZ_TIMEOUT
# (seconds one input may take before it counts as a hang; 25).
#
# Exit status: 0 when no target crashed or hung, 1 when one did, 2 on a
# usage or setup error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
say() { printf '[fuzz] %s\n' "$*"; }
die() { printf 'fuzz.sh: %s\n' "$*" >&2; exit 2; }

seconds="${FUZZ_SECONDS:-60}"
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
case "${1:-}" in -h|--help) sed -n '2,25p' "$0"; exit 0 ;; esac
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || die "seconds must be a positive whole number, not '$seconds'"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cgu="${FUZZ_CODEGEN_UNITS:-16}"
input_timeout="${FUZZ_TIMEOUT:-25}"

command -v rustup >/dev/null || die "rustup is required (cargo-fuzz builds with a nightly toolchain)"

# --- setup -----------------------------------------------------------------
# The oldest rustc the workspace builds with (rust-version = "1.99").
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
need_minor=$(echo "${need:-1.0}" | cut -d. -f2)
nightly_minor() {
    rustc "+$toolchain" -V 2>/dev/null | sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p'
}
have=$(nightly_minor || true)
if [ -z "$have" ] || [ "$have" -lt "$need_minor" ]; then
    say "installing Rust $toolchain (found: ${have:+1.$have}${have:-none}; the workspace needs $need)"
    rustup toolchain install "$toolchain" --profile minimal
    have=$(nightly_minor || true)
    [ -n "$have" ] && [ "$have" -ge "$need_minor" ] || die "Rust $toolchain is 1.${have:-?}, older than $need"
fi
if ! rustup target list --toolchain "$toolchain" --installed | grep -qx wasm32-unknown-unknown; then
    say "adding wasm32-unknown-unknown to Rust $toolchain (the policy runtime)"
    rustup target add --toolchain "$toolchain" wasm32-unknown-unknown
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    (cd "$HOME" && cargo install cargo-fuzz --locked)
fi

cd "$ROOT"
fuzz_cargo() { cargo "+$toolchain" fuzz "$@"; }

all_targets=$(fuzz_cargo list)
if [ $# -gt 0 ]; then
    targets="$*"
    for t in $targets; do
        grep -qx "$t" <<<"$all_targets" || die "no fuzz target '$t' (there are: $(echo $all_targets))"
    done
else
    targets="$all_targets"
fi

# --- build -----------------------------------------------------------------
say "building $(echo $targets | wc -w) targets with $(rustc "+$toolchain" -V) into fuzz/target"
build_start=$(date +%s)
build_args=(build --codegen-units "$cgu")
[ -n "${FUZZ_JOBS:-}" ] && build_args+=(--jobs "$FUZZ_JOBS")
for t in $targets; do
    fuzz_cargo "${build_args[@]}" "$t"
done
say "built in $(( $(date +%s) - build_start )) s"
bin_dir="$FUZZ/target/x86_64-unknown-linux-gnu/release"

# --- run -------------------------------------------------------------------
logs="$FUZZ/target/logs"
mkdir -p "$logs"
count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }
list_findings() {
    find "$1" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) 2>/dev/null | sort
}
rows=()
failed=0
findings=()
for t in $targets; do
    corpus="$FUZZ/corpus/$t"
    artifacts="$FUZZ/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    # libFuzzer names an input by its digest: a crash found again rewrites
    # its file, so new is what was written during this run.
    marker="$logs/$t.start"
    touch "$marker"
    corpus_before=$(count_files "$corpus")
    log="$logs/$t.log"
    say "$t: fuzzing for $seconds s (corpus: $corpus_before inputs)"
    start=$(date +%s)
    set +e
    "$bin_dir/$t" "$corpus" \
        -max_total_time="$seconds" \
        -timeout="$input_timeout" \
        -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n1)
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n1)
    [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -n1 | tr -d '#')
    runs=${runs:-0}
    fresh=$(list_findings "$artifacts" | while IFS= read -r f; do
        if [ "$f" -nt "$marker" ]; then echo "$f"; fi
    done)
    new=$(echo -n "$fresh" | grep -c . || true)
    corpus_after=$(count_files "$corpus")
    if [ "$rc" -ne 0 ] && [ "$new" -eq 0 ]; then
        # libFuzzer failed without writing an input (bad flag, startup crash).
        new=1
        findings+=("$t: exited with status $rc without an input; see $log")
    fi
    if [ "$new" -gt 0 ]; then
        failed=1
        while IFS= read -r f; do
            [ -n "$f" ] && findings+=("$t: ${f#$ROOT/}")
        done <<<"$fresh"
        # The panic and its message (up to the backtrace), or the
        # sanitizer's first line.
        awk '/panicked at/ && !p { p = 1; n = 0 }
             p && (/^stack backtrace:/ || /^note: / || /^==/ || n == 6) { exit }
             p { print; n++ }' "$log" | sed "s|^|[fuzz] $t: |"
        grep -q "panicked at" "$log" ||
            grep -m1 -E "ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)" "$log" | sed "s|^|[fuzz] $t: |" || true
    fi
    say "$t: $runs runs in $took s, $new new crashes, corpus $corpus_before -> $corpus_after (log: ${log#$ROOT/})"
    rows+=("$(printf '%-18s %12s %8s %10s %8s %9s' "$t" "$runs" "$took" "$(( runs / (took > 0 ? took : 1) ))" "$new" "$corpus_after")")
done

echo
printf '%-18s %12s %8s %10s %8s %9s\n' target runs seconds runs/s crashes corpus
printf '%-18s %12s %8s %10s %8s %9s\n' ------ ---- ------- ------ ------- ------
printf '%s\n' "${rows[@]}"
if [ ${#findings[@]} -gt 0 ]; then
    echo
    echo "Findings (reproduce with fuzz/target/x86_64-unknown-linux-gnu/release/TARGET FILE):"
    printf '  %s\n' "${findings[@]}"
fi
exit "$failed"
