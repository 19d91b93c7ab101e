#!/usr/bin/env bash
# Density of `wasmlayer serve`: hold N requests open at once on a guest that
# waits (`http-hostile.wasm`, /sleep), and report the server's resident
# memory per live instance. wrk keeps N connections, each with one request
# in flight; the server's `instances_in_flight` metric confirms N instances
# are alive when RSS is read (/proc/PID/status VmRSS). Guest state (linear
# memory, data images, tables) is told apart from the host's own memory by
# its mappings (see guest_rss_kb); the rest of the growth is host overhead:
# connections, stores, WASI contexts, fiber stacks.
#
#   bash benches/density.sh [N ...]        (default 1000 10000)
set -euo pipefail
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1000 10000)
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

GUEST="$ROOT/target/guests/http-hostile.wasm"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Resident KB of guest state, from /proc/PID/smaps: the pooled linear-memory
# slots (anonymous mappings of exactly the slot size), the copy-on-write
# initial-data images mapped from compiled code (.cwasm), and the table pool
# (the one anonymous mapping of at least 512 MiB that is readable).
guest_rss_kb() {
    python3 - "$1" "$2" <<'PY'
import re, sys
pid, slot_kb = sys.argv[1], int(sys.argv[2])
total, cur = 0, None
for line in open(f"/proc/{pid}/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        f = line.split()
        cur = {"perm": f[1], "path": f[5] if len(f) > 5 else "", "size": 0}
    elif line.startswith("Size:"):
        cur["size"] = int(line.split()[1])
    elif line.startswith("Rss:") and cur["perm"] == "rw-p":
        rss = int(line.split()[1])
        anon = cur["path"] == ""
        if (anon and cur["size"] == slot_kb) or cur["path"].endswith(".cwasm") or (anon and cur["size"] >= 512 << 10):
            total += rss
print(total)
PY
}
in_flight() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^wasmlayer_instances_in_flight / {print $2}'; }

: >"$WORK/density.txt"
for n in "${COUNTS[@]}"; do
    port=18531 admin=18532
    hold_ms=$(( n >= 5000 ? 20000 : 8000 ))
    "$W" serve --listen 127.0.0.1:$port --admin 127.0.0.1:$admin --pool-size $((n + 64)) \
        --max-instance-memory 2MiB --timeout 60s "$GUEST" >/dev/null 2>"$WORK/serve.err" &
    pid=$!
    for _ in $(seq 400); do curl -sf "http://127.0.0.1:$port/ok" >/dev/null 2>&1 && break; sleep 0.05; done
    # Warm: a few requests so code pages and caches are in.
    for _ in $(seq 20); do curl -sf "http://127.0.0.1:$port/ok" >/dev/null; done
    base=$(rss_kb $pid)
    base_pool=$(guest_rss_kb $pid 2048)
    wrk -t2 -c"$n" -d"$(( hold_ms / 1000 + 4 ))s" --timeout 60s "http://127.0.0.1:$port/sleep?$hold_ms" >"$WORK/wrk-$n.txt" 2>&1 &
    wrk_pid=$!
    peak_live=0 rss_at_peak=0 pool_at_peak=0
    for _ in $(seq $(( hold_ms / 250 ))); do
        sleep 0.25
        live=$(in_flight $admin)
        live=${live%.*}
        if [ "${live:-0}" -gt "$peak_live" ]; then
            peak_live=$live
            rss_at_peak=$(rss_kb $pid)
            pool_at_peak=$(guest_rss_kb $pid 2048)
        fi
        [ "$peak_live" -ge "$n" ] && { sleep 0.5; rss_at_peak=$(rss_kb $pid); pool_at_peak=$(guest_rss_kb $pid 2048); break; }
    done
    guest_mem=$(curl -s "http://127.0.0.1:$admin/metrics" | awk -F'[ ]' '/^wasmlayer_request_memory_bytes_sum/ {s=$2} /^wasmlayer_request_memory_bytes_count/ {c=$2} END {if (c > 0) printf "%d", s / c; else print 0}')
    wait $wrk_pid || true
    kill $pid; wait $pid 2>/dev/null || true
    echo "$n $peak_live $base $rss_at_peak $guest_mem $base_pool $pool_at_peak" >>"$WORK/density.txt"
done

python3 - "$WORK/density.txt" "$OUT/density.json" <<'PY'
import json, os, platform, sys, datetime
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows = []
print(f"{'N':>6} {'live':>6} {'RSS idle':>10} {'RSS held':>10} {'per instance':>13} {'of it guest memory':>19} {'host overhead':>14} {'declared memory':>16}")
for line in open(sys.argv[1]):
    n, live, base, held, guest, pool_base, pool_held = map(int, line.split())
    live = max(live, 1)
    per = (held - base) / live
    guest_per = (pool_held - pool_base) / live
    rows.append({"n": n, "live": live, "rss_idle_kb": base, "rss_held_kb": held, "per_instance_kb": per,
                 "guest_resident_per_instance_kb": guest_per, "host_overhead_per_instance_kb": per - guest_per,
                 "guest_memory_declared_bytes": guest})
    print(f"{n:>6} {live:>6} {base/1024:>8.1f}MB {held/1024:>8.1f}MB {per:>10.1f} KB {guest_per:>16.1f} KB {per - guest_per:>11.1f} KB {guest/1024:>13.0f} KB")
json.dump({"date": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}", "rows": rows},
          open(sys.argv[2], "w"), indent=2)
PY
[ -f "$OUT/serve.json" ] && python3 "$ROOT/benches/plot_serve.py" "$OUT/serve.json" "$OUT/serve.png" "$OUT/density.json" && echo "plot: $OUT/serve.png"
