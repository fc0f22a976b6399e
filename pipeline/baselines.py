"""The hand-crafted samplers NSNet is compared with (paper 4.3, Table 1), on the T observed
frames of one video. Each returns the sorted positions (0..T-1) of the frames the recognizer
sees.

* UNIFORM: the centre of each of K equal segments of the T positions.
* RANDOM: K distinct positions drawn by a seeded generator.
* DENSE: all T positions.
* TOP-K: the K positions with the highest maximum class confidence (softmax) of the
  recognizer; it needs the recognizer on all T frames, so it costs as much as DENSE.
* ORACLE: the K positions with the highest guiding score ``g``, which uses the video's labels
  (the upper bound of any sampler, the paper's "Guid." in Fig. 5).
"""

from __future__ import annotations

import numpy as np

from pipeline.fusion import top_k
from pipeline.metrics import softmax
from pipeline.sampling import uniform_frame_indices


def uniform_positions(t: int, k: int) -> np.ndarray:
    return uniform_frame_indices(t, min(k, t))


def random_positions(t: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(t, size=min(k, t), replace=False))


def dense_positions(t: int) -> np.ndarray:
    return np.arange(t)


def max_confidence(frame_logits: np.ndarray) -> np.ndarray:
    """[T, C] logits -> [T] highest softmax probability of each frame."""
    return softmax(frame_logits).max(axis=-1)


def top_confidence_positions(frame_logits: np.ndarray, k: int) -> np.ndarray:
    return top_k(max_confidence(frame_logits), k)


def oracle_positions(g: np.ndarray, k: int) -> np.ndarray:
    return top_k(g, k)
