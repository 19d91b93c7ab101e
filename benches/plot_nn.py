"""Silero VAD per inference (native ONNX Runtime, wasi-nn from a core module
and a component, packed with tract) and peak memory, from
target/bench/nn.json: draws target/bench/nn.png."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

r = json.load(open(sys.argv[1]))
labels = {
    "native": "native ORT\n(Python)",
    "native-1-thread": "native ORT\n1 thread",
    "wasi-nn-nn-vad": "wasi-nn\ncore module",
    "wasi-nn-nn-vad-p2": "wasi-nn\ncomponent",
    "packed-wasmlayer": "packed\nwasmlayer",
    "packed-wasmtime": "packed\nwasmtime",
}
names = [n for n in labels if n in r["vad"]]
colors = ["C2", "C2", "C0", "C0", "C1", "C1"][: len(names)]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].bar([labels[n] for n in names], [r["vad"][n]["us_per_inference"] for n in names], color=colors)
axes[0].set_ylabel("µs per inference (lower is better)")
axes[0].set_title("Silero VAD, one 512-sample window")
for i, n in enumerate(names):
    axes[0].text(i, r["vad"][n]["us_per_inference"], f"{r['vad_ratio_to_native'][n]:.2f}x", ha="center", va="bottom")
axes[1].bar([labels[n] for n in names], [r["vad"][n]["max_rss_kb"] / 1024 for n in names], color=colors)
axes[1].set_ylabel("peak RSS of the process (MB)")
axes[1].set_title("memory")
for ax in axes:
    ax.tick_params(axis="x", labelsize=8)
fig.suptitle(f"{r['machine']}, {r['date']}", fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
