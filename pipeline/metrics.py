"""Video-level recognition metrics: mean frame softmax, top-1 and mAP (scikit-learn's AP)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (class scores), in the logits' dtype."""
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def video_scores(frame_logits: np.ndarray) -> np.ndarray:
    """[V, T, C] frame logits -> [V, C] video scores: the mean over frames of the softmax."""
    return softmax(frame_logits).mean(axis=1)


def multi_hot(labels: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), dtype=np.int8)
    for row, video_labels in enumerate(labels):
        out[row, list(video_labels)] = 1
    return out


def top1_accuracy(scores: np.ndarray, labels: Sequence[Sequence[int]]) -> float:
    """Share of videos whose highest-scoring class is one of their labels."""
    best = scores.argmax(axis=1)
    return float(np.mean([b in set(v) for b, v in zip(best, labels)]))


def class_average_precision(scores: np.ndarray, labels: Sequence[Sequence[int]]) -> np.ndarray:
    """[C] scikit-learn's average precision of each class's video scores; NaN for a class
    without a positive video (its AP is undefined)."""
    # imported here: scikit-learn's metrics take about 1.4 s to import, which the commands
    # that only need multi_hot (features, predict) need not pay
    from sklearn.metrics import average_precision_score

    truth = multi_hot(labels, scores.shape[1])
    present = truth.sum(axis=0) > 0
    out = np.full(scores.shape[1], np.nan)
    out[present] = average_precision_score(truth[:, present], scores[:, present], average=None)
    return out


def mean_over_classes(class_ap: np.ndarray) -> float:
    """The mAP of per-class APs (:func:`class_average_precision`): the mean over the classes
    with at least one positive video."""
    return float(np.nanmean(class_ap))


def mean_average_precision(scores: np.ndarray, labels: Sequence[Sequence[int]]) -> float:
    """Mean over classes (those with at least one positive video) of their average precision,
    as used for ActivityNet and FCVID."""
    return mean_over_classes(class_average_precision(scores, labels))
