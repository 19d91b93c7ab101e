#!/usr/bin/env bash
# Sets up everything and shows the main job on the bundled example guests:
# WASI p1, p2 and p3 guests under deny-by-default capabilities, the same program
# in Rust, C, C++, Go and AssemblyScript, a p1 module turned into a p2
# component, wasi:http serving with per-request limits and metering, limits
# that end runaway guests, Rego policies (native, built to Wasm, deciding
# capabilities), AI inference through wasi-nn on real models, and the
# compile cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
bash scripts/build-guests.sh
bash scripts/build-release.sh
W="$ROOT/target/release/wasmlayer"
G="$ROOT/target/guests"
WORK="$(mktemp -d)"
CACHE="$WORK/cache"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/data"
echo "hello from the host" > "$WORK/data/input.txt"

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; }
# Runs a demo command, showing its exit code (non-zero is often the point).
show() {
    local rc=0
    "$@" || rc=$?
    echo "(exit code $rc)"
}

step "inspect a WASI p2 component" "wasmlayer inspect hello-p2.wasm"
show "$W" inspect --cache-dir "$CACHE" "$G/hello-p2.wasm" | sed -n '1,6p'

step "a p1 module with an argument, an env var and a read-write directory" \
    "wasmlayer run --dir DATA::/data --env NAME=demo hello-p1.wasm Ada"
show "$W" run --cache-dir "$CACHE" --dir "$WORK/data::/data" --env NAME=demo "$G/hello-p1.wasm" Ada
echo "host file now holds: $(cat "$WORK/data/output.txt")"

step "a p2 component: filesystem, random, clocks" "wasmlayer run --dir DATA::/data hello-p2.wasm"
show "$W" run --cache-dir "$CACHE" --dir "$WORK/data::/data" "$G/hello-p2.wasm"

step "a WASI 0.3 (p3) component: async run, same grants and limits" \
    "wasmlayer run --dir DATA::/data hello-p3.wasm; wasmlayer run --timeout 500ms hello-p3.wasm --spin"
show "$W" run --cache-dir "$CACHE" --dir "$WORK/data::/data" "$G/hello-p3.wasm"
show "$W" run --cache-dir "$CACHE" --timeout 500ms "$G/hello-p3.wasm" --spin

step "one program in five languages, same behaviour" \
    "wasmlayer run --dir DATA::/data --env MODE=upper transform-LANG.wasm /data/input.txt /data/out-LANG.txt 3"
for lang in rust c cpp go as; do
    show "$W" run --cache-dir "$CACHE" --dir "$WORK/data::/data" --env MODE=upper \
        "$G/transform-$lang.wasm" /data/input.txt "/data/out-$lang.txt" 3 2>&1 | sed 's/^/  /'
done
echo "host file from Go: $(cat "$WORK/data/out-go.txt")"

step "a p1 module becomes a p2 component" "wasmlayer componentize transform-go.wasm -o transform-go.component.wasm"
show "$W" componentize "$G/transform-go.wasm" -o "$WORK/transform-go.component.wasm"
show "$W" inspect --cache-dir "$CACHE" "$WORK/transform-go.component.wasm" | sed -n '2p'
show "$W" run --cache-dir "$CACHE" --dir "$WORK/data::/data" --env MODE=lower \
    "$WORK/transform-go.component.wasm" /data/input.txt /data/out-p2.txt

step "serve wasi:http: an instance per request, limits, metering" \
    "wasmlayer serve --env GREETING=Hi --timeout 1s --max-memory 16MiB http-hello.wasm (and http-hostile.wasm)"
"$W" serve --cache-dir "$CACHE" --listen 127.0.0.1:18480 --admin 127.0.0.1:18481 --env GREETING=Hi "$G/http-hello.wasm" \
    >"$WORK/hello-access.log" 2>"$WORK/hello-serve.err" &
HELLO_PID=$!
"$W" serve --cache-dir "$CACHE" --listen 127.0.0.1:18482 --timeout 1s --max-memory 16MiB "$G/http-hostile.wasm" \
    >/dev/null 2>"$WORK/hostile-serve.err" &
HOSTILE_PID=$!
for port in 18480 18482; do
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
done
for path in /hello /world; do curl -s "http://127.0.0.1:18480$path"; done
for path in /loop /membomb /trap /ok; do
    printf '%-9s -> ' "$path"; curl -s -w ' [HTTP %{http_code}]\n' "http://127.0.0.1:18482$path" | tr -d '\n'; echo
