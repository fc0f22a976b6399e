"""Scoring sampled frames: video predictions from the chosen frames' logits, metrics, and the
per-class saliency curves of Fig. 5. Pure functions on arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pipeline.fusion import select_frames
from pipeline.metrics import class_average_precision, mean_over_classes, multi_hot, top1_accuracy, video_scores


@dataclass(frozen=True)
class Recognition:
    """Video-level results of one sampler: mAP and top-1 in percent, and the AP of each class
    (a fraction, NaN for a class without a positive video) whose mean the mAP is."""

    map: float
    top1: float
    class_ap: np.ndarray = field(compare=False, repr=False)


SCORE_BLOCK = 2048  # videos scored at a time


def scores_at(frame_logits: Sequence[np.ndarray] | np.ndarray, positions: Sequence[np.ndarray]) -> np.ndarray:
    """[V, C] video scores: mean softmax (in float64) of the logits at each video's chosen
    positions. ``frame_logits`` is a [V, T, C] array (videos with the same number of chosen
    frames are scored together, a block at a time) or a list of [T_i, C] arrays."""
    if not isinstance(frame_logits, np.ndarray):
        return np.concatenate([video_scores(np.asarray(logits, dtype=np.float64)[None, np.asarray(chosen)]) for logits, chosen in zip(frame_logits, positions)])
    scores = np.empty((len(positions), frame_logits.shape[-1]))
    lengths = np.array([len(p) for p in positions])
    for length in np.unique(lengths):
        same = np.flatnonzero(lengths == length)
        for start in range(0, len(same), SCORE_BLOCK):
            block = same[start : start + SCORE_BLOCK]
            chosen = np.stack([np.asarray(positions[i]) for i in block])[..., None]
            scores[block] = video_scores(np.take_along_axis(frame_logits[block], chosen, axis=1).astype(np.float64))
    return scores


def all_frame_scores(frame_logits: Sequence[np.ndarray]) -> np.ndarray:
    """[V, C] video scores: mean softmax over every frame of each video's logits."""
    return scores_at(frame_logits, [np.arange(len(logits)) for logits in frame_logits])


def top_classes(scores: np.ndarray, classes: Sequence[str], n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` best classes of one video's scores, ties to the earlier class."""
    return [(classes[c], float(scores[c])) for c in np.argsort(-scores, kind="stable")[:n]]


def recognition(scores: np.ndarray, labels: Sequence[Sequence[int]]) -> Recognition:
    class_ap = class_average_precision(scores, labels)
    return Recognition(100.0 * mean_over_classes(class_ap), 100.0 * top1_accuracy(scores, labels), class_ap)


def fused_positions(s_f: np.ndarray, s_v: np.ndarray, k: int, rule: str, alpha: float) -> list[np.ndarray]:
    """The K chosen positions of every video ([V, T] saliency of both modules)."""
    return [select_frames(f, v, k, rule, alpha) for f, v in zip(s_f, s_v)]


def ema(values: np.ndarray, weight: float = 0.8) -> np.ndarray:
    """Exponential moving average along the last axis: ``m_t = w m_{t-1} + (1 - w) x_t``,
    ``m_0 = x_0`` (the smoothing of the paper's Fig. 5)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    out[..., 0] = values[..., 0]
    for t in range(1, values.shape[-1]):
        out[..., t] = weight * out[..., t - 1] + (1.0 - weight) * values[..., t]
    return out


def class_mean_saliency(saliency: np.ndarray, labels: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """[C, T]: for each class, the mean over its videos of their saliency over time, each
    video's scores first normalised to sum 1 (NaN for a class without videos)."""
    s = np.asarray(saliency, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = s / s.sum(axis=1, keepdims=True)  # NaN for a video whose scores are all 0
    members = multi_hot(labels, num_classes).astype(np.float64)  # [V, C]
    broken = np.isnan(s).any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (members.T @ np.where(broken[:, None], 0.0, s)) / members.sum(axis=0)[:, None]
    means[(members.T @ broken) > 0] = np.nan  # as the mean over the class's videos would be
    return means

