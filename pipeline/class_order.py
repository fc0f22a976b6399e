"""Whether the recognizer's outputs are the dataset's classes in the manifest's order.

A recognizer checkpoint that does not name its classes is taken to hold them in the manifest's
order; trained with a label map's order (Kinetics' or ActivityNet's as a code base numbered
them) where the dataset sorts the names, it loads, and its every frame's prediction is another
class's. The cached logits of the training frames tell: the frames' predicted classes against
their labels (a confusion matrix), and the best one-to-one matching of outputs to classes
(scipy's linear assignment) against the manifest's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Another order is taken for the recognizer's where it predicts at least this share of the
# training frames right, and the manifest's order at most half as many: a recognizer trained on
# the dataset does far better than that in its own order, and one at chance matches no order so.
OTHER_ORDER_MIN_TOP1 = 0.5


def frame_confusion(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts [C, C] of frames of class c (rows; a multi-label video's frames count for each of
    its classes) predicted as class j (columns, the logits' argmax), from logits [N, T, C] and
    multi-hot labels [N, C]."""
    predicted = np.asarray(logits).argmax(axis=-1)  # [N, T]
    n, c = labels.shape
    per_video = np.bincount((np.arange(n)[:, None] * c + predicted).ravel(), minlength=n * c).reshape(n, c)
    # counts in float64 are exact (below 2**53), and its matrix product is BLAS's
    return np.rint(np.asarray(labels, dtype=np.float64).T @ per_video.astype(np.float64)).astype(np.int64)


@dataclass(frozen=True)
class ClassOrder:
    """The recognizer's frame top-1 on the training frames in the manifest's class order, in
    the order that fits them best, and that order (``order[c]``: the output matched to class c)."""

    frames: int
    top1: float
    best_top1: float
    order: tuple[int, ...]

    @property
    def misordered(self) -> bool:
        """Whether another order than the manifest's fits the recognizer (see
        :data:`OTHER_ORDER_MIN_TOP1`)."""
        return self.best_top1 >= OTHER_ORDER_MIN_TOP1 and self.top1 <= self.best_top1 / 2

    def moved(self) -> list[tuple[int, int]]:
        """(class, the output matched to it) where they differ, by class."""
        return [(c, j) for c, j in enumerate(self.order) if c != j]


def class_order(confusion: np.ndarray) -> ClassOrder:
    """:class:`ClassOrder` of a :func:`frame_confusion`."""
    from scipy.optimize import linear_sum_assignment

    total = int(confusion.sum())
    classes, outputs = linear_sum_assignment(confusion, maximize=True)
    order = tuple(int(j) for _, j in sorted(zip(classes, outputs)))
    best = int(confusion[classes, outputs].sum())
    return ClassOrder(total, float(np.trace(confusion)) / max(total, 1), best / max(total, 1), order)
