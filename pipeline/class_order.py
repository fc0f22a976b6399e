"""Whether the recognizer's outputs are the dataset's classes in the manifest's order.

A recognizer checkpoint that does not name its classes is taken to hold them in the manifest's
order; trained with a label map's order (Kinetics' or ActivityNet's as a code base numbered
them) where the dataset sorts the names, it loads, and its every frame's prediction is another
class's. Only a checkpoint's outputs are checked: random weights (``none``, and ``imagenet``'s
new classifier) have no order to keep, and may still tell classes apart by their colours in
another one. The cached logits of the training frames tell: the frames' predicted classes against
their labels (a confusion matrix), and the best one-to-one matching of outputs to classes
(scipy's linear assignment) against the manifest's order, class by class. The features stage
checks its first training frames (:class:`OrderWatch`) once they hold half the classes, so that
a misordered recognizer stops the run long before the whole cache; the prototypes stage checks
every training frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.wording import first_few

# Another order is taken for the recognizer's where it predicts at least this share of the
# training frames right, and the manifest's order at most half as many, both by class (each
# class's share averaged): a recognizer trained on the dataset does far better than that in its
# own order, and one at chance matches no order so.
OTHER_ORDER_MIN_TOP1 = 0.5
# The features stage checks the order once this many training frames a class are in, and frames
# of at least this share of the classes: with a few classes' frames alone (a list sorted by class,
# as UCF101's and Kinetics' are), one class often confused with another would fit "another order".
EARLY_FRAMES_PER_CLASS = 20
EARLY_CLASSES_SHARE = 0.5


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
    the order that fits them best, and that order (``order[c]``: the output matched to class c;
    told only for the ``seen`` classes, those with frames, the others matched to what is left).
    ``class_top1`` and ``best_class_top1`` are the same by class (each seen class's share of its
    frames right, averaged), on which the order is matched and judged, so that a class with many
    frames does not decide it alone."""

    frames: int
    top1: float
    best_top1: float
    order: tuple[int, ...]
    seen: tuple[int, ...]
    class_top1: float
    best_class_top1: float

    @property
    def misordered(self) -> bool:
        """Whether another order than the manifest's fits the recognizer, class by class (see
        :data:`OTHER_ORDER_MIN_TOP1`)."""
        return self.best_class_top1 >= OTHER_ORDER_MIN_TOP1 and self.class_top1 <= self.best_class_top1 / 2

    def moved(self) -> list[tuple[int, int]]:
        """(class, the output matched to it) where they differ, by class, of the classes seen."""
        return [(c, self.order[c]) for c in self.seen if c != self.order[c]]


def class_order(confusion: np.ndarray) -> ClassOrder:
    """:class:`ClassOrder` of a :func:`frame_confusion`: outputs matched to classes one to one
    (scipy's linear assignment) on each class's shares of its frames."""
    from scipy.optimize import linear_sum_assignment

    total, per_class = int(confusion.sum()), confusion.sum(axis=1)
    seen = np.flatnonzero(per_class > 0)
    shares = confusion / np.maximum(per_class, 1)[:, None]
    classes, outputs = linear_sum_assignment(shares, maximize=True)
    order = tuple(int(j) for _, j in sorted(zip(classes, outputs)))
    best = int(confusion[classes, outputs].sum())
    by_class = max(len(seen), 1)
    return ClassOrder(
        total, float(np.trace(confusion)) / max(total, 1), best / max(total, 1), order, tuple(int(c) for c in seen),
        float(np.trace(shares)) / by_class, float(shares[classes, outputs].sum()) / by_class,
    )


def in_recognizer_order(order: ClassOrder, classes: Sequence[str]) -> list[str]:
    """The dataset's class names in the order that fits the recognizer's outputs: at position j
    the class matched to its output j."""
    names = [""] * len(classes)
    for c, j in enumerate(order.order):
        names[j] = classes[c]
    return names


def write_recognizer_classes(order: ClassOrder, classes: Sequence[str], features: Path) -> Path | None:
    """:func:`in_recognizer_order`, one name a line (a ``--class-names`` file), beside the
    feature cache ``features`` (``features-<fp>.recognizer-classes.txt``); None, and nothing
    written, where some class had no frames to tell its place."""
    from pipeline.cache import write_text_alone

    if len(order.seen) < len(classes):
        return None
    path = features.with_name(features.name.split(".")[0] + ".recognizer-classes.txt")
    write_text_alone(path, "".join(f"{name}\n" for name in in_recognizer_order(order, classes)))
    return path


def misordered_message(where: str, order: ClassOrder, classes: Sequence[str], written: Path | None) -> str:
    """Why the recognizer's classes are taken to be in another order than the dataset's, some
    of the classes that move, and what to do: pass ``written`` (:func:`write_recognizer_classes`),
    or, where some class had no frames to tell its order, the checkpoint's label map."""
    from timm.utils.misc import natural_key

    pairs = first_few([f"its output {j} ({classes[j]!r}) on {classes[c]!r} frames" for c, j in order.moved()], 3)
    if written is None:
        remedy = (
            f"The order that fits could be told for {len(order.seen)} of its {len(classes)} classes only (the frames checked hold none of "
            "the others): give the dataset's classes in the checkpoint's order (its label map) with --class-names and compute the features again"
        )
    else:
        convention = " (the names sorted as timm's ImageFolder sorts class folders: case aside, numbers by value)" if in_recognizer_order(order, classes) == sorted(classes, key=natural_key) else ""
        remedy = f"The dataset's classes in the order that fits its outputs are in {written}{convention}: check them and compute the features again with --class-names {written}"
    return (
        f"{where}: the recognizer's outputs are the dataset's classes in another order: it predicts {100 * order.top1:.1f}% of the "
        f"{order.frames:,} training frames right in the manifest's class order and {100 * order.best_top1:.1f}% in another "
        f"({100 * order.class_top1:.1f}% and {100 * order.best_class_top1:.1f}% by class, over the {len(order.seen)} with frames), "
        f"where {len(order.moved())} of {len(classes)} classes move ({pairs}). Its checkpoint names no classes, so they were taken "
        f"in the manifest's order. {remedy}, or load a checkpoint that names its classes (nsnet finetune's), which is put in the dataset's order"
    )


class OrderWatch:
    """The class order checked on the first training frames a run computes: their confusion
    gathered block by block (``labels`` multi-hot [N, C] and ``train`` [N] of the manifest's
    videos) until :data:`EARLY_FRAMES_PER_CLASS` frames a class are in, of at least
    :data:`EARLY_CLASSES_SHARE` of the classes, then checked once."""

    def __init__(self, labels: np.ndarray, train: np.ndarray):
        self.labels, self.train = labels, train
        self.confusion = np.zeros((labels.shape[1],) * 2, dtype=np.int64)
        self.checked = False

    def add(self, videos: Sequence[int], logits: np.ndarray) -> ClassOrder | None:
        """Take the frames' logits [n, T, C] of the computed ``videos``; the order once checked
        (at this call, and only at this one), else None."""
        keep = [i for i, video in enumerate(videos) if self.train[video]]
        if self.checked or not keep:
            return None
        self.confusion += frame_confusion(logits[keep], self.labels[[videos[i] for i in keep]])
        classes = len(self.confusion)
        if self.confusion.sum() < EARLY_FRAMES_PER_CLASS * classes or (self.confusion.sum(axis=1) > 0).sum() < EARLY_CLASSES_SHARE * classes:
            return None
        self.checked = True
        return class_order(self.confusion)
