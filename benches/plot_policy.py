"""p50/p99 evaluation latency per engine and case, from target/bench/policy.json."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = json.load(open(sys.argv[1]))
engines = [("wasm", "our OPA-Wasm host"), ("native", "regorus, native"), ("sdk", "OPA npm SDK (Node.js)")]
fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 4))
for ax, row in zip(axes, rows):
    x = range(len(engines))
    w = 0.38
    ax.bar([i - w / 2 for i in x], [row[k]["p50_us"] for k, _ in engines], w, label="p50")
    ax.bar([i + w / 2 for i in x], [row[k]["p99_us"] for k, _ in engines], w, label="p99")
    ax.set_xticks(list(x), [n for _, n in engines], rotation=15, fontsize=8)
    ax.set_title(f"{row['case']} (module {row['module_bytes'] / 1024:.0f} KB)")
    ax.set_ylabel("µs per evaluation (lower is better)")
    ax.legend(loc="upper left")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"wrote {sys.argv[2]}")
