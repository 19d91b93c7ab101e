#!/usr/bin/env bash
# In-process instantiate-and-call latency (pooling allocator, pre-instantiation).
#   bash benches/instantiate.sh [--quick]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p target/bench
cargo bench -q -p wasmlayer-core --bench instantiate -- "$@" | tee target/bench/instantiate.txt
