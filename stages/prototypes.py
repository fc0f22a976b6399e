"""Stage ``nsnet prototypes``: class prototypes and guiding saliency scores from a feature cache.

Reads a finished feature cache (no video is decoded), fits :class:`GuidingScorer` on the
training videos, and writes ``<features cache>.prototypes-<fingerprint>/`` holding
``estimator.pkl`` (the fitted scikit-learn-style estimator), ``guides.npz`` (``g`` [N, T],
NaN for failed videos, and the prototypes) and ``info.json``. The fingerprint covers the
features cache's fingerprint and the estimator's parameters; the same inputs again do nothing.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cache as cache_mod
from pipeline.cache import DONE, PENDING, CacheError, FeatureCache
from pipeline.metrics import multi_hot
from pipeline.prototypes import GuidingScorer


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
            f"videos          {i['train_videos']} train (fit), {i['scored_videos']} scored",
            f"mean g          {i['mean_g']:.3f} (train {i['mean_g_train']:.3f})",
        ]
        if i["fallback_classes"] or i["empty_classes"]:
            lines.append(f"fallback classes {i['fallback_classes']}, classes without videos {i['empty_classes']}")
        if "salient_ap" in i:
            lines.append(f"AP of g against the generator's salient frames: {i['salient_ap']:.3f} (share of salient frames {i['salient_share']:.3f})")
        return "\n".join(lines)


def prototypes_path(features: Path, params: dict[str, Any], features_fp: str) -> Path:
    fp = cache_mod.fingerprint({"features": features_fp, "estimator": params})
    return features.with_name(f"{features.name}.prototypes-{fp[:16]}")


def load_cache_arrays(features: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """attrs, status, recognizer features (float32), logits and frame indices of a finished cache."""
    with FeatureCache(features) as cache:
        status = np.asarray(cache["status"][:])
        if (status == PENDING).any():
            raise CacheError(f"{features}: the feature cache is not finished ({int((status == PENDING).sum())} videos pending); run the features stage first")
        return cache.attrs, status, np.asarray(cache["rec_features"][:], dtype=np.float32), np.asarray(cache["rec_logits"][:]), np.asarray(cache["frame_indices"][:])


def run_prototypes(features: Path, scorer: GuidingScorer, ground_truth: Path | None = None) -> PrototypesResult:
    features = Path(features)
    attrs, status, rec, logits, frame_indices = load_cache_arrays(features)
    out = prototypes_path(features, scorer.get_params(), attrs["fingerprint"])
    if (out / "info.json").exists():
        return PrototypesResult(str(out), False, json.loads((out / "info.json").read_text()))
    manifest = attrs["manifest"]
    videos = manifest["videos"]
    labels = multi_hot([v["labels"] for v in videos], len(manifest["classes"]))
    done = status == DONE
    train = done & np.array([v["split"] == "train" for v in videos])
    if not train.any():
        raise CacheError(f"{features}: no finished training video to build prototypes from")
    scorer.fit(rec[train], labels[train], logits=logits[train])
    g = np.full(status.shape + (rec.shape[1],), np.nan, dtype=np.float32)
    g[done] = scorer.transform(rec[done], labels[done], logits=logits[done])
    info: dict[str, Any] = {
        "features": str(features),
        "features_fingerprint": attrs["fingerprint"],
        "params": scorer.get_params(),
        "train_videos": int(train.sum()),
        "scored_videos": int(done.sum()),
        "mean_g": float(np.nanmean(g)),
        "mean_g_train": float(np.nanmean(g[train])),
        "fallback_classes": [int(c) for c in scorer.fallback_classes_],
        "empty_classes": [int(c) for c in scorer.empty_classes_],
    }
    if ground_truth is not None and ground_truth.is_file():
        info.update(salient_agreement(g, frame_indices, done, videos, json.loads(ground_truth.read_text())))
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    tmp.mkdir(parents=True)
    (tmp / "estimator.pkl").write_bytes(pickle.dumps(scorer))
    np.savez(tmp / "guides.npz", g=g, prototypes=scorer.prototypes_ if scorer.prototypes_ is not None else np.zeros(0))
    (tmp / "info.json").write_text(json.dumps(info, indent=1))
    os.replace(tmp, out)
    return PrototypesResult(str(out), True, info)


def salient_agreement(g: np.ndarray, frame_indices: np.ndarray, done: np.ndarray, videos: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, float]:
    """Average precision of ``g`` at telling the generator's salient frames (demo data) from
    the rest, over all scored frames."""
    from sklearn.metrics import average_precision_score

    scores, targets = [], []
    for i in np.flatnonzero(done):
        key = Path(videos[i]["path"]).stem
        if key not in truth:
            continue
        mask = np.asarray(truth[key]["salient"])
        scores.append(g[i])
        targets.append(mask[frame_indices[i]])
    if not scores:
        return {}
    y, s = np.concatenate(targets), np.concatenate(scores)
    return {"salient_ap": float(average_precision_score(y, s)), "salient_share": float(y.mean())}
