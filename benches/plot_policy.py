"""p50 evaluation latency per engine and case (p99 as a tick above each bar),
and module sizes per case, from target/bench/policy.json."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = json.load(open(sys.argv[1]))
engines = [
    ("compiled", "compiled (our host)"),
    ("interpreter", "interpreter module (our host)"),
    ("native", "regorus, native"),
    ("opa", "OPA's module (our host)"),
    ("sdk", "npm SDK on compiled (Node.js)"),
]
modules = [("compiled", "compiled"), ("interpreter", "interpreter"), ("opa", "OPA's (opa build -t wasm)")]
# One colour per engine and its module, in both plots.
colours = {"compiled": "C0", "interpreter": "C1", "native": "C2", "opa": "C3", "sdk": "C4"}
cases = [r["case"] for r in rows]
x = range(len(rows))

fig, (lat, size) = plt.subplots(2, 1, figsize=(max(8, 1.5 * len(rows)), 8.5))

w = 0.8 / len(engines)
for i, (key, label) in enumerate(engines):
    xs = [j + (i - (len(engines) - 1) / 2) * w for j in x]
    have = [(xi, r[key]) for xi, r in zip(xs, rows) if r.get(key)]
    if not have:
        continue
    lat.bar([h[0] for h in have], [h[1]["p50_us"] for h in have], w, label=label, color=colours[key])
    lat.scatter([h[0] for h in have], [h[1]["p99_us"] for h in have], marker="_",
                color=colours[key], s=60, zorder=3)
lat.set_yscale("log")
lat.set_ylim(top=6 * max(r[k]["p99_us"] for r in rows for k, _ in engines if r.get(k)))
lat.set_xticks(list(x), cases, rotation=20, ha="right", fontsize=8)
lat.set_ylabel("µs per evaluation, p50 (tick: p99), log scale")
lat.set_title("Policy evaluation latency (lower is better)")
lat.legend(fontsize=7, ncol=3, loc="upper left")

w = 0.8 / len(modules)
for i, (key, label) in enumerate(modules):
    xs = [j + (i - (len(modules) - 1) / 2) * w for j in x]
    have = [(xi, r["sizes"][key]) for xi, r in zip(xs, rows) if r["sizes"].get(key)]
    if have:
        size.bar([h[0] for h in have], [h[1] / 1024 for h in have], w, label=label, color=colours[key])
size.set_yscale("log")
# Room above the tallest bar for the legend.
size.set_ylim(top=4 * max(v for r in rows for v in r["sizes"].values() if v) / 1024)
size.set_xticks(list(x), cases, rotation=20, ha="right", fontsize=8)
size.set_ylabel("module size, KiB, log scale")
size.set_title("Module size")
size.legend(fontsize=7, ncol=3, loc="upper left")

fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"wrote {sys.argv[2]}")