done
echo "access log (one JSON line per request):"
head -1 "$WORK/hello-access.log"
echo "metrics (excerpt):"
curl -s http://127.0.0.1:18481/metrics | grep -E '^wasmlayer_requests_total|^wasmlayer_request_fuel_sum'
kill -TERM $HELLO_PID $HOSTILE_PID
wait $HELLO_PID $HOSTILE_PID || true

step "serve a WASI 0.3 handler, one instance reused for up to 100 requests" \
    "wasmlayer serve --reuse 100 --timeout 1s http-hello-p3.wasm"
"$W" serve --cache-dir "$CACHE" --listen 127.0.0.1:18484 --reuse 100 --timeout 1s "$G/http-hello-p3.wasm" \
    >"$WORK/p3-access.log" 2>"$WORK/p3-serve.err" &
P3_PID=$!
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:18484/ok" && break; sleep 0.05; done
for path in /hello /sleep?200 /loop /ok; do
    printf '%-11s -> ' "$path"; curl -s -w ' [HTTP %{http_code}]\n' "http://127.0.0.1:18484$path" | tr -d '\n'; echo
done
kill -TERM $P3_PID
wait $P3_PID || true
echo "access log: the instance that served each request, and its fuel"
python3 -c 'import json,sys; [print(" ", r["path"], r["status"], "instance", r.get("instance"), "fuel", r["fuel"]) for r in map(json.loads, open(sys.argv[1]))]' "$WORK/p3-access.log"

step "deny by default: no env var leaks from the host" "SECRET=hunter2 wasmlayer run hostile-p1.wasm env SECRET"
SECRET=hunter2 show "$W" run --cache-dir "$CACHE" "$G/hostile-p1.wasm" env SECRET

step "escaping a preopen fails inside the guest" "wasmlayer run --dir DATA::/data hostile-p1.wasm read /data/../../etc/passwd"
show "$W" run --cache-dir "$CACHE" --dir "$WORK/data::/data" "$G/hostile-p1.wasm" read /data/../../etc/passwd

step "read-only directory" "wasmlayer run --dir DATA::/data:ro hostile-p1.wasm write /data/input.txt x"
show "$W" run --cache-dir "$CACHE" --dir "$WORK/data::/data:ro" "$G/hostile-p1.wasm" write /data/input.txt x

step "network is an allowlist: a connect nobody granted" "wasmlayer run hostile-p2.wasm connect 127.0.0.1:9"
show "$W" run --cache-dir "$CACHE" "$G/hostile-p2.wasm" connect 127.0.0.1:9

step "memory bomb under a 64 MiB limit" "wasmlayer run --max-memory 64MiB hostile-p1.wasm membomb"
show "$W" run --cache-dir "$CACHE" --max-memory 64MiB "$G/hostile-p1.wasm" membomb

step "endless loop under a fuel limit" "wasmlayer run --fuel 10000000 hostile-p1.wasm loop"
show "$W" run --cache-dir "$CACHE" --fuel 10000000 "$G/hostile-p1.wasm" loop

step "endless loop under a wall-clock limit" "wasmlayer run --timeout 500ms hostile-p2.wasm loop"
show "$W" run --cache-dir "$CACHE" --timeout 500ms "$G/hostile-p2.wasm" loop

step "unbounded recursion" "wasmlayer run hostile-p1.wasm recurse"
show "$W" run --cache-dir "$CACHE" "$G/hostile-p1.wasm" recurse

step "malformed input" "wasmlayer run /etc/hostname"
show "$W" run --cache-dir "$CACHE" /etc/hostname

P="$ROOT/examples/policies"
step "Rego policies: test, evaluate natively, build to Wasm, evaluate through the OPA-Wasm host" \
    "wasmlayer policy test examples/policies/k8s; policy eval ...; policy build ... -o k8s.wasm"
show "$W" policy test "$P/k8s" | tail -2
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["review"]=r["request"]; json.dump(r, sys.stdout)' \
    "$P/k8s-reviews/denied-privileged.json" >"$WORK/review.json"
show "$W" policy eval "$P/k8s" -i "$WORK/review.json" -e kubernetes/admission/deny --compact
show "$W" policy build "$P/k8s/lib.rego" "$P/k8s/privileged.rego" "$P/k8s/required_labels.rego" \
    "$P/k8s/wasm_runtime_class.rego" "$P/k8s/data.json" -e kubernetes/admission/deny -o "$WORK/k8s.wasm"
