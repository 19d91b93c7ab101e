#!/usr/bin/env bash
# Density of `wasmlayer serve`: hold N requests open at once on a guest that
# waits (`http-hostile.wasm`, /sleep), and report the server's resident
# memory per live instance. wrk keeps N connections, each with one request
# in flight; the server's `instances_in_flight` metric confirms N instances
# are alive when RSS is read (/proc/PID/status VmRSS). Guest linear memory
# and Wasmtime's stack and table pools are told apart by their mappings (see
# pool_rss_kb); the rest of the growth is host overhead.
#
#   bash benches/density.sh [N ...]        (default 1000 10000)
set -euo pipefail
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1000 10000)
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

GUEST="$ROOT/target/guests/http-hostile.wasm"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# The kernel settings that bound density: serve fits its pool to
# vm.max_map_count (65,530 by default) and says so on stderr.
MAX_MAP_COUNT=$(cat /proc/sys/vm/max_map_count)
echo "kernel: vm.max_map_count=$MAX_MAP_COUNT, open files $(ulimit -n), ulimit -v $(ulimit -v)"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Resident KB of per-instance state in Wasmtime's pools, from
# /proc/PID/smaps, printed as "MEMORY POOLS":
#  MEMORY: guest linear memory. In a pooled slot an instantiated memory is
#    the accessible, anonymous read-write part of the slot, between the
#    inaccessible rest of its slot and of the slot before (and, where initial
#    data is mapped copy-on-write, the image mapped from the compiled .cwasm
#    or a memfd with the anonymous mappings beside it).
#  POOLS: fiber stacks (read-write anonymous mappings of exactly the stack
#    size, 2 MiB, between guard pages) and the table pool (the readable
#    anonymous mapping of at least 512 MiB).
# Everything else that grows is host overhead: connections, tasks, stores,
# instance state, WASI contexts.
pool_rss_kb() {
    python3 - "$1" <<'PY'
import re, sys
STACK_KB = 2048
vmas, cur = [], None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        cur = {"lo": lo, "hi": hi, "perm": f[1], "path": f[5] if len(f) > 5 else "", "size": 0, "rss": 0}
        vmas.append(cur)
    elif line.startswith("Size:"):
        cur["size"] = int(line.split()[1])
    elif line.startswith("Rss:"):
        cur["rss"] = int(line.split()[1])
image = lambda v: v["perm"] == "rw-p" and (v["path"].endswith(".cwasm") or v["path"].startswith("/memfd:wasm-memory-image"))
anon = lambda v: v["perm"] == "rw-p" and v["path"] == ""
memory = pools = 0
for i, v in enumerate(vmas):
    near = [vmas[j] for j in (i - 1, i + 1) if 0 <= j < len(vmas)]
    guarded = len(near) == 2 and near[0]["hi"] == v["lo"] and near[1]["lo"] == v["hi"] and all(n["perm"] == "---p" for n in near)
    if image(v) or (anon(v) and any(image(n) and (n["hi"] == v["lo"] or n["lo"] == v["hi"]) for n in near)) \
            or (anon(v) and guarded and v["size"] != STACK_KB and v["size"] < 512 << 10):
        memory += v["rss"]
    elif anon(v) and (v["size"] == STACK_KB or v["size"] >= 512 << 10):
        pools += v["rss"]
print(memory, pools)
PY
}
in_flight() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^wasmlayer_instances_in_flight / {print $2}'; }

