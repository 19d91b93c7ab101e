#!/usr/bin/env bash
# Wasm containers through CRI, as the kubelet starts them, on one containerd
# (started by the benchmark, with its own root, state and socket):
#   - create-to-exit of a hello container in a running pod: busybox `echo`
#     on runc, hello-p1.wasm on containerd-shim-wasmlayer-v1 (release build),
#     and hello-p1.wasm on runwasi's containerd-shim-wasmtime-v1 (built from
#     its v0.6.0 release source in benches/peers/runwasi-wasmtime);
#   - memory per running Wasm container: LIVE sleeping containers in one pod,
#     the pod's shim and their processes, less the pod alone (RSS and PSS).
# Usage: bash benches/shim.sh [RUNS] [LIVE]   (defaults 30 and 10)
# Writes target/bench/shim.json and target/bench/shim.png.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${1:-30}"
LIVE="${2:-10}"

bash scripts/setup.sh --bench
bash scripts/build-guests.sh >/dev/null
echo "[bench] building containerd-shim-wasmlayer-v1 (release; the first build takes several minutes)"
cargo build --release -p wasmlayer-shim

# runwasi's Wasmtime shim: rebuilt only when its source changes. Its
# Wasmtime 27 needs rustc 1.85 (the release's own toolchain).
PEER_SRC=benches/peers/runwasi-wasmtime
PEER="$ROOT/target/peers/runwasi-wasmtime"
PEER_BIN="$PEER/bin/containerd-shim-wasmtime-v1"
hash=$(find "$PEER_SRC" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ ! -x "$PEER_BIN" ] || [ "$(cat "$PEER/source.sha256" 2>/dev/null)" != "$hash" ]; then
    echo "[bench] building runwasi's containerd-shim-wasmtime-v1 v0.6.0 (about 13 minutes on 2 cores)"
    rustup toolchain install 1.85.0 --profile minimal >/dev/null
    if CARGO_TARGET_DIR="$ROOT/target/peers/build" \
        cargo +1.85.0 install --locked --force --path "$PEER_SRC" --root "$PEER"; then
        echo "$hash" >"$PEER/source.sha256"
    else
        echo "[bench] runwasi's shim did not build; measuring without it" >&2
        PEER_BIN=""
    fi
fi

mkdir -p target/bench
echo "[bench] $RUNS containers per runtime, then $LIVE live ones per Wasm shim"
WASMLAYER_BENCH_SHIM="$ROOT/target/release/containerd-shim-wasmlayer-v1" \
WASMLAYER_BENCH_WASMTIME_SHIM="$PEER_BIN" \
WASMLAYER_BENCH_RUNS="$RUNS" WASMLAYER_BENCH_LIVE="$LIVE" \
WASMLAYER_BENCH_OUT="$ROOT/target/bench/shim.json" \
    cargo nextest run -p wasmlayer-shim --test cri --run-ignored only --no-capture \
    -E 'test(bench_cri_create_to_exit)' 2>&1 | grep -E '^ *(runc|wasmlayer|wasmtime):' || true
test -s target/bench/shim.json
python3 benches/plot_shim.py target/bench/shim.json target/bench/shim.png
