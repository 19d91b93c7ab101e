"""Create-to-exit through CRI (runc, containerd-shim-wasmlayer-v1, runwasi's
containerd-shim-wasmtime-v1) and memory per running Wasm container, from
target/bench/shim.json: prints the ratios and draws target/bench/shim.png."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

r = json.load(open(sys.argv[1]))
ours = r["wasmlayer"]
print(f"create to exit, median: wasmlayer {ours['median_ms']:.1f} ms, runc {r['runc']['median_ms']:.1f} ms "
      f"-> {r['runc']['median_ms'] / ours['median_ms']:.2f}x runc")
if "wasmtime" in r:
    wt = r["wasmtime"]
    print(f"create to exit, median: runwasi wasmtime shim {wt['median_ms']:.1f} ms "
          f"-> {wt['median_ms'] / ours['median_ms']:.2f}x ours")
for name in ("wasmlayer", "wasmtime"):
    if name in r:
        print(f"memory per running container ({name}): {r[name]['rss_kb_per_container'] / 1024:.1f} MB RSS, "
              f"{r[name]['pss_kb_per_container'] / 1024:.1f} MB PSS")

names = [n for n in ("runc", "wasmlayer", "wasmtime") if n in r]
labels = {"runc": "runc\n(busybox echo)", "wasmlayer": "wasmlayer shim", "wasmtime": "runwasi\nwasmtime shim"}
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
axes[0].bar([labels[n] for n in names], [r[n]["median_ms"] for n in names], color=["C2", "C0", "C1"][: len(names)])
axes[0].set_ylabel("create to exit, median (ms, lower is better)")
axes[0].set_title(f"hello through CRI ({ours['runs']} runs each)")
wasm = [n for n in names if n != "runc"]
x = range(len(wasm))
w = 0.38
axes[1].bar([i - w / 2 for i in x], [r[n]["rss_kb_per_container"] / 1024 for n in wasm], w, label="RSS")
axes[1].bar([i + w / 2 for i in x], [r[n]["pss_kb_per_container"] / 1024 for n in wasm], w, label="PSS")
axes[1].axhline(10, color="grey", linestyle="--", linewidth=1, label="10 MB target")
axes[1].set_xticks(list(x), [labels[n] for n in wasm])
axes[1].set_ylabel("MB per running container (lower is better)")
axes[1].set_title(f"{ours['live']} sleeping containers in one pod")
axes[1].legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"wrote {sys.argv[2]}")
