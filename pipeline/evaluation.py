"""Scoring sampled frames: video predictions from the chosen frames' logits, metrics, and the
per-class saliency curves of Fig. 5. Pure functions on arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.fusion import select_frames
from pipeline.metrics import mean_average_precision, top1_accuracy, video_scores


@dataclass(frozen=True)
class Recognition:
    """Video-level results of one sampler, in percent."""

    map: float
    top1: float


def scores_at(frame_logits: Sequence[np.ndarray], positions: Sequence[np.ndarray]) -> np.ndarray:
    """[V, C] video scores: mean softmax of the logits at each video's chosen positions."""
    return np.concatenate([video_scores(logits[None, np.asarray(chosen)]) for logits, chosen in zip(frame_logits, positions)])


def all_frame_scores(frame_logits: Sequence[np.ndarray]) -> np.ndarray:
    """[V, C] video scores: mean softmax over every frame of each video's logits."""
    return scores_at(frame_logits, [np.arange(len(logits)) for logits in frame_logits])


def top_classes(scores: np.ndarray, classes: Sequence[str], n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` best classes of one video's scores, ties to the earlier class."""
    return [(classes[c], float(scores[c])) for c in np.argsort(-scores, kind="stable")[:n]]


def recognition(scores: np.ndarray, labels: Sequence[Sequence[int]]) -> Recognition:
    return Recognition(100.0 * mean_average_precision(scores, labels), 100.0 * top1_accuracy(scores, labels))


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
    s = s / s.sum(axis=1, keepdims=True)
    out = np.full((num_classes, s.shape[1]), np.nan)
    for c in range(num_classes):
        members = [i for i, video_labels in enumerate(labels) if c in video_labels]
        if members:
            out[c] = s[members].mean(axis=0)
    return out

