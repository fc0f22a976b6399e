"""PNG figures of the evaluation report, the benchmark and the training runs (matplotlib, an optional extra: ``pip install nsnet[plots]``)."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.wording import message_line


def matplotlib_available() -> bool:
    """Whether matplotlib is installed (looked up, not imported)."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(draw: Callable[..., None]) -> Callable[..., bool]:
    """A plotting function made to return whether its figure (its ``path``) was written: one that
    cannot be drawn (matplotlib installed but failing to import, a font it cannot read) is a
    warning naming it, so that the stage whose results it shows still writes and keeps them; a
    full disk (:class:`~pipeline.cache.CacheError`) stops the stage as any write would."""
    signature = inspect.signature(draw)

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> bool:
        from pipeline.cache import CacheError, settled_path

        try:
            draw(*args, **kwargs)
        except CacheError:
            raise
        except Exception as exc:
            if "matplotlib.pyplot" in sys.modules:
                sys.modules["matplotlib.pyplot"].close("all")
            path = settled_path(signature.bind(*args, **kwargs).arguments["path"])  # evaluate draws in its output's temporary folder
            warnings.warn(f"{path}: figure not drawn ({type(exc).__name__}: {message_line(str(exc))})", stacklevel=2)
            return False
        return True

    return drawn


def _save(plt: Any, fig: Any, path: Path, dpi: int) -> None:
    """``fig`` as a PNG at ``path``, whole or not at all (written beside it and renamed into
    place, so that a kill leaves no half-written figure that a later run would take for drawn),
    then closed."""
    from pipeline.cache import replacing

    try:
        with replacing(Path(path)) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)


@figure
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
    _save(plt, fig, path, dpi=120)


@figure
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
    _save(plt, fig, path, dpi=120)


