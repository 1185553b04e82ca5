"""Bar charts (PNG) from the JSON results in benchmarks/results/, for the README.

python benchmarks/charts.py        # needs matplotlib; reads results/*.json, writes results/*.png
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
COLORS = {
    "gpudecode": "#2a9d8f",
    "gpudecode (index cache)": "#8ecae6",
    "torchcodec": "#e76f51",
    "torchcodec (all threads)": "#f4a261",
    "pyav": "#6c757d",
    "pyav (to_ndarray)": "#6c757d",
}


def seed_chart(path: Path) -> Path:
    data = json.loads(path.read_text())
    res = data["results"]
    panels = [
        ("Decoder creation, 23-min clip (ms)", ["create/long/exact", "create/long/approximate"], "median_s", 1e3),
        (
            "5 random clips x 2 frames, creation incl. (ms)",
            ["sample/random_5x2/exact", "sample/random_5x2/approximate"],
            "median_s",
            1e3,
        ),
        (
            "8 regular clips x 16 frames (ms)",
            ["sample/regular_8x16/exact", "sample/regular_8x16/approximate"],
            "median_s",
            1e3,
        ),
        ("Sequential RGB decode, 640x360 (frames/s)", ["sequential/short"], "frames_per_s", 1),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (title, keys, field, scale) in zip(axes, panels, strict=True):
        labels, values, colors = [], [], []
        for key in keys:
            for lib, v in res[key].items():
                mode = key.split("/")[-1]
                labels.append(f"{lib}\n{mode}" if len(keys) > 1 else lib)
                values.append(v[field] * scale)
                colors.append(COLORS.get(lib, "#999999"))
        y = range(len(values))
        ax.barh(list(y), values, color=colors)
        ax.set_yticks(list(y), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, f" {v:.0f}" if v >= 10 else f" {v:.1f}", va="center", fontsize=7)
        ax.margins(x=0.25)
    m = data["machine"]
    fig.suptitle(
        f"gpudecode {data['gpudecode']} vs torchcodec {data['torchcodec']} (CPU) vs PyAV - {m.get('cpu')}, "
        f"{m.get('cores')} cores, {m['date'][:10]}  (lower ms / higher frames/s is better)",
        fontsize=9,
    )
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def gpu_chart(path: Path) -> Path:
    data = json.loads(path.read_text())
    res = data["results"]
    keys = [k for k in res if k.endswith("/sequential")]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels, values = [], []
    for key in keys:
        for lib, v in res[key].items():
            labels.append(f"{key.split('/')[0]} {lib}")
            values.append(v["frames_per_s"])
    ax.barh(range(len(values)), values, color="#2a9d8f")
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"1080p sequential decode to RGB tensors (frames/s) - {data['machine'].get('gpu')}", fontsize=9)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    for name, fn in (("seed_experiment.json", seed_chart), ("gpu_decode.json", gpu_chart)):
        p = RESULTS / name
        if p.exists():
            print("wrote", fn(p))


if __name__ == "__main__":
    main()
