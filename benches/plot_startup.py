"""Bar chart of start-up time and peak memory from target/bench/startup.json."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
rows = data["startup"]
labels = [f"{r['guest']}\n{r['cache']} cache" for r in rows]
x = range(len(rows))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
w = 0.38
ax1.bar([i - w / 2 for i in x], [r["wasmlayer_ms"] for r in rows], w, yerr=[r["wasmlayer_sd_ms"] for r in rows], label="wasmlayer run")
ax1.bar([i + w / 2 for i in x], [r["wasmtime_ms"] for r in rows], w, yerr=[r["wasmtime_sd_ms"] for r in rows], label="wasmtime run")
for i, r in enumerate(rows):
    ax1.text(i, max(r["wasmlayer_ms"], r["wasmtime_ms"]) * 1.04, f"{r['ratio']:.2f}x", ha="center", fontsize=9)
ax1.set_xticks(list(x), labels)
ax1.set_yscale("log")
ax1.set_ylabel("process start to exit (ms, log scale)")
ax1.set_title("Start-up, same guest (lower is better)")
ax1.legend()
guests = list(data["peak_rss_kb"])
ax2.bar([i - w / 2 for i in range(len(guests))], [data["peak_rss_kb"][g]["wasmlayer"] / 1024 for g in guests], w, label="wasmlayer")
ax2.bar([i + w / 2 for i in range(len(guests))], [data["peak_rss_kb"][g]["wasmtime"] / 1024 for g in guests], w, label="wasmtime")
ax2.axhline(8, color="grey", linestyle="--", linewidth=1)
ax2.set_xticks(range(len(guests)), guests)
ax2.set_ylabel("peak RSS (MB)")
ax2.set_title("Peak memory, warm cache")
fig.suptitle(f"{data['machine']} — {data['date']}", fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
