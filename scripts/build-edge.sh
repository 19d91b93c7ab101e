#!/usr/bin/env bash
# Builds the edge binary, target/edge/wasmlayer: no compiler, HTTP server,
# Rego, registry client or wasi-nn (crates/cli feature `edge`), optimised for
# size (profile `edge` in Cargo.toml), without WASI 0.3. It runs precompiled code and the
# local artifact store, with capabilities, limits, the same exit codes and
# the host sandbox. The first build takes about 2 minutes on 2 cores
# (link-time optimisation); with nothing to do, a second.
#
# On x86_64 Linux it is one static executable on musl (scripts/setup.sh
# installs musl-tools and the Rust target): no shared libraries to map and
# relocate at start (1.9 MB of a start's resident pages with glibc), linked
# position-dependent, with identical code folded.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -x target/edge/wasmlayer ]; then
    echo "[build] updating target/edge/wasmlayer (incremental)"
else
    echo "[build] building target/edge/wasmlayer: the first build takes about 2 minutes on 2 cores; cargo's progress follows"
fi
start=$(date +%s)
# No unwind tables: with panic=abort nothing unwinds through host frames
# (Wasm backtraces walk frame pointers), and they are a tenth of the binary.
flags=(-Cforce-unwind-tables=no)
target=()
out=target/edge/wasmlayer
if [ "$(uname -sm)" = "Linux x86_64" ] && command -v musl-gcc >/dev/null \
    && rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    target=(--target x86_64-unknown-linux-musl)
    out=target/x86_64-unknown-linux-musl/edge/wasmlayer
    # C code in dependencies (Wasmtime's helpers, BLAKE3's SIMD) is built
    # with musl's compiler wrapper.
    export CC_x86_64_unknown_linux_musl=musl-gcc
    flags+=(-Crelocation-model=static -Clink-arg=-Wl,--icf=all)
else
    echo "[build] no musl toolchain here (scripts/setup.sh installs it): building against the system's C library"
fi
CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${flags[*]}")"
export CARGO_ENCODED_RUSTFLAGS
cargo build -p wasmlayer-cli --no-default-features --features edge --profile edge "${target[@]}"
if [ "$out" != target/edge/wasmlayer ]; then
    mkdir -p target/edge
    cp -p "$out" target/edge/wasmlayer.tmp && mv target/edge/wasmlayer.tmp target/edge/wasmlayer
fi
echo "[build] target/edge/wasmlayer ready: $(stat -c %s target/edge/wasmlayer) bytes ($(( $(date +%s) - start ))s)"