XDG_CACHE_HOME="$WORK" show "$W" policy eval "$WORK/k8s.wasm" -i "$WORK/review.json" -e kubernetes/admission/deny --compact

step "capabilities granted by a policy: read-only dirs, network only for allowlisted hashes, 128 MiB" \
    "wasmlayer run --policy examples/policies/... GUEST"
show "$W" run --cache-dir "$CACHE" --policy "$P/readonly-dirs" --dir "$WORK/data::/data" "$G/hostile-p1.wasm" write /data/input.txt x
show "$W" run --cache-dir "$CACHE" --policy "$P/network-allowlist" --allow-net 127.0.0.1:9 "$G/hostile-p2.wasm" connect 127.0.0.1:9
show "$W" run --cache-dir "$CACHE" --policy "$P/memory-cap" --max-memory 1GiB "$G/hostile-p1.wasm" membomb

M="$ROOT/target/models"
python3 tests/nn/make_inputs.py "$WORK/nn" >/dev/null
step "AI inference through wasi-nn (ONNX Runtime): text in an image with PP-OCRv4, speech in a WAV with Silero VAD" \
    "wasmlayer run -v --nn-graph det=... --nn-graph rec=... --dir-ro IN::/in nn-ocr.wasm /in/text.png"
show "$W" run -v --cache-dir "$CACHE" --nn-graph "det=$M/ch_PP-OCRv4_det_infer.onnx" --nn-graph "rec=$M/ch_PP-OCRv4_rec_infer.onnx" \
    --dir-ro "$WORK/nn::/in" --dir-ro "$M::/models" "$G/nn-ocr.wasm" --keys /models/ppocr_keys.txt /in/text.png 2>&1 | grep -v "^ *INFO.*\(loaded\|cache\)"
show "$W" run --cache-dir "$CACHE" --nn-graph "vad=$M/silero_vad.onnx" --dir-ro "$WORK/nn::/in" "$G/nn-vad.wasm" /in/speech.wav
step "OCR over HTTP: a wasi:http component using wasi:nn, metered per request" \
    "wasmlayer serve examples/http/ocr/wasmlayer.toml; curl --data-binary @text.png localhost:18486/ocr"
"$W" serve --cache-dir "$CACHE" --listen 127.0.0.1:18486 --admin 127.0.0.1:18487 examples/http/ocr/wasmlayer.toml \
    >"$WORK/ocr-access.log" 2>"$WORK/ocr-serve.err" &
OCR_PID=$!
for _ in $(seq 400); do curl -s -o /dev/null http://127.0.0.1:18486/ && break; sleep 0.05; done
curl -s -w '[HTTP %{http_code}]\n' --data-binary @"$WORK/nn/text.png" http://127.0.0.1:18486/ocr
sleep 0.2
echo "access log: the request's inferences, their time and the models' bytes"
grep '"route":"/ocr"' "$WORK/ocr-access.log" | head -1
curl -s http://127.0.0.1:18487/metrics | grep -E '^wasmlayer_nn_inferences_total|^wasmlayer_request_nn_seconds_sum'
kill -TERM $OCR_PID
wait $OCR_PID || true
step "a model nobody granted" "wasmlayer run --dir-ro MODELS::/models nn-vad.wasm --model-file /models/silero_vad.onnx ..."
show "$W" run --cache-dir "$CACHE" --dir-ro "$WORK/nn::/in" --dir-ro "$M::/models" "$G/nn-vad.wasm" --model-file /models/silero_vad.onnx /in/speech.wav
step "a model packed into a self-contained module (tract inside; any WASI host)" "wasmlayer nn pack silero_vad.onnx -o vad.wasm; wasmlayer run vad.wasm --info"
show "$W" nn pack "$M/silero_vad.onnx" -o "$WORK/vad.wasm"
show "$W" run --cache-dir "$CACHE" "$WORK/vad.wasm" --info

step "the compile cache: first run compiles, second run does not" "wasmlayer run -v hello-p1.wasm (twice, fresh cache)"
rm -rf "$CACHE"
for i in 1 2; do
    start=$(date +%s%N)
    "$W" run -v --cache-dir "$CACHE" "$G/hello-p1.wasm" >/dev/null 2>"$WORK/log" || true
    end=$(date +%s%N)
    printf 'run %d: %8s ms  %s\n' "$i" "$(awk "BEGIN { printf \"%.2f\", ($end - $start) / 1e6 }")" "$(grep -oE 'compiled \(cache miss\)|cache hit[^:]*' "$WORK/log" | head -1)"
done
echo
echo "demo finished"
