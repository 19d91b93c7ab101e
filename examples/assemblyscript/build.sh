#!/usr/bin/env bash
# Builds the AssemblyScript example as a WASI p1 module with the npm
# packages assemblyscript and @assemblyscript/wasi-shim (installed from
# package-lock.json by scripts/setup.sh):
#   examples/assemblyscript/build.sh OUTPUT.wasm
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../lib/toolchain.sh"
usage_out "$@"
NODE="${NODE:-node}"
need "$NODE" "Node.js"
need_file "$HERE/node_modules/assemblyscript/bin/asc.js" "the AssemblyScript compiler (npm package assemblyscript)"
need_file "$HERE/node_modules/@assemblyscript/wasi-shim/asconfig.json" "the AssemblyScript WASI shim (npm package @assemblyscript/wasi-shim)"
out="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
cd "$HERE"
"$NODE" node_modules/assemblyscript/bin/asc.js assembly/index.ts --target release --outFile "$out"
