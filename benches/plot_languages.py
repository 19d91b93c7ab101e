"""Bar charts of start time and peak memory per language, from target/bench/languages.json."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
rows = data["guests"]
names = [r["guest"] for r in rows]
x = range(len(rows))
w = 0.38
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2))
ax1.bar([i - w / 2 for i in x], [r["wasmlayer_ms"] for r in rows], w,
        yerr=[r["wasmlayer_sd_ms"] for r in rows], label="wasmlayer run")
ax1.bar([i + w / 2 for i in x], [r["wasmtime_ms"] for r in rows], w,
        yerr=[r["wasmtime_sd_ms"] for r in rows], label="wasmtime run")
for i, r in enumerate(rows):
    ax1.text(i, max(r["wasmlayer_ms"], r["wasmtime_ms"]) * 1.03, f"{r['time_ratio']:.2f}x", ha="center", fontsize=8)
ax1.set_xticks(list(x), names, rotation=30, ha="right")
ax1.set_ylabel("start to exit, warm cache (ms)")
ax1.set_title("transform example: time (lower is better)")
ax1.legend()
ax2.bar([i - w / 2 for i in x], [r["wasmlayer_rss_kb"] / 1024 for r in rows], w, label="wasmlayer run")
ax2.bar([i + w / 2 for i in x], [r["wasmtime_rss_kb"] / 1024 for r in rows], w, label="wasmtime run")
for i, r in enumerate(rows):
    ax2.text(i, max(r["wasmlayer_rss_kb"], r["wasmtime_rss_kb"]) / 1024 * 1.03, f"{r['rss_ratio']:.2f}x",
             ha="center", fontsize=8)
ax2.set_xticks(list(x), names, rotation=30, ha="right")
ax2.set_ylabel("peak RSS (MB)")
ax2.set_title("peak memory (lower is better)")
ax2.legend()
fig.suptitle(f"{data['machine']}, {data['date']}", fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
