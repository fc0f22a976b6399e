"""Class prototypes, guiding saliency scores (paper eq. 1, A.1, B.1) and NS pseudo labels.

Shapes: V videos, T frames, D recognizer feature size, C classes. Labels are multi-hot
``[V, C]`` arrays (one or more positives a video).

**Prototypes (A.1).** For a training video of class ``c``, keep the frames the recognizer
predicts correctly (``argmax_j logits[i, j] == c``), take the top ``epsilon`` percent of them
(at least one) by the ground-truth probability ``softmax(logits[i])[c]``, and average their
features: the guiding video feature. The prototype ``p_c`` is the mean of the guiding features
of the videos of class ``c``. A multi-label video contributes to each of its classes, with that
class as ``c``. A video with no correctly predicted frame contributes nothing; a class left
with no contributing video falls back to the same rule without the correctness filter (top
``epsilon`` percent of all its videos' frames by probability of ``c``), and is listed in
``fallback_classes_``.

**Guiding score (eq. 1).** ``g_i = softmax_j(phi(x_i, p_j))[c]`` with
``phi(x, p) = -||x - p||_2 / temperature``: the similarity is the *negative* Euclidean
distance, so the nearest prototype gets the highest score; ``temperature`` (default 1, the
paper's plain distance) sets the scale. For a multi-label video, ``g_i`` is the summed score
of its classes. The response-based alternative (B.1) is ``g_i = softmax(logits_i)`` summed
over the video's classes.

The NS pseudo labels built from ``g`` (section 3.4) are
:func:`pipeline.sampler_training.ns_targets`.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from pipeline.config import refuse_outside

GUIDES = ("prototype", "response")


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def guiding_features(features: np.ndarray, logits: np.ndarray, classes: np.ndarray, epsilon: float, require_correct: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A.1 for P (video, class) pairs at once: ``features`` [P, T, D] and ``logits`` [P, T, C] of
    each pair's video, ``classes`` [P] its class ``c``. Returns the guiding video features
    [P, D] (mean feature of the top ``epsilon`` percent, at least one, of the frames predicted
    as ``c``, ranked by the probability of ``c``, ties to the earlier frame) and a [P] mask of
    the pairs that have one (some frame predicted as ``c``; every pair without
    ``require_correct``)."""
    pairs = np.arange(len(classes))
    probability = softmax(logits)[pairs, :, classes]  # [P, T]
    candidate = logits.argmax(axis=-1) == classes[:, None] if require_correct else np.ones(probability.shape, dtype=bool)
    count = candidate.sum(axis=1)
    keep = np.maximum(1, np.ceil(count * epsilon / 100.0)).astype(np.int64)
    order = np.argsort(np.where(candidate, -probability, np.inf), axis=1, kind="stable")
    rank = np.argsort(order, axis=1)  # each frame's place in its pair's order
    weights = (rank < keep[:, None]) & candidate
    guides = np.einsum("pt,ptd->pd", weights / keep[:, None], features)
    return guides, count > 0


class ClassSums:
    """Running sums of the guiding video features of every class, with and without A.1's
    correctness filter, so that the prototypes of a dataset can be built a block of videos at
    a time: the result does not depend on how the videos are split into blocks."""

    def __init__(self, num_classes: int, dim: int):
        self.correct = np.zeros((num_classes, dim))
        self.correct_count = np.zeros(num_classes, dtype=np.int64)
        self.any = np.zeros((num_classes, dim))  # the fallback: no correctness filter
        self.any_count = np.zeros(num_classes, dtype=np.int64)

    def add(self, features: np.ndarray, logits: np.ndarray, labels: np.ndarray, epsilon: float) -> None:
        """Add a block of videos ([V, T, D], [V, T, C], multi-hot [V, C]); a multi-label video
        counts for each of its classes."""
        video, cls = np.nonzero(labels > 0)
        for sums, counts, require_correct in ((self.correct, self.correct_count, True), (self.any, self.any_count, False)):
            guides, valid = guiding_features(features[video], logits[video], cls, epsilon, require_correct)
            np.add.at(sums, cls[valid], guides[valid])
            np.add.at(counts, cls[valid], 1)

    def prototypes(self) -> tuple[np.ndarray, list[int], list[int]]:
        """Prototypes ``[C, D]`` (NaN for a class without videos), the classes that needed the
        fallback, and those with no video."""
        fallback = (self.correct_count == 0) & (self.any_count > 0)
        empty = self.any_count == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            prototypes = np.where(fallback[:, None], self.any / self.any_count[:, None], self.correct / self.correct_count[:, None])
        prototypes[empty] = np.nan
        return prototypes, np.flatnonzero(fallback).tolist(), np.flatnonzero(empty).tolist()


