#!/usr/bin/env bash
# Prints the size table of docs/guests.md: each example artifact as built,
# after `wasm-opt -Oz --strip-debug` (binaryen), and gzipped, plus the
# componentized p2 form of each p1 module.
#   scripts/guest-sizes.sh [WASMLAYER_BINARY]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
G="$ROOT/target/guests"
W="${1:-$ROOT/target/release/wasmlayer}"
command -v wasm-opt >/dev/null || { echo "error: wasm-opt not found; run scripts/setup.sh" >&2; exit 1; }
[ -x "$W" ] || { echo "error: $W not built; run cargo build --release" >&2; exit 1; }
bash "$ROOT/scripts/build-guests.sh" >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1000 }'; }
size() { wc -c <"$1" | tr -d ' '; }
echo "| example | language | as built | wasm-opt -Oz | gzip -9 of that | componentized (p2) |"
echo "|---|---|---:|---:|---:|---:|"
for row in "rust:Rust" "rust-p2:Rust (wasip2 target)" "c:C" "cpp:C++" "go:Go" "as:AssemblyScript"; do
    name="${row%%:*}" lang="${row#*:}"
    f="$G/transform-$name.wasm"
    # binaryen reads core modules only; --all-features because binaryen 108
    # predates some features current toolchains emit by default.
    if [ "$name" = rust-p2 ]; then
        opt="n/a (a component)"
        gz="-"
    elif wasm-opt -Oz --strip-debug --all-features "$f" -o "$tmp/$name.opt.wasm" 2>"$tmp/err"; then
        opt=$(kb "$(size "$tmp/$name.opt.wasm")")
        gz=$(kb "$(gzip -9 -c "$tmp/$name.opt.wasm" | wc -c)")
    else
        opt="n/a (wasm-opt: $(head -c 60 "$tmp/err" | tr '\n' ' '))"
        gz="-"
    fi
    if [ "$name" = rust-p2 ]; then
        comp="(is a component)"
    else
        "$W" componentize "$f" -o "$tmp/$name.p2.wasm" 2>/dev/null
        comp=$(kb "$(size "$tmp/$name.p2.wasm")")
    fi
    echo "| transform-$name.wasm | $lang | $(kb "$(size "$f")") | $opt | $gz | $comp |"
done
