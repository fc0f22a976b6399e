"""``nsnet synth-cache``: a feature cache with the shape of ActivityNet, FCVID, Mini-Kinetics or
UCF101 and planted structure (:mod:`pipeline.synthetic`), written through the features stage's
writer with the same layout, attributes and kind of fingerprint as a real cache, so that every
later stage runs on it at full scale. Its ground truth (the planted salient frames) lies beside
it as ``<cache>.groundtruth.json``.

Lives in ``<cache-dir>/synth-<like>/features-<fingerprint>.zarr``; the same spec again does
nothing; a killed run resumes with the shards not yet written.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline import cache as cache_mod
from pipeline.cache import DONE, SHARD_VIDEOS, BackgroundWriter, Layout, ZarrWriter, write_text_atomic
from pipeline.config import FeaturesConfig, ModelSpec
from pipeline.datasets import Manifest, VideoRecord
from pipeline.extract import make_blocks
from pipeline.models import data_config
from pipeline.synthetic import SynthSpec, ground_truth, generate_rows, make_centres, plan_videos
from stages.features import cache_identity


@dataclass
class SynthResult:
    path: str
    videos: int
    train: int
    classes: int
    computed_shards: int
    seconds: float
    bytes: int
    files: dict[str, int]

    def table(self) -> str:
        per_array = max(v for k, v in self.files.items() if k not in ("total", "metadata"))
        rows = [
            ("synthetic cache", self.path + ("" if self.computed_shards else "  (already there, nothing to do)")),
            ("videos", f"{self.videos} ({self.train} train, {self.videos - self.train} val), {self.classes} classes"),
            ("size", f"{self.bytes / 2**30:.2f} GiB, {self.files['total']} files ({per_array} per array)"),
            ("time", f"{self.seconds:.1f} s ({self.computed_shards} shards written)"),
            ("ground truth", self.path + ".groundtruth.json"),
        ]
        return "\n".join(f"{k:<16} {v}" for k, v in rows)


def synthetic_manifest(spec: SynthSpec, labels: list[tuple[int, ...]], splits: list[str]) -> Manifest:
    """Video ids ``synth_000000..``, paths that no file answers, the spec as the source."""
    classes = tuple(f"{spec.like}_class_{c:03d}" for c in range(spec.shape.classes))
    videos = tuple(VideoRecord(f"synth_{i:06d}", f"videos/synth_{i:06d}.mp4", tuple(v), split) for i, (v, split) in enumerate(zip(labels, splits)))
    source = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()
    return Manifest(f"synth-{spec.like}", classes, videos, source=source)


def _data_configs(config: FeaturesConfig) -> dict[str, dict]:
    """timm's data configs of the paper's two models, as the features stage stores them (the
    architectures only: no weights are needed, or loaded)."""
    import timm

    def one(spec: ModelSpec) -> dict:
        cfg = data_config(timm.create_model(spec.name, pretrained=False, num_classes=0), spec)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    return {"light": one(config.light), "recognizer": one(config.recognizer)}


def run_synth_cache(spec: SynthSpec, cache_dir: Path = Path("cache"), progress: bool = True, shard_videos: int = SHARD_VIDEOS) -> SynthResult:
    started = time.perf_counter()
    plan = plan_videos(spec)
    manifest = synthetic_manifest(spec, plan.labels, plan.splits)
    config = FeaturesConfig(num_frames=spec.num_frames)  # the paper's models, resolution and T
    identity = {**cache_identity(spec.like, manifest, config), "synthetic": spec.to_dict()}
    fp = cache_mod.fingerprint(identity)
    path = Path(cache_dir) / f"synth-{spec.like}" / f"features-{fp[:16]}.zarr"
    n = len(manifest.videos)
    layout = Layout(n, spec.num_frames, spec.light_dim, spec.rec_dim, spec.shape.classes, shard_videos)
    computed = 0
    if not (path / "zarr.json").exists() or (cache_mod.FeatureCache(path)["status"][:] != DONE).any():
        attrs = {
            "identity": identity,
            "config": config.to_dict(),
            "manifest": json.loads(manifest.to_json()),
            "data_configs": _data_configs(config),
            "videos_per_batch": shard_videos,
            "videos_per_shard": shard_videos,
        }
        writer = ZarrWriter(path, fp, attrs, layout.arrays(), layout.shard_videos)
        status = writer.status()
        centres = make_centres(spec)
        shards = make_blocks(n, shard_videos)
        with BackgroundWriter(max_pending=2) as background, tqdm(total=n, unit="video", desc=f"synth-cache {spec.like}", disable=not progress) as bar:
            for index, members in enumerate(shards):
                if not (status[members] == DONE).all():
                    rows = generate_rows(spec, plan, centres, members[0], members[-1] + 1, index)
                    background.submit(writer.write_block, members[0], rows, np.full(len(members), DONE, dtype=np.int8))
                    computed += 1
                bar.update(len(members))
    truth = path.with_name(path.name + ".groundtruth.json")
    if not truth.is_file():
        write_text_atomic(truth, json.dumps(ground_truth(plan, [Path(v.path).stem for v in manifest.videos])))
    train = sum(split == "train" for split in plan.splits)
    return SynthResult(str(path), n, train, spec.shape.classes, computed, time.perf_counter() - started, cache_mod.directory_size(path), cache_mod.store_files(path))