def prototype_scores(features: np.ndarray, prototypes: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Eq. 1 for every class: ``softmax_j(-||x - p_j|| / temperature)``; [..., D] -> [..., C].
    Distances come from matrix products, ``||x||^2 - 2 x.p + ||p||^2``, in float64 (memory of
    the output's size, not of [..., C, D]). Classes without a prototype (NaN) get probability 0."""
    x = np.asarray(features, dtype=np.float64)
    p = np.asarray(prototypes, dtype=np.float64)
    known = ~np.isnan(p).any(axis=1)
    squared = (x * x).sum(axis=-1, keepdims=True) - 2.0 * x @ p[known].T + (p[known] ** 2).sum(axis=-1)
    similarity = np.full(x.shape[:-1] + (len(p),), -np.inf)
    similarity[..., known] = -np.sqrt(np.maximum(squared, 0.0)) / temperature
    return softmax(similarity)


class GuidingScorer(BaseEstimator, TransformerMixin):
    """scikit-learn-style estimator of the guiding saliency score.

    ``fit(X, y, logits=...)`` builds the class prototypes from the training videos' recognizer
    features ``X`` [V, T, D], multi-hot labels ``y`` [V, C] and recognizer logits [V, T, C];
    ``partial_fit`` does the same a block of videos at a time (the prototypes after the last
    block equal ``fit`` on all of them); ``transform(X, y, logits=...)`` returns ``g`` [V, T]
    and works on any block. ``guide="response"`` (B.1) needs no prototypes and uses the logits
    alone.
    """

    def __init__(self, epsilon: float = 30.0, guide: str = "prototype", temperature: float = 1.0):
        self.epsilon = epsilon
        self.guide = guide
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray, logits: np.ndarray | None = None) -> "GuidingScorer":
        for name in ("n_classes_", "class_sums_"):
            self.__dict__.pop(name, None)
        return self.partial_fit(X, y, logits)

    def partial_fit(self, X: np.ndarray, y: np.ndarray, logits: np.ndarray | None = None) -> "GuidingScorer":
        """Add a block of training videos to the class sums and update the prototypes."""
        self._check_params()
        X, y, logits = _check(X, y, logits)
        if not hasattr(self, "n_classes_"):
            self.n_classes_ = y.shape[1]
            self.class_sums_ = ClassSums(self.n_classes_, X.shape[-1]) if self.guide == "prototype" else None
        elif y.shape[1] != self.n_classes_:
            raise ValueError(f"this block has {y.shape[1]} classes, the earlier ones {self.n_classes_}")
        if self.class_sums_ is not None:
            self.class_sums_.add(X, logits, y, self.epsilon)
            self.prototypes_, self.fallback_classes_, self.empty_classes_ = self.class_sums_.prototypes()
        else:
            self.prototypes_, self.fallback_classes_, self.empty_classes_ = None, [], []
        return self

    def _check_params(self) -> None:
        """The parameters' ranges, checked where they are used (as scikit-learn's estimators do:
        ``set_params`` may change them after construction)."""
        refuse_outside(self, (
            ("guide", self.guide in GUIDES, f"one of {GUIDES}"),
            ("epsilon", 0 < self.epsilon <= 100, "a percentage in (0, 100] (A.1: the top share of a video's correctly recognised frames)"),
            ("temperature", 0 < self.temperature < math.inf, "above 0 and finite (eq. 1's distances are divided by it)"),
        ))

    def class_scores(self, X: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        """Per-class guiding scores [V, T, C] (label-free)."""
        check_is_fitted(self, "n_classes_")
        self._check_params()
        if self.guide == "response":
            if logits is None:
                raise ValueError("the response-based guide needs the recognizer logits")
            return softmax(np.asarray(logits, dtype=np.float64))
        return prototype_scores(np.asarray(X, dtype=np.float64), self.prototypes_, self.temperature)

    def transform(self, X: np.ndarray, y: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        """Guiding saliency ``g`` [V, T]: the score of the video's own class(es)."""
        X, y, logits = _check(X, y, logits, need_logits=self.guide == "response")
        scores = self.class_scores(X, logits)
        return np.clip((scores * (y[:, None, :] > 0)).sum(axis=-1), 0.0, 1.0)

    def fit_transform(self, X: np.ndarray, y: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, y, logits).transform(X, y, logits)


def _check(X, y, logits, need_logits: bool = True):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 3:
        raise ValueError(f"features must be [videos, frames, dims], got shape {X.shape}")
    if y.ndim != 2 or y.shape[0] != X.shape[0]:
        raise ValueError(f"labels must be multi-hot [videos, classes] for {X.shape[0]} videos, got shape {y.shape}")
    if (y.sum(axis=1) == 0).any():
        raise ValueError("every video needs at least one label")
    if logits is None:
        if need_logits:
            raise ValueError("the recognizer logits are needed")
        return X, y, None
    logits = np.asarray(logits, dtype=np.float64)
    if logits.shape != X.shape[:2] + (y.shape[1],):
        raise ValueError(f"logits must be [videos, frames, classes] = {X.shape[:2] + (y.shape[1],)}, got {logits.shape}")
    return X, y, logits
