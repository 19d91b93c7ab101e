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
# Median with the min-max range, binary in the page cache and dropped from it.
cols = [(g, c) for g in data["peak_rss_kb"] for c in data["peak_rss_kb"][g]]
for k, (who, off) in enumerate((("wasmlayer", -w / 2), ("wasmtime", w / 2))):
    cells = [data["peak_rss_kb"][g][c][who] for g, c in cols]
    med = [s["median"] / 1024 for s in cells]
    err = [[(s["median"] - s["min"]) / 1024 for s in cells], [(s["max"] - s["median"]) / 1024 for s in cells]]
    ax2.bar([i + off for i in range(len(cols))], med, w, yerr=err, label=who)
ax2.axhline(8, color="grey", linestyle="--", linewidth=1)
ax2.set_xticks(range(len(cols)), [f"{g.replace('hello-', '')}\n{'cached' if c == 'warm' else 'dropped'}" for g, c in cols], fontsize=8)
ax2.set_xlabel("binary in the page cache, or dropped before each run", fontsize=8)
ax2.set_ylabel("peak RSS (MB), median and range of 20")
ax2.set_title("Peak memory, warm compile cache")
ax2.legend(loc="lower right", fontsize=8)
fig.suptitle(f"{data['machine']} — {data['date']}", fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
