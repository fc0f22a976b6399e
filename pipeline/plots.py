"""PNG figures of the evaluation report (matplotlib, an optional extra: ``pip install nsnet[plots]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_budget_curve(curve: dict[str, list[dict[str, float]]], path: Path, title: str) -> None:
    """Fig. 3: mAP against GFLOPs per video, one line per sampler, one point per K."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, points in curve.items():
        ax.plot([p["gflops"] for p in points], [p["map"] for p in points], marker="o", label=name)
        for p in points:
            ax.annotate(f"{int(p['k'])}", (p["gflops"], p["map"]), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("GFLOPs per video (multiply-adds, 10^9)")
    ax.set_ylabel("mAP (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_class_saliency(panels: list[dict[str, Any]], path: Path) -> None:
    """Fig. 5: per class, the mean saliency over time of each variant (already smoothed)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name, values in panel["curves"].items():
            ax.plot(range(len(values)), values, label=name)
        ax.set_title(f"{panel['class']} (AP {panel['ap']:.1f})", fontsize=10)
        ax.set_xlabel("observed frame t")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean saliency (EMA 0.8)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
