#!/usr/bin/env bash
# Builds the release binary, target/release/wasmlayer, showing cargo's
# progress. The first build on a fresh machine compiles a few hundred crates
# with link-time optimisation (about 15 minutes on 2 cores); later builds
# recompile only what changed, and one with nothing to do takes a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -x target/release/wasmlayer ]; then
    echo "[build] updating target/release/wasmlayer (incremental)"
else
    echo "[build] building target/release/wasmlayer: the first build takes about 15 minutes on 2 cores (link-time optimisation); cargo's progress follows"
fi
start=$(date +%s)
cargo build --release -p wasmlayer-cli
echo "[build] target/release/wasmlayer ready ($(( $(date +%s) - start ))s)"
