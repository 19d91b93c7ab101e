"""Throughput and latency of wasmlayer serve vs wasmtime serve, from target/bench/serve.json,
and host memory per live instance from target/bench/density.json when present."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

serve = json.load(open(sys.argv[1]))
density_path = sys.argv[3] if len(sys.argv) > 3 else None
density = json.load(open(density_path)) if density_path and os.path.exists(density_path) else None
panels = 3 if density else 2
fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4))
names = ["wasmlayer serve", "wasmtime serve"]
rows = [serve["wasmlayer"], serve["wasmtime"]]
axes[0].bar(names, [r["req_per_s"] for r in rows], color=["C0", "C1"])
axes[0].set_title(f"hello, wrk -c{serve['connections']} ({serve['ratio_req_per_s']:.2f}x)")
axes[0].set_ylabel("requests per second (higher is better)")
x = range(2)
w = 0.38
axes[1].bar([i - w / 2 for i in x], [r["p50_ms"] for r in rows], w, label="p50")
axes[1].bar([i + w / 2 for i in x], [r["p99_ms"] for r in rows], w, label="p99")
axes[1].set_xticks(list(x), names)
axes[1].set_ylabel("latency (ms, lower is better)")
axes[1].set_title("latency")
axes[1].set_ylim(0, max(r["p99_ms"] for r in rows) * 1.3)
axes[1].legend(loc="upper center", ncol=2)
if density:
    ds = density["rows"]
    labels = [f"{r['n']:,} live" for r in ds]
    host = [r["host_overhead_per_instance_kb"] for r in ds]
    pools = [r.get("pools_per_instance_kb", 0) for r in ds]
    mem = [r["guest_resident_per_instance_kb"] for r in ds]
    axes[2].bar(labels, host, label="host overhead")
    axes[2].bar(labels, pools, bottom=host, label="stack + table pools")
    axes[2].bar(labels, mem, bottom=[h + p for h, p in zip(host, pools)], label="guest linear memory")
    axes[2].axhline(10, color="grey", linestyle="--", linewidth=1, label="host target")
    axes[2].set_ylabel("resident KB per live instance")
    axes[2].set_title("density (sleeping guests)")
    axes[2].set_ylim(0, max(h + p + m for h, p, m in zip(host, pools, mem)) * 1.45)
    axes[2].legend(loc="upper center", ncol=2, fontsize="small")
fig.suptitle(f"{serve['machine']}, {serve['date']}", fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
