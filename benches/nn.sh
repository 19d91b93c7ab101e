#!/usr/bin/env bash
# wasi-nn and packed models against native ONNX Runtime, in the same run, on
# the same models and inputs:
#
# - Silero VAD, per inference: the same WAV (tests/nn/make_inputs.py) run
#   window by window natively (onnxruntime in Python, tests/nn/vad_reference.py),
#   through wasi-nn by the nn-vad guest as a core module (witx) and as a
#   component (wasi:nn WIT), and packed (`nn pack`: tract inside the module)
#   under `wasmlayer run` and the wasmtime CLI. Each side times its own
#   inference loop; the median of ROUNDS runs is kept. Peak memory is the
#   process's maximum RSS (GNU time).
# - PP-OCRv4 text reading, per image: natively (RapidOCR 1.4.4 on
#   onnxruntime, one process, the image read again and again) and through
#   `wasmlayer serve` (the http-ocr component, a fresh instance per request)
#   with wrk, one connection and two.
#
# Both ONNX Runtime sides use its default threads (native also with one
# thread, silero-vad's own setting, for reference).
#
#   bash benches/nn.sh [ROUNDS] [WRK_SECONDS]     (default 5 10)
#
# Writes target/bench/nn.json and target/bench/nn.png.
set -euo pipefail
ROUNDS="${1:-5}"
SECONDS_WRK="${2:-10}"
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

M="$ROOT/target/models"
G="$ROOT/target/guests"
IN="$WORK/in"
python3 tests/nn/make_inputs.py "$IN" >/dev/null
RES="$WORK/results.txt"
: >"$RES"

# record NAME US_PER_INFERENCE MAX_RSS_KB
record() { echo "$1 $2 $3" >>"$RES"; }

# timed NAME REGEX CMD...: runs CMD ROUNDS times under GNU time; the figure
# is the first number after REGEX on its stderr (µs), the memory GNU time's.
timed() {
    local name="$1" regex="$2"
    shift 2
    local i
    for i in $(seq "$ROUNDS"); do
        /usr/bin/time -f 'maxrss %M' "$@" >/dev/null 2>"$WORK/err" || {
            cat "$WORK/err" >&2
            echo "error: $name failed" >&2
            exit 1
        }
        local us rss
        us=$(grep -oP "$regex\K[0-9.]+" "$WORK/err" | head -1)
        rss=$(awk '/^maxrss/ {print $2}' "$WORK/err")
        [ -n "$us" ] || { cat "$WORK/err" >&2; echo "error: $name printed no time" >&2; exit 1; }
        record "$name" "$us" "$rss"
    done
    echo "  $name done" >&2
}

echo "[nn] Silero VAD, $ROUNDS rounds each" >&2
VAD="$M/silero_vad.onnx"
WAV="$IN/speech.wav"
timed native "inferences, " python3 tests/nn/vad_reference.py --model "$VAD" --time --threads 0 "$WAV"
timed native-1-thread "inferences, " python3 tests/nn/vad_reference.py --model "$VAD" --time --threads 1 "$WAV"
for g in nn-vad nn-vad-p2; do
    timed "wasi-nn-$g" "inferences, " "$W" run --nn-graph "vad=$VAD" --dir-ro "$IN::/in" "$G/$g.wasm" --time /in/speech.wav
done

# Packed: one window of the same audio (the 40th, in speech), its state
# zero; tract runs it REPEAT times after a first run.
"$W" nn pack "$VAD" -o "$WORK/vad.wasm" 2>/dev/null
python3 - "$WAV" "$WORK" <<'PY'
import sys, wave, numpy as np
with wave.open(sys.argv[1]) as w:
    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
x = pcm[40 * 512 - 64 : 41 * 512][np.newaxis, :].astype(np.float32)
np.save(f"{sys.argv[2]}/in0.npy", x)
np.save(f"{sys.argv[2]}/in1.npy", np.zeros((2, 1, 128), np.float32))
np.save(f"{sys.argv[2]}/in2.npy", np.array(16000, np.int64))
PY
REPEAT=300
timed packed-wasmlayer "first: " "$W" run --dir-ro "$WORK::/w" "$WORK/vad.wasm" --repeat $REPEAT /w/in0.npy /w/in1.npy /w/in2.npy
timed packed-wasmtime "first: " "$WT" run $WT_CACHE --dir "$WORK::/w" "$WORK/vad.wasm" --repeat $REPEAT /w/in0.npy /w/in1.npy /w/in2.npy

echo "[nn] PP-OCRv4 OCR" >&2
DET="$M/ch_PP-OCRv4_det_infer.onnx"
REC="$M/ch_PP-OCRv4_rec_infer.onnx"
PNG="$IN/text.png"
NATIVE_OCR_MS=$(python3 tests/nn/ocr_reference.py --det "$DET" --rec "$REC" --keys "$M/ppocr_keys.txt" --repeat 20 "$PNG" 2>&1 >/dev/null |
    grep -oP 'first: \K[0-9.]+')
echo "  native: $NATIVE_OCR_MS ms per image" >&2

