#!/usr/bin/env bash
# Builds the C example as a WASI p1 module with Debian's clang, lld and
# wasi-libc:  examples/c/build.sh OUTPUT.wasm
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../lib/toolchain.sh"
usage_out "$@"
CC="${CC_WASI:-clang}"
SYSROOT="${WASI_SYSROOT:-/usr}"
need "$CC" "clang (C compiler for wasm32-wasi)"
need wasm-ld "lld (wasm-ld, the WebAssembly linker)"
need_file "$SYSROOT/lib/wasm32-wasi/libc.a" "wasi-libc"
"$CC" --target=wasm32-wasi --sysroot="$SYSROOT" -Os -Wall -Wextra -Werror \
    -Wl,--strip-debug -o "$1" "$HERE/transform.c"
