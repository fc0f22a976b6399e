"""Stage ``nsnet prototypes``: class prototypes and guiding saliency scores from a feature cache.

Reads a finished feature cache (no video is decoded) a block of videos at a time: fits
:class:`GuidingScorer` on the training videos block by block (class sums), then scores every
video block by block, so memory holds one block and the outputs, whatever the dataset's size.
It stops where the recognizer's cached predictions fit the dataset's classes in another order
than the manifest's (:mod:`pipeline.class_order`), and reports its frame top-1 otherwise.
Writes ``<features cache>.prototypes-<fingerprint>/`` holding
``estimator.pkl`` (the fitted scikit-learn-style estimator), ``guides.npz`` (``g`` [N, T],
NaN for failed videos, and the prototypes; for a cache with several candidate frames per
segment also ``g_shift`` [N, S-1, T] of the other candidates, NaN outside the training videos)
and ``info.json``. The prototypes come from the segment centres alone. The fingerprint covers the
features cache's fingerprint and the estimator's parameters; the same inputs again do nothing.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from tqdm import tqdm

from pipeline import cache as cache_mod
from pipeline.cache import DONE, PENDING, CacheError, FeatureCache, left_out
from pipeline.checked_files import checked_json, made_again, run_record
from pipeline.metrics import multi_hot
from pipeline.config import from_checkpoint
from pipeline.demo_data import NO_SALIENCY_AP, salient_targets
from pipeline.class_order import class_order, frame_confusion, misordered_message, write_recognizer_classes
from pipeline.prototypes import GuidingScorer
from pipeline.shared_caches import output_beside
from pipeline.wording import videos_said


# A recognizer whose frame top-1 on the training frames is below this many times chance is
# named as near chance in the table (random weights; a checkpoint of another dataset's classes).
NEAR_CHANCE = 2.0


@dataclass
class PrototypesResult:
    path: str
    computed: bool
    info: dict[str, Any]

    def table(self) -> str:
        i = self.info
        lines = [
            f"prototypes      {self.path}" + ("" if self.computed else "  (already there, nothing to do)"),
            f"estimator       {i['params']}",
            f"videos          {videos_said({'videos': i['train_videos'], 'split': 'train', 'left_out': i.get('train_left_out', {})})} (fit), {i['scored_videos']:,} scored",
            f"mean g          {i['mean_g']:.3f} (train {i['mean_g_train']:.3f})",
        ]
        if "recognizer" in i:  # info.json of prototypes made before 2026-12-05 lacks it
            r = i["recognizer"]
            near_chance = "; near chance: a recognizer trained on this dataset does far better, so its prototypes stand on few frames" if r["frame_top1"] < NEAR_CHANCE * r["chance"] else ""
            lines.append(f"recognizer      frame top-1 {100 * r['frame_top1']:.1f}% on the {r['frames']:,} training frames (chance {100 * r['chance']:.1f}%{near_chance})")
        if i["fallback_classes"] or i["empty_classes"]:
            lines.append(f"fallback classes {i['fallback_classes']}, classes without videos {i['empty_classes']}")
        if "salient_ap" in i:
            lines.append(f"AP of g against the generator's salient frames: {i['salient_ap']:.3f} (share of salient frames {i['salient_share']:.3f})")
        return "\n".join(lines)


def prototypes_finished(out: Path) -> bool:
    """Whether the prototypes folder ``out`` is there whole (written whole, its ``info.json`` in it)."""
    return (out / "info.json").is_file()


def prototypes_path(features: Path, params: dict[str, Any], features_fp: str) -> Path:
    fp = cache_mod.fingerprint({"features": features_fp, "estimator": params})
    return output_beside(features, f"{features.name}.prototypes-{fp[:16]}", prototypes_finished)


BLOCK_VIDEOS = 256  # videos read at a time (a shard of the cache's default layout)


def _blocks(n: int, size: int = BLOCK_VIDEOS) -> list[slice]:
    return [slice(s, min(n, s + size)) for s in range(0, n, size)]


def run_prototypes(features: Path, scorer: GuidingScorer, ground_truth: Path | None = None, block_videos: int = BLOCK_VIDEOS, progress: bool = True) -> PrototypesResult:
    """The prototypes and guiding scores of ``scorer`` (unfitted) on the cache, computed unless
    they are there already; one process computes them at a time (:func:`pipeline.cache.sole_writer`).
    With ``progress``, a bar counts the videos read: the training videos to fit, then every
    finished video to score (and the training videos' other candidate frames)."""
    features = Path(features)
    scorer = clone(scorer)
    with FeatureCache(features) as cache:
        out = prototypes_path(features, scorer.get_params(), cache.content_fingerprint)
    with cache_mod.sole_writer(out, lambda: prototypes_finished(out)) as computing:
        if computing:
            return PrototypesResult(str(out), True, _fit_and_write(features, scorer, out, ground_truth, block_videos, progress))
    return PrototypesResult(str(out), False, checked_json(out / "info.json", made_again(out, "prototypes")))


def _fit_and_write(features: Path, scorer: GuidingScorer, out: Path, ground_truth: Path | None, block_videos: int, progress: bool) -> dict[str, Any]:
    """Fit ``scorer`` on the cache's training videos a block at a time, score every finished
    video, and write them to ``out`` whole (through a temporary folder); returns their info."""
    with FeatureCache(features) as cache:
        attrs, content = cache.attrs, cache.content_fingerprint
        status = np.asarray(cache["status"][:])
        if (status == PENDING).any():
            raise CacheError(f"{features}: the feature cache is not finished ({int((status == PENDING).sum())} videos pending); run the features stage first")
        videos = attrs["manifest"]["videos"]
        labels = multi_hot([v["labels"] for v in videos], len(attrs["manifest"]["classes"]))
        done, is_train = status == DONE, np.array([v["split"] == "train" for v in videos])
        train = done & is_train
        if not train.any():
            raise CacheError(f"{features}: no finished training video to build prototypes from")
        rec, logits = cache["rec_features"], cache["rec_logits"]
        classes = attrs["manifest"]["classes"]
        confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
        with_shift = cache.offsets > 1
        with tqdm(total=int(train.sum()) * (2 if with_shift else 1) + int(done.sum()), unit="video", desc="prototypes: fit, then score", disable=not progress) as bar:
            for block in _blocks(len(status), block_videos):
                rows = train[block]
                if rows.any():
                    z = logits[block][rows]
                    scorer.partial_fit(rec[block][rows], labels[block][rows], logits=z)
                    confusion += frame_confusion(z, labels[block][rows])
                    bar.update(int(rows.sum()))
            order = class_order(confusion)
            if order.misordered and from_checkpoint(attrs["identity"]["models"]["recognizer"]):
                raise CacheError(misordered_message(str(features), order, classes, write_recognizer_classes(order, classes, features)))
            g = _guides(scorer, rec, logits, labels, done, block_videos, bar)
            # the other candidate frames of the training videos (temporal random shift), scored by
            # the same prototypes: [N, S-1, T]
            g_shift = _guides(scorer, cache["shift_rec_features"], cache["shift_rec_logits"], labels, train, block_videos, bar) if with_shift else None
        frame_indices, num_frames = np.asarray(cache["frame_indices"][:]), np.asarray(cache["num_frames"][:])
    info: dict[str, Any] = {
        "features": str(features),
        "features_fingerprint": content,
        "params": scorer.get_params(),
        "train_videos": int(train.sum()),
        "train_left_out": left_out(status, is_train),
        "scored_videos": int(done.sum()),
        "mean_g": float(np.nanmean(g)),
        "mean_g_train": float(np.nanmean(g[train])),
        "recognizer": {"frames": order.frames, "frame_top1": order.top1, "chance": float(confusion.sum(axis=1).max() / max(order.frames, 1))},
        "fallback_classes": [int(c) for c in scorer.fallback_classes_],
        "empty_classes": [int(c) for c in scorer.empty_classes_],
    }
    if truth := ground_truth and run_record(ground_truth, {}, NO_SALIENCY_AP):
        info.update(salient_agreement(g, frame_indices, num_frames, done, videos, truth))
    with cache_mod.written_whole(out) as tmp:
        (tmp / "estimator.pkl").write_bytes(pickle.dumps(scorer))
        shifted = {} if g_shift is None else {"g_shift": g_shift}
        np.savez(tmp / "guides.npz", g=g, prototypes=scorer.prototypes_ if scorer.prototypes_ is not None else np.zeros(0), **shifted)
        (tmp / "info.json").write_text(json.dumps(info, indent=1))
    return info


def _guides(scorer: GuidingScorer, rec: Any, logits: Any, labels: np.ndarray, rows: np.ndarray, block_videos: int, bar: tqdm) -> np.ndarray:
    """``g`` of the videos ``rows`` (a mask; NaN elsewhere), a block of videos at a time, for
    arrays of one view [N, T, ...] or of several [N, S-1, T, ...]; ``bar`` counts the videos."""
    g = np.full(rec.shape[:-1], np.nan, dtype=np.float32)
    for block in _blocks(len(rows), block_videos):
        mask = rows[block]
        if mask.any():
            x, z = np.asarray(rec[block])[mask], np.asarray(logits[block])[mask]
            views = x.shape[1] if x.ndim == 4 else 1
            y = np.repeat(labels[block][mask], views, axis=0)
            scores = scorer.transform(x.reshape(-1, *x.shape[-2:]), y, logits=z.reshape(-1, *z.shape[-2:]))
            g[block][mask] = scores.reshape(g[block][mask].shape)
            bar.update(int(mask.sum()))
    return g


def salient_agreement(g: np.ndarray, frame_indices: np.ndarray, num_frames: np.ndarray, done: np.ndarray, videos: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, float]:
    """Average precision of ``g`` at telling the generator's salient frames (demo data) from
    the rest, over the scored frames of the videos the ground truth describes."""
    from sklearn.metrics import average_precision_score

    rows, targets = salient_targets(truth, videos, np.flatnonzero(done), frame_indices, num_frames)
    if not len(rows):
        return {}
    y = targets.ravel()
    return {"salient_ap": float(average_precision_score(y, g[rows].ravel())), "salient_share": float(y.mean()), "salient_videos": len(rows)}