cat >"$WORK/ocr.toml" <<TOML
[server]
listen = "127.0.0.1:18491"
admin = "127.0.0.1:18492"
pool_size = 16
max_instance_memory = "256MiB"

[[route]]
path = "/ocr"
component = "$G/http-ocr.wasm"
nn_graphs = { det = "$DET", rec = "$REC" }
dirs_ro = ["$M::/models"]
max_memory = "256MiB"
timeout = "30s"
TOML
"$W" serve "$WORK/ocr.toml" >"$WORK/ocr-access.log" 2>"$WORK/ocr-serve.err" &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 400); do curl -s -o /dev/null http://127.0.0.1:18491/ && break; sleep 0.05; done
expected=$(python3 tests/nn/ocr_reference.py --det "$DET" --rec "$REC" --keys "$M/ppocr_keys.txt" "$PNG")
got=$(curl -s --data-binary @"$PNG" http://127.0.0.1:18491/ocr)
[ "$got" = "$expected" ] || { echo "error: serve read '$got', native '$expected'" >&2; exit 1; }
cat >"$WORK/post.lua" <<LUA
local f = io.open("$PNG", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
LUA
for c in 1 2; do
    wrk -t1 -c$c -d"${SECONDS_WRK}s" --latency -s "$WORK/post.lua" http://127.0.0.1:18491/ocr >"$WORK/wrk-$c.txt"
    echo "  serve, $c connection(s): $(grep 'Requests/sec' "$WORK/wrk-$c.txt")" >&2
done
SERVE_RSS=$(awk '/^VmHWM/ {print $2}' /proc/$SERVE_PID/status)
NN_MS=$(curl -s http://127.0.0.1:18492/metrics | awk '
    /^wasmlayer_request_nn_seconds_sum\{route="\/ocr"\}/ {s=$2}
    /^wasmlayer_request_nn_seconds_count\{route="\/ocr"\}/ {n=$2}
    END {if (n > 0) printf "%.1f", s / n * 1000}')
kill -TERM $SERVE_PID
wait $SERVE_PID 2>/dev/null || true

python3 - "$RES" "$OUT/nn.json" "$NATIVE_OCR_MS" "$WORK/wrk-1.txt" "$WORK/wrk-2.txt" "$SERVE_RSS" "$NN_MS" \
    "$(wc -c <"$WORK/vad.wasm")" "$(wc -c <"$VAD")" <<'PY'
import datetime, json, os, platform, re, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
names = list(dict.fromkeys(r[0] for r in rows))
vad = {}
for n in names:
    us = [float(r[1]) for r in rows if r[0] == n]
    rss = [int(r[2]) for r in rows if r[0] == n]
    vad[n] = {"us_per_inference": statistics.median(us), "max_rss_kb": statistics.median(rss), "runs": us}
def wrk(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", t).group(1))
    p50 = re.search(r"50%\s+([0-9.]+)(us|ms|s)", t)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"req_per_s": rps, "p50_ms": float(p50.group(1)) * scale[p50.group(2)]}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
native = vad["native"]["us_per_inference"]
summary = {
    "date": datetime.date.today().isoformat(),
    "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}",
    "vad": vad,
    "vad_ratio_to_native": {n: v["us_per_inference"] / native for n, v in vad.items()},
    "packed_bytes": int(sys.argv[8]), "model_bytes": int(sys.argv[9]),
    "ocr": {"native_ms_per_image": float(sys.argv[3]),
            "serve_1_connection": wrk(sys.argv[4]), "serve_2_connections": wrk(sys.argv[5]),
            "serve_max_rss_kb": int(sys.argv[6] or 0),
            "serve_nn_ms_per_request": float(sys.argv[7] or 0)},
}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print(f"machine: {summary['machine']}   date: {summary['date']}")
print(f"Silero VAD, one inference (median of {len(vad['native']['runs'])} runs; packed module {summary['packed_bytes']} bytes, model {summary['model_bytes']}):")
print(f"{'':<24} {'µs':>8} {'x native':>9} {'max RSS MB':>11}")
for n, v in vad.items():
    print(f"{n:<24} {v['us_per_inference']:>8.1f} {v['us_per_inference'] / native:>9.2f} {v['max_rss_kb'] / 1024:>11.1f}")
o = summary["ocr"]
native_ips = 1000 / o["native_ms_per_image"]
print(f"PP-OCRv4, one image: native {o['native_ms_per_image']:.1f} ms ({native_ips:.2f} images/s)")
for c in (1, 2):
    s = o[f"serve_{c}_connection{'s' if c > 1 else ''}"]
    print(f"  wasmlayer serve, {c} connection(s): {s['req_per_s']:.2f} req/s ({s['req_per_s'] / native_ips:.2f}x native), p50 {s['p50_ms']:.0f} ms")
print(f"  serve: inference {o['serve_nn_ms_per_request']:.1f} ms of each request; peak RSS {o['serve_max_rss_kb'] / 1024:.0f} MB")
PY
python3 "$ROOT/benches/plot_nn.py" "$OUT/nn.json" "$OUT/nn.png" && echo "plot: $OUT/nn.png"
