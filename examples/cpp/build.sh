#!/usr/bin/env bash
# Builds the C++ example as a WASI p1 module with Debian's clang++, lld,
# wasi-libc and libc++ for wasm32 (exceptions off):
#   examples/cpp/build.sh OUTPUT.wasm
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../lib/toolchain.sh"
usage_out "$@"
CXX="${CXX_WASI:-clang++}"
SYSROOT="${WASI_SYSROOT:-/usr}"
need "$CXX" "clang++ (C++ compiler for wasm32-wasi)"
need wasm-ld "lld (wasm-ld, the WebAssembly linker)"
need_file "$SYSROOT/lib/wasm32-wasi/libc.a" "wasi-libc"
need_file "$SYSROOT/lib/wasm32-wasi/libc++.a" "libc++ for wasm32 (libc++-dev-wasm32)"
"$CXX" --target=wasm32-wasi --sysroot="$SYSROOT" -std=c++17 -Os -Wall -Wextra -Werror \
    -fno-exceptions -Wl,--strip-debug -o "$1" "$HERE/transform.cpp"