: >"$WORK/density.txt"
for n in "${COUNTS[@]}"; do
    port=18531 admin=18532
    hold_ms=$(( n >= 5000 ? 30000 : 8000 ))
    "$W" serve --listen 127.0.0.1:$port --admin 127.0.0.1:$admin --pool-size $((n + 64)) \
        --max-instance-memory 2MiB --timeout 60s "$GUEST" >/dev/null 2>"$WORK/serve.err" &
    pid=$!
    for _ in $(seq 400); do curl -sf "http://127.0.0.1:$port/ok" >/dev/null 2>&1 && break; sleep 0.05; done
    # Warm: a few requests so code pages and caches are in.
    for _ in $(seq 20); do curl -sf "http://127.0.0.1:$port/ok" >/dev/null; done
    base=$(rss_kb $pid)
    base_pool=$(pool_rss_kb $pid)
    wrk -t2 -c"$n" -d"$(( hold_ms / 1000 + 4 ))s" --timeout 60s "http://127.0.0.1:$port/sleep?$hold_ms" >"$WORK/wrk-$n.txt" 2>&1 &
    wrk_pid=$!
    peak_live=0 rss_at_peak=0 pool_at_peak="0 0"
    for _ in $(seq $(( hold_ms / 250 ))); do
        sleep 0.25
        live=$(in_flight $admin)
        live=${live%.*}
        if [ "${live:-0}" -gt "$peak_live" ]; then
            peak_live=$live
            rss_at_peak=$(rss_kb $pid)
            # Reading smaps of ~3 mappings per instance takes a while: only
            # near the target, so the loop keeps up while wrk connects.
            [ "$live" -lt $(( n * 95 / 100 )) ] || pool_at_peak=$(pool_rss_kb $pid)
        fi
        [ "$peak_live" -ge "$n" ] && { sleep 0.5; rss_at_peak=$(rss_kb $pid); pool_at_peak=$(pool_rss_kb $pid); break; }
    done
    fitted=$(sed -n 's/.*serving with a pool of \([0-9]*\) instead.*/\1/p' "$WORK/serve.err")
    [ -z "$fitted" ] || echo "N=$n: the pool was fitted to $fitted instances (vm.max_map_count=$MAX_MAP_COUNT)"
    maps=$(wc -l <"/proc/$pid/maps")
    guest_mem=$(curl -s "http://127.0.0.1:$admin/metrics" | awk -F'[ ]' '/^wasmlayer_request_memory_bytes_sum/ {s=$2} /^wasmlayer_request_memory_bytes_count/ {c=$2} END {if (c > 0) printf "%d", s / c; else print 0}')
    wait $wrk_pid || true
    kill -0 $pid 2>/dev/null || { echo "N=$n: the server died:"; tail -5 "$WORK/serve.err"; exit 1; }
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk-$n.txt")
    echo "N=$n: $peak_live live at most, ${non2xx:-0} refused (503), $maps mappings at the end"
    kill $pid; wait $pid 2>/dev/null || true
    echo "$n $peak_live $base $rss_at_peak $guest_mem $base_pool $pool_at_peak $MAX_MAP_COUNT ${fitted:-$((n + 64))}" >>"$WORK/density.txt"
done

python3 - "$WORK/density.txt" "$OUT/density.json" <<'PY'
import json, os, platform, sys, datetime
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows = []
print(f"{'N':>6} {'live':>6} {'RSS idle':>9} {'RSS held':>9} {'per instance':>13} {'linear memory':>14} {'stacks+tables':>14} {'host overhead':>14}")
for line in open(sys.argv[1]):
    n, live, base, held, declared, mem_base, pools_base, mem_held, pools_held, max_map_count, pool = map(int, line.split())
    live = max(live, 1)
    per = (held - base) / live
    mem = (mem_held - mem_base) / live
    pools = (pools_held - pools_base) / live
    host = per - mem - pools
    rows.append({"n": n, "live": live, "rss_idle_kb": base, "rss_held_kb": held, "per_instance_kb": per,
                 "guest_resident_per_instance_kb": mem, "pools_per_instance_kb": pools,
                 "host_overhead_per_instance_kb": host, "guest_memory_declared_bytes": declared,
                 "vm_max_map_count": max_map_count, "pool_size": pool})
    print(f"{n:>6} {live:>6} {base/1024:>7.1f}MB {held/1024:>7.1f}MB {per:>10.1f} KB {mem:>11.1f} KB {pools:>11.1f} KB {host:>11.1f} KB")
print("host overhead = growth per instance - guest linear memory - fiber stack and table pools")
json.dump({"date": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}", "rows": rows},
          open(sys.argv[2], "w"), indent=2)
PY
if [ -f "$OUT/serve.json" ]; then
    python3 "$ROOT/benches/plot_serve.py" "$OUT/serve.json" "$OUT/serve.png" "$OUT/density.json" && echo "plot: $OUT/serve.png"
fi
