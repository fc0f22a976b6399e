"""Table 1's baselines over all frames of a video (paper 4.3), computed in one streaming pass.

"For UNIFORM and RANDOM, we uniformly and randomly sample 10 frames from all frames,
respectively, while for TOP-K, we sample top 10 frames with highest predicted confidence scores
(the maximum confidence among all categories), from all frames. DENSE sampling makes use of all
frames for recognition." One recognizer pass over every frame of a video gives all four: the
frames' logits arrive in order, a chunk at a time, and :class:`AllFrameSummary` keeps only
what the baselines need (running sums of softmax rows and the best ``budget`` frames so far),
so a video of any length costs O(budget x C) memory.

"All frames" is every decoded frame, or frames at ``rate`` per second when the video's frame
rate is known (the paper's ActivityNet DENSE, 930.8 GFLOPs with ResNet-101 at about 7.8 GFLOPs
a frame, is about 119 frames: one a second of its 119 s average; UCF101's 753.4 GFLOPs with
ResNet-50 are about 183 frames, every frame of its 7 s at 25 fps).
"""

from __future__ import annotations

import numpy as np

from pipeline.baselines import random_positions, uniform_positions
from pipeline.fusion import ranking
from pipeline.metrics import softmax

BASELINES = ("uniform", "random", "dense", "topk")


def all_frame_indices(num_frames: int, fps: float | None, rate: float | None) -> np.ndarray:
    """The frames of a video that count as "all frames": every one, or one per ``1 / rate``
    seconds (every ``round(fps / rate)``-th frame) when both rates are known."""
    step = 1 if rate is None or fps is None else max(1, int(round(fps / rate)))
    return np.arange(0, num_frames, step, dtype=np.int64)


class AllFrameSummary:
    """The four baselines' video scores (mean softmax of their frames) for one video of
    ``length`` frames, fed its frame logits in order by :meth:`update`.

    UNIFORM and RANDOM choose their ``budget`` positions among the ``length`` up front
    (:func:`pipeline.baselines.uniform_positions`, :func:`random_positions`); TOP-K keeps the
    ``budget`` most confident frames seen so far, ties to the earlier frame, which is exactly
    the top ``budget`` over the whole video (:func:`pipeline.baselines.top_confidence_positions`).
    """

    def __init__(self, length: int, budget: int, rng: np.random.Generator):
        if length < 1:
            raise ValueError("a video needs at least one frame")
        self.length, self.budget = length, budget
        self._members = {"uniform": uniform_positions(length, budget), "random": random_positions(length, budget, rng)}
        self._sums: dict[str, np.ndarray] = {}
        self._seen = 0
        self._best_p = np.zeros((0, 0))
        self._best_conf = np.zeros(0)
        self._best_at = np.zeros(0, dtype=np.int64)

    def update(self, logits: np.ndarray) -> None:
        """The [m, C] logits of the next ``m`` frames."""
        p = softmax(np.asarray(logits, dtype=np.float64))
        at = np.arange(self._seen, self._seen + len(p))
        if at[-1] >= self.length:
            raise ValueError(f"{at[-1] + 1} frames fed to a summary of {self.length}")
        if not self._sums:
            self._sums = {name: np.zeros(p.shape[1]) for name in ("dense", *self._members)}
            self._best_p = np.zeros((0, p.shape[1]))
        self._sums["dense"] += p.sum(axis=0)
        for name, members in self._members.items():
            self._sums[name] += p[np.isin(at, members)].sum(axis=0)
        conf = np.concatenate([self._best_conf, p.max(axis=1)])
        keep = ranking(conf)[: self.budget]
        self._best_p = np.concatenate([self._best_p, p])[keep]
        self._best_conf, self._best_at = conf[keep], np.concatenate([self._best_at, at])[keep]
        self._seen += len(p)

    @property
    def complete(self) -> bool:
        return self._seen == self.length

    def top_positions(self) -> np.ndarray:
        """Sorted positions of TOP-K's frames."""
        return np.sort(self._best_at)

    def scores(self) -> dict[str, np.ndarray]:
        """[C] video scores of ``uniform``, ``random``, ``dense`` and ``topk``."""
        if not self.complete:
            raise ValueError(f"{self._seen} of {self.length} frames fed")
        counts = {"dense": self.length, **{name: len(m) for name, m in self._members.items()}}
        out = {name: self._sums[name] / counts[name] for name in counts}
        out["topk"] = self._best_p.mean(axis=0)
        return {name: out[name] for name in BASELINES}

