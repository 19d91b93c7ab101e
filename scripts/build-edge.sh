#!/usr/bin/env bash
# Builds the edge binary, target/edge/wasmlayer: no compiler, HTTP server,
# Rego, registry client or wasi-nn (crates/cli feature `edge`), optimised for
# size (profile `edge` in Cargo.toml), without WASI 0.3. It runs precompiled code and the
# local artifact store, with capabilities, limits, the same exit codes and
# the host sandbox. The first build takes about 6 minutes on 2 cores
# (link-time optimisation); with nothing to do, a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -x target/edge/wasmlayer ]; then
    echo "[build] updating target/edge/wasmlayer (incremental)"
else
    echo "[build] building target/edge/wasmlayer: the first build takes about 6 minutes on 2 cores; cargo's progress follows"
fi
start=$(date +%s)
# No unwind tables: with panic=abort nothing unwinds through host frames
# (Wasm backtraces walk frame pointers), and they are a tenth of the binary.
export CARGO_ENCODED_RUSTFLAGS="-Cforce-unwind-tables=no"
cargo build -p wasmlayer-cli --no-default-features --features edge --profile edge
echo "[build] target/edge/wasmlayer ready: $(stat -c %s target/edge/wasmlayer) bytes ($(( $(date +%s) - start ))s)"
