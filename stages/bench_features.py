"""``nsnet bench-features``: decode-only, models-only and full-stage throughput, side by side.

All three run in one process on the same videos, blocks and worker count. The full stage
overlaps decoding (DataLoader workers) with model compute, so its throughput should approach
the slower of the two parts: the reported ratio is full / min(decode-only, models-only).
Models-only runs before and after the full stage and counts as their mean, so that a drift of
the machine's speed during the run does not fall on one side of the ratio alone. With several
backends (torch and ONNX Runtime on the CPU) each gets its models-only and full-stage runs in
turn, on the same decoded blocks, with the same exports the features stage would use.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pipeline.cache import write_text_atomic
from pipeline.config import WEIGHTS_NONE, FeaturesConfig, ModelSpec, RunOptions
from pipeline.datasets import AnnotationFiles, load_manifest
from pipeline.distributed import WHOLE, Worker, pick_device, synchronize
from pipeline.environment import environment
from pipeline.extract import BlockDecoder, BlockInference, decoding_loader, decoding_workers, make_blocks
from pipeline.models import frame_transforms
from stages.features import build_encoders, build_runners, make_layout, manifest_features


@dataclass
class BackendThroughput:
    """Frames/s of one backend: models alone (before and after the full stage) and the full stage."""

    backend: str
    models_fps_before: float
    models_fps_after: float
    full_fps: float

    @property
    def models_fps(self) -> float:
        return (self.models_fps_before + self.models_fps_after) / 2


@dataclass
class FeaturesBench:
    videos: int
    frames: int
    light: str
    recognizer: str
    device: str
    threads: int
    workers: int
    decode_fps: float
    runs: list[BackendThroughput] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)  # pipeline.environment

    def ratio(self, run: BackendThroughput) -> float:
        return run.full_fps / min(self.decode_fps, run.models_fps)

    def table(self) -> str:
        rows = [("decode only (workers, decode + preprocess)", f"{self.decode_fps:9.1f} frames/s")]
        for run in self.runs:
            rows += [
                (f"{run.backend}: models only (both backbones, in memory)", f"{run.models_fps:9.1f} frames/s  (before / after full: {run.models_fps_before:.1f} / {run.models_fps_after:.1f})"),
                (f"{run.backend}: full stage (decode overlapped, cache writes)", f"{run.full_fps:9.1f} frames/s"),
                (f"{run.backend}: full / min(decode, models)", f"{self.ratio(run):9.2f}   (target >= 0.85)"),
            ]
        if len(self.runs) > 1:
            base = self.runs[0]
            rows += [(f"{run.backend} / {base.backend}: full stage", f"{run.full_fps / base.full_fps:9.2f}x") for run in self.runs[1:]]
        head = (
            f"features benchmark: {self.videos} videos, {self.frames} frames, light {self.light}, recognizer {self.recognizer}\n"
            f"  device {self.device}, {self.threads} threads, {self.workers} workers"
        )
        width = max(len(k) for k, _ in rows)
        return "\n".join([head] + [f"  {k.ljust(width)} {v}" for k, v in rows])

    def to_dict(self) -> dict:
        out = asdict(self)
        for run, raw in zip(self.runs, out["runs"]):
            raw.update(models_fps=run.models_fps, ratio=self.ratio(run))
        return out


def bench_features(dataset: str, data_root: Path | None, config: FeaturesConfig, opts: RunOptions, max_videos: int, backends: tuple[str, ...], files: AnnotationFiles = AnnotationFiles()) -> FeaturesBench:
    """Decoding alone once, then per backend in turn: models alone, the full stage, models alone;
    each with a progress bar where ``opts.progress``."""
    root, manifest = load_manifest(dataset, data_root, files)
    videos = manifest.videos[:max_videos]
    manifest = replace(manifest, videos=videos, rejected=())
    device = pick_device(opts.device)
    light, rec, light_cfg, rec_cfg = build_encoders(config, manifest)
    blocks = list(enumerate(make_blocks(len(videos), opts.cache_layout()["videos_per_batch"])))
    decoder = BlockDecoder(root, videos, blocks, config.num_frames, *frame_transforms(light_cfg, rec_cfg))

    workers = decoding_workers(opts.workers, device)
    opts = replace(opts, workers=workers)  # the full stage decodes with the same number
    start = time.perf_counter()
    decoded = list(tqdm(decoding_loader(decoder, workers, watched=False), total=len(blocks), unit="block", desc="decode only", disable=not opts.progress))
    decode_s = time.perf_counter() - start
    frames = sum(b.num_frames for b in decoded)
    rows = make_layout(light, rec, light_cfg, rec_cfg, len(videos), config.num_frames).rows()
    result = FeaturesBench(len(videos), frames, _describe(config.light), _describe(config.recognizer), str(device), torch.get_num_threads(), workers, frames / decode_s, environment=environment(device))

    for backend in backends:
        run_opts = replace(opts, backend=backend, exports=opts.export_dir)
        infer = BlockInference(*build_runners(light, rec, light_cfg, rec_cfg, device, backend, opts.export_dir), device)
        infer(decoded[0], rows)  # warm-up

        def time_models() -> float:
            synchronize(device)
            start = time.perf_counter()
            for block in tqdm(decoded, unit="block", desc=f"models only, {backend}", disable=not opts.progress):
                infer(block, rows)
            synchronize(device)
            return frames / (time.perf_counter() - start)

        before = time_models()
        with tempfile.TemporaryDirectory(prefix="nsnet-bench-") as tmp:
            summary = manifest_features(dataset, root, manifest, config, replace(run_opts, cache_dir=Path(tmp), retry_failed=False), Worker(*WHOLE, 0, 1, device))
        result.runs.append(BackendThroughput(backend, before, time_models(), summary.frames / summary.compute_seconds))
    return result


def with_paper_backbones(config: FeaturesConfig) -> FeaturesConfig:
    """``config`` with the paper's backbones at their resolutions (MobileNetV2 and ResNet-50 at
    224²), random-init: a dataset profile with small models (the demo's) benchmarked at the
    paper's per-frame cost. Throughput does not depend on the weights."""
    paper = FeaturesConfig()
    return replace(config, light=replace(paper.light, weights=WEIGHTS_NONE), recognizer=replace(paper.recognizer, weights=WEIGHTS_NONE))


def _describe(spec: ModelSpec) -> str:
    return f"{spec.name} {spec.resolution}px ({spec.weights} weights)"


def write_report(result: FeaturesBench, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result.to_dict(), indent=1))
