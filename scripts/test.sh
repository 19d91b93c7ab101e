#!/usr/bin/env bash
# Sets up everything and runs every test: unit tests of the library crates
# and end-to-end tests that drive the real `wasmlayer` binary on real guests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
bash scripts/build-guests.sh

# One shared target dir; tests share one compile cache under target/.
rm -rf target/test-cache
if [ ! -d target/debug/deps ]; then
    echo "[test] building the tests: the first build takes about 17 minutes on 2 cores; cargo's progress follows"
fi
# The edge build (no compiler, serve, policy, registry or wasi-nn; optimised
# for size), which tests/edge.rs runs and measures.
bash scripts/build-edge.sh
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
    cargo test --workspace --no-fail-fast "$@" || status=$?
fi
# The adversarial suite's short form, on the binary the tests built
# (target/debug/wasmlayer): hostile guests, clients and input.
echo "[test] the adversarial suite (short form; scripts/adversarial.sh runs all of it)"
python3 scripts/adversarial.py --short || status=$?
exit "$status"
