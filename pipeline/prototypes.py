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

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

GUIDES = ("prototype", "response")


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def top_fraction(values: np.ndarray, percent: float) -> np.ndarray:
    """Indices of the top ``percent`` % of ``values`` (at least one), highest first."""
    k = max(1, int(np.ceil(len(values) * percent / 100.0)))
    return np.argsort(-values, kind="stable")[:k]


def guiding_video_feature(features: np.ndarray, logits: np.ndarray, c: int, epsilon: float, require_correct: bool = True) -> np.ndarray | None:
    """A.1: mean feature of the top-epsilon% correctly predicted frames ([T, D], [T, C]);
    ``None`` when no frame is predicted as ``c``."""
    candidates = np.flatnonzero(logits.argmax(axis=1) == c) if require_correct else np.arange(len(logits))
    if candidates.size == 0:
        return None
    confidence = softmax(logits[candidates])[:, c]
    chosen = candidates[top_fraction(confidence, epsilon)]
    return features[chosen].mean(axis=0)


def class_prototypes(features: np.ndarray, logits: np.ndarray, labels: np.ndarray, epsilon: float) -> tuple[np.ndarray, list[int], list[int]]:
    """Prototypes ``[C, D]``, the classes that needed the fallback, and those with no video."""
    num_classes = labels.shape[1]
    prototypes = np.zeros((num_classes, features.shape[-1]), dtype=np.float64)
    fallback, empty = [], []
    for c in range(num_classes):
        videos = np.flatnonzero(labels[:, c] > 0)
        guides = [g for v in videos if (g := guiding_video_feature(features[v], logits[v], c, epsilon)) is not None]
        if not guides and videos.size:
            fallback.append(c)
            guides = [guiding_video_feature(features[v], logits[v], c, epsilon, require_correct=False) for v in videos]
        if not guides:
            empty.append(c)
            prototypes[c] = np.nan
            continue
        prototypes[c] = np.mean(guides, axis=0)
    return prototypes, fallback, empty


def prototype_scores(features: np.ndarray, prototypes: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Eq. 1 for every class: ``softmax_j(-||x - p_j|| / temperature)``; [..., D] -> [..., C].
    Classes without a prototype (NaN) get probability 0."""
    diff = features[..., None, :] - prototypes
    similarity = -np.sqrt(np.einsum("...cd,...cd->...c", diff, diff)) / temperature
    similarity = np.where(np.isnan(similarity), -np.inf, similarity)
    return softmax(similarity)


class GuidingScorer(BaseEstimator, TransformerMixin):
    """scikit-learn-style estimator of the guiding saliency score.

    ``fit(X, y, logits=...)`` builds the class prototypes from the training videos' recognizer
    features ``X`` [V, T, D], multi-hot labels ``y`` [V, C] and recognizer logits [V, T, C];
    ``transform(X, y, logits=...)`` returns ``g`` [V, T]. ``guide="response"`` (B.1) needs no
    prototypes and uses the logits alone.
    """

    def __init__(self, epsilon: float = 30.0, guide: str = "prototype", temperature: float = 1.0):
        self.epsilon = epsilon
        self.guide = guide
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray, logits: np.ndarray | None = None) -> "GuidingScorer":
        if self.guide not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}, got {self.guide!r}")
        if not 0 < self.epsilon <= 100:
            raise ValueError("epsilon is a percentage in (0, 100]")
        X, y, logits = _check(X, y, logits)
        self.n_classes_ = y.shape[1]
        if self.guide == "prototype":
            self.prototypes_, self.fallback_classes_, self.empty_classes_ = class_prototypes(X, logits, y, self.epsilon)
        else:
            self.prototypes_, self.fallback_classes_, self.empty_classes_ = None, [], []
        return self

    def class_scores(self, X: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        """Per-class guiding scores [V, T, C] (label-free)."""
        check_is_fitted(self, "n_classes_")
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