@figure
def plot_video_saliency(prediction: Any, classes: Sequence[str], fusion: str, alpha: float, path: Path) -> None:
    """Figs. 4/5 for one video: FSM, VGM and fused saliency over the observed frames with the
    chosen ones marked, and thumbnails of the chosen frames. Each curve is scaled to sum 1;
    the fused curve is the score sum ``alpha s_f + (1 - alpha) s_v`` (an index rule such as
    union chooses a set, not a curve)."""
    import numpy as np

    from pipeline.fusion import fused_scores

    plt = _pyplot()
    k = len(prediction.positions)
    fig = plt.figure(figsize=(max(6.0, 1.5 * k), 5.2))
    grid = fig.add_gridspec(2, k, height_ratios=(2.2, 1.0))
    ax = fig.add_subplot(grid[0, :])
    times = prediction.observed_timestamps
    x = np.arange(len(prediction.s_f)) if times is None else times
    curves = {"FSM s_f": prediction.s_f, "VGM s_v": prediction.s_v, f"fused ({alpha:g} s_f + {1 - alpha:g} s_v)": fused_scores(prediction.s_f, prediction.s_v, "add", alpha)}
    for name, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        ax.plot(x, values / values.sum(), marker=".", label=name)
    for j, p in enumerate(prediction.positions):
        ax.axvline(x[p], color="black", alpha=0.25, linewidth=3, label=f"chosen ({fusion} fusion)" if j == 0 else None)
    top = prediction.top(classes, 3)
    ax.set_title(f"{Path(prediction.path).name}: " + ", ".join(f"{c} {s:.2f}" for c, s in top), fontsize=10)
    ax.set_xlabel("time (s)" if times is not None else "observed frame")
    ax.set_ylabel("saliency (sums to 1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    chosen_times = prediction.timestamps
    for j in range(k):
        thumb = fig.add_subplot(grid[1, j])
        if prediction.thumbnails is not None:
            thumb.imshow(prediction.thumbnails[j])
        label = f"frame {prediction.frame_indices[j]}" + ("" if chosen_times is None else f"\n{chosen_times[j]:.2f} s")
        thumb.set_title(label, fontsize=8)
        thumb.axis("off")
    fig.tight_layout()
    _save(plt, fig, path, dpi=110)


@figure
def plot_fractions(panels: list[dict[str, Any]], path: Path, title: str) -> None:
    """Table 5's speedup over DENSE as a fraction of the FLOP bound, one panel a batch size: each
    repetition's fraction in the order measured (a line per backend, so the machine's drift
    shows), the run's fraction dotted in the backend's colour, the target dashed."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name, series in panel["backends"].items():
            reps = series["repetitions"]
            (line,) = ax.plot(range(1, len(reps) + 1), reps, marker="o", markersize=3, label=f"{name}: {series['fraction']:.2f}")
            ax.axhline(series["fraction"], color=line.get_color(), linestyle=":", linewidth=1)
        ax.axhline(panel["target"], color="black", linestyle="--", linewidth=1, label=f"target {panel['target']:g}")
        ax.set_title(f"batch {panel['batch']}", fontsize=10)
        ax.set_xlabel("repetition, in the order measured")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("fraction of the FLOP-bound speedup")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(plt, fig, path, dpi=120)


CURVES_NAME = "curves.png"  # a training run's curves, beside its metrics.json


@figure
def plot_training_curves(history: Sequence[dict[str, float]], panels: Sequence[tuple[str, dict[str, str], str]], path: Path, title: str) -> None:
    """A training run's log over its epochs: one panel a ``(title, {key: label}, y label)``,
    a line a key, over the epochs whose entries hold it (a validation every few epochs); a key
    no entry holds is left out, as is a panel of such keys alone; a panel whose y label is
    ``"learning rate"`` is drawn on a log scale."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = [panel for panel in panels if any(key in entry for key in panel[1] for entry in history)]
    span = (history[0]["epoch"] - 0.5, history[-1]["epoch"] + 0.5)  # every panel over the run's epochs, a few points too
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
    for ax, (name, lines, ylabel) in zip(axes[0], panels):
        for key, label in lines.items():
            logged = [entry for entry in history if key in entry]
            if logged:
                ax.plot([entry["epoch"] for entry in logged], [entry[key] for entry in logged], marker="." if len(logged) <= 40 else None, label=label)
        if ylabel == "learning rate":
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_xlim(*span)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(plt, fig, path, dpi=110)


def draw_curves_once(history: Sequence[dict[str, float]], panels: Sequence[tuple[str, dict[str, str], str]], path: Path, title: str) -> bool:
    """A finished run's curves (:func:`plot_training_curves`) at ``path`` in its folder, drawn
    where it is not there and matplotlib is; whether it is there now. Drawn holding the run's
    lock (:func:`~pipeline.cache.output_lock_path` of the folder), so that one command draws at
    a time and what a killed one left half-written goes. The commands draw them after the run,
    in a process that then ends: drawn in a process that went on training or evaluating
    (evaluate after its w/o-NS run, the ablations), a figure had raised that process's later
    memory by 0.2-0.5 GiB (README, The train stage). Not drawn in a folder this process cannot
    write (a shared folder's run, used where it lies: :func:`~pipeline.shared_caches.output_beside`)."""
    from pipeline.cache import output_lock_path, writing_alone
    from pipeline.file_rights import can_write_in

    if not path.exists() and history and matplotlib_available() and can_write_in(path.parent):
        with writing_alone(path, lock=output_lock_path(path.parent)):
            if not path.exists():
                plot_training_curves(history, panels, path, title)
    return path.exists()


SALIENT_COLOUR, NON_SALIENT_COLOUR = "#00b8c8", "#e02020"  # the paper's Fig. 4: aqua and red outlines


@figure
def plot_showcase(videos: Sequence[Any], path: Path, title: str) -> None:
    """Fig. 4: per video (:class:`pipeline.showcase.ShowcaseVideo`), a row of chosen frames per
    sampler, each outlined aqua where salient and red where not, captioned with its frame
    index, time and guiding score; a grey tile where the video was not decoded."""
    import numpy as np

    plt = _pyplot()
    columns = max(len(row.frames) for video in videos for row in video.rows)
    fig = plt.figure(figsize=(1.5 * columns + 1.8, sum(1.5 * len(video.rows) + 0.6 for video in videos)), layout="constrained")
    fig.suptitle(title, fontsize=10)
    for panel, video in zip(np.atleast_1d(fig.subfigures(len(videos), 1)), videos):
        panel.suptitle(f"{video.video_id}: {', '.join(video.labels)}" + (f"\nnot decoded: {video.error[:120]}" if video.error else ""), fontsize=9)
        axes = panel.subplots(len(video.rows), columns, squeeze=False)
        for axes_row, row in zip(axes, video.rows):
            for ax, frame, g, salient in zip(axes_row, row.frames, row.g, row.salient):
                picture = video.thumbnails.get(frame) if video.thumbnails else None
                ax.imshow(np.full((9, 12, 3), 220, dtype=np.uint8) if picture is None else picture)
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_color(SALIENT_COLOUR if salient else NON_SALIENT_COLOUR)
                    spine.set_linewidth(3)
                time = "" if video.times is None else f", {video.times[frame]:.1f} s"
                ax.set_xlabel(f"frame {frame}{time}\ng {g:.2f}", fontsize=7)
            for ax in axes_row[len(row.frames):]:
                ax.axis("off")
            axes_row[0].set_ylabel(f"{row.method}\n→ {row.prediction}", fontsize=8)
    _save(plt, fig, path, dpi=110)
