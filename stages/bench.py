"""``nsnet bench`` (``make bench``): the paper's Table 5 on this machine.

Latency at batch 1 and throughput at batch 32 for NSNet (T observed frames, K recognized),
DENSE (the recognizer on all T) and UNIFORM (the recognizer on K), with the configured
backbones (default: MobileNetV2 and ResNet-50 at 224²), randomly initialised — timing does not
depend on the weights. The NSNet path is :class:`pipeline.inference.NSNetInference`, the code
``nsnet predict`` runs, timed part by part (light backbone, heads, fusion, recognizer). The three
methods are measured in turns within each repetition and the median is kept, so drifts of the
machine hit all of them alike; with two backends, one is measured after the other. Decoding,
the making of the models' float input and its copy to the device are excluded from those
figures (the frames wait on the device); decoding and the input's making are measured on their
own on a generated H.264 clip.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from pipeline.backends import DEFAULT_EXPORT_DIR, make_heads
from pipeline.baselines import uniform_positions
from pipeline.cache import write_text_atomic
from pipeline.config import LATENCY_REPS_FACTOR, WEIGHTS_NONE, EvalConfig, FeaturesConfig, TrainConfig
from pipeline.demo_data import encode_h264
from pipeline.extract import BothModels
from pipeline.flops import compute_cost
from pipeline.distributed import synchronize
from pipeline.environment import environment
from pipeline.inference import NSNetInference, ObservationDecoder
from pipeline.recognition import decode_chosen
from pipeline.video import FrameSource
from pipeline.models import frame_transform
from pipeline.plots import matplotlib_available, plot_fractions
from pipeline.sampler import NSNetSampler
from stages.evaluate_report import text_table
from stages.features import build_light, build_recognizer, build_runners, output_dims
from stages.train import SamplerShape

PARTS = ("light", "heads", "fusion", "recognizer")
# Issue 15's targets for NSNet's speedup over DENSE as a fraction of the FLOP bound: latency
# (batch 1) and throughput (larger batches); and the heads' and fusion's share of NSNet's time.
LATENCY_FRACTION_TARGET, THROUGHPUT_FRACTION_TARGET, SAMPLER_SHARE_TARGET = 0.85, 0.9, 0.03


def repetitions(batch: int, reps: int) -> int:
    """Timed repetitions at ``batch`` for ``--reps`` (more at batch 1, see LATENCY_REPS_FACTOR)."""
    return reps * LATENCY_REPS_FACTOR if batch == 1 else reps


def fraction_target(batch: int) -> float:
    """The fraction of the FLOP bound aimed at for a batch of ``batch`` videos."""
    return LATENCY_FRACTION_TARGET if batch == 1 else THROUGHPUT_FRACTION_TARGET


@dataclass
class BatchTiming:
    """Median seconds per batch of ``batch`` videos, with the backbones on ``backend``."""

    backend: str
    batch: int
    nsnet_parts: dict[str, float]
    dense: float
    uniform: float
    rep_speedups: list[float] = field(default_factory=list)  # DENSE over NSNet within each repetition

    @property
    def nsnet(self) -> float:
        return sum(self.nsnet_parts.values())


@dataclass
class DecodeTiming:
    """Milliseconds to decode and preprocess one video's frames, per method."""

    clip: str
    nsnet_ms: float  # T observation frames decoded once, cropped for both models (light model on T, recognizer on K)
    dense_ms: float  # T frames (recognizer)
    uniform_ms: float  # K frames (recognizer)


@dataclass
class InferenceBench:
    device: str
    threads: int
    light: str
    recognizer: str
    num_frames: int
    k: int
    num_classes: int
    reps: int
    gflops: dict[str, float]
    backends: tuple[str, ...] = ("torch",)
    timings: list[BatchTiming] = field(default_factory=list)
    decode: DecodeTiming | None = None
    environment: dict[str, Any] = field(default_factory=dict)  # pipeline.environment

    @property
    def flop_bound_speedup(self) -> float:
        return self.gflops["dense"] / self.gflops["nsnet"]

    def speedup(self, timing: BatchTiming) -> float:
        return timing.dense / timing.nsnet

    def fraction(self, timing: BatchTiming) -> float:
        return self.speedup(timing) / self.flop_bound_speedup

    def rep_fractions(self, timing: BatchTiming) -> list[float]:
        """Each repetition's fraction of the FLOP bound, NSNet against the DENSE run measured
        next to it, in the order measured."""
        return [speedup / self.flop_bound_speedup for speedup in timing.rep_speedups]

    def fraction_range(self, timing: BatchTiming) -> tuple[float, float]:
        """The lowest and highest fraction over the repetitions: how far the machine drifted
        within the run."""
        fractions = self.rep_fractions(timing)
        return min(fractions), max(fractions)

    def shares(self, timing: BatchTiming) -> dict[str, float]:
        return {part: seconds / timing.nsnet for part, seconds in timing.nsnet_parts.items()}

    def sampler_share(self, timing: BatchTiming) -> float:
        """Share of NSNet's time in the sampler heads and the fusion (the light backbone apart)."""
        shares = self.shares(timing)
        return shares["heads"] + shares["fusion"]

    def of(self, backend: str) -> list[BatchTiming]:
        return [t for t in self.timings if t.backend == backend]

    def table(self) -> str:
        head = (f"inference benchmark (Table 5): device {self.device}, {self.threads} threads; light {self.light}, recognizer {self.recognizer}; "
                f"T={self.num_frames}, K={self.k}, C={self.num_classes}; random-init weights; decode excluded; median of {self.reps} repetitions ({repetitions(1, self.reps)} at batch 1); backbones on {' and '.join(self.backends)}, one after the other, the methods in turns")
        methods = ((f"NSNet (K={self.k})", "nsnet"), (f"DENSE (T={self.num_frames})", "dense"), (f"UNIFORM (K={self.k})", "uniform"))
        batches = self.of(self.backends[0])
        header = ("method", "backend", "GFLOPs/video", *[f"bs={t.batch}: ms/video" for t in batches], *[f"bs={t.batch}: videos/s" for t in batches])
        rows = []
        for backend in self.backends:
            for label, key in methods:
                seconds = [getattr(t, key) / t.batch for t in self.of(backend)]
                rows.append((label, backend, f"{self.gflops[key]:.3f}", *[f"{1000 * s:.1f}" for s in seconds], *[f"{1 / s:.1f}" for s in seconds]))
        lines = [head, *text_table(header, rows), f"NSNet over DENSE: FLOP-bound speedup {self.flop_bound_speedup:.2f}x"]
        for t in self.timings:
            shares = self.shares(t)
            low, high = self.fraction_range(t)
            lines.append(
                f"  {t.backend}, bs={t.batch}: measured {self.speedup(t):.2f}x, fraction of the FLOP bound {self.fraction(t):.2f} (repetitions {low:.2f}-{high:.2f}; target >= {fraction_target(t.batch)}); "
                f"NSNet time: light {100 * shares['light']:.1f}%, heads + fusion {100 * self.sampler_share(t):.2f}% (target <= {100 * SAMPLER_SHARE_TARGET:g}%), recognizer {100 * shares['recognizer']:.1f}%"
            )
        if self.decode:
            d = self.decode
            lines.append(f"decode + preprocess per video, not in the figures above ({d.clip}): NSNet {d.nsnet_ms:.1f} ms (T observed + K chosen, seeking), DENSE {d.dense_ms:.1f} ms, UNIFORM {d.uniform_ms:.1f} ms")
        return "\n".join(lines)

    def fraction_panels(self) -> list[dict]:
        """Per batch size, each backend's fraction of the FLOP bound in every repetition (in the
        order measured) and the run's (the medians'), with the target: what the plot draws."""
        return [
            {
                "batch": batch,
                "target": fraction_target(batch),
                "backends": {t.backend: {"repetitions": self.rep_fractions(t), "fraction": self.fraction(t)} for t in self.timings if t.batch == batch},
            }
            for batch in dict.fromkeys(t.batch for t in self.timings)
        ]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["flop_bound_speedup"] = self.flop_bound_speedup
        out["per_batch"] = [{"backend": t.backend, "batch": t.batch, "speedup": self.speedup(t), "fraction": self.fraction(t), "fraction_range": self.fraction_range(t), "sampler_share": self.sampler_share(t), "shares": self.shares(t)} for t in self.timings]
        return out


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def build_engines(config: FeaturesConfig, k: int, num_classes: int, device: torch.device, backends: tuple[str, ...], export_dir: Path) -> tuple[dict[str, NSNetInference], NSNetSampler, dict, dict, int]:
    """NSNet with random-init backbones and heads of the paper's shape, one engine per backend
    over the same models and heads; also the heads, both data configs and the light feature size."""
    config = config.with_overrides(light_weights=WEIGHTS_NONE, recognizer_weights=WEIGHTS_NONE)
    light, light_cfg = build_light(config)
    recognizer, rec_cfg = build_recognizer(config, tuple(f"class{c}" for c in range(num_classes)))
    dim, _ = output_dims(light, light_cfg)
    cfg = TrainConfig()
    sampler = SamplerShape(dim, config.num_frames, num_classes).build(cfg)
    defaults = EvalConfig()
    engines = {}
    for backend in backends:
        light_runner, rec_runner = build_runners(light, recognizer, light_cfg, rec_cfg, device, backend, export_dir)
        heads = make_heads(sampler, cfg.fsm_target, config.num_frames, dim, device, backend, export_dir)
        engines[backend] = NSNetInference(light_runner, heads, rec_runner, k, defaults.fusion, defaults.alpha, device)
    return engines, sampler, light_cfg, rec_cfg, dim


def _time_methods(engine: NSNetInference, light_frames: torch.Tensor, rec_all: torch.Tensor, rec_k: torch.Tensor) -> dict[str, float]:
    """Seconds of NSNet's parts, DENSE and UNIFORM on one batch."""
    device = engine.device
    seconds: dict[str, float] = {}
    seconds["light"], features = _timed(lambda: engine.light_features(light_frames), device)
    seconds["heads"], (s_f, s_v) = _timed(lambda: engine.saliency(features), device)
    seconds["fusion"], _ = _timed(lambda: engine.choose(s_f, s_v), device)
    seconds["recognizer"], _ = _timed(lambda: engine.recognizer_logits(rec_k), device)
    seconds["dense"], _ = _timed(lambda: engine.recognizer_logits(rec_all), device)
    seconds["uniform"], _ = _timed(lambda: engine.recognizer_logits(rec_k), device)
    return seconds


def time_batch(engines: dict[str, NSNetInference], batch: int, t: int, k: int, light_size: int, rec_size: int, reps: int, bar: tqdm | None = None) -> list[BatchTiming]:
    """Median seconds per batch of NSNet (by part), DENSE and UNIFORM for every backend: the
    three methods in turns within each repetition, one backend after the other. Interleaving
    the backends as well made ONNX Runtime's figures worse (fraction 0.80 / 0.83 at batch 1 / 32
    in turns with torch, against 0.83 / 0.92 alone and 0.88 / 0.91 one after the other,
    2026-12-02), and each fraction compares methods within one backend. The frames are on the
    engine's device before the clock starts: on a GPU their copy is left out with the decoding
    (a float32 copy from the host was most of what the GPU's figures measured, 2026-12-04).
    ``bar`` counts the videos of each repetition (warm-up included), between the timed calls."""
    generator = torch.Generator().manual_seed(0)
    light_frames = torch.randn(batch, t, 3, light_size, light_size, generator=generator)
    rec_all = torch.randn(batch * t, 3, rec_size, rec_size, generator=generator)
    rec_k = rec_all[: batch * k].clone()
    samples: dict[str, dict[str, list[float]]] = {backend: {} for backend in engines}
    for backend, engine in engines.items():
        if bar is not None:
            bar.set_postfix_str(f"{backend}, batch {batch}")
        inputs = [x.to(engine.device) for x in (light_frames, rec_all, rec_k)]
        for rep in range(reps + 1):  # the first round warms up and is dropped
            seconds = _time_methods(engine, *inputs)
            if bar is not None:
                bar.update(batch)
            if rep:
                for name, value in seconds.items():
                    samples[backend].setdefault(name, []).append(value)
    return [summarize(backend, batch, values) for backend, values in samples.items()]


def summarize(backend: str, batch: int, samples: dict[str, list[float]]) -> BatchTiming:
    """The medians of one backend's repetitions (seconds by NSNet part, ``dense``, ``uniform``),
    and DENSE's speedup over NSNet within each repetition."""
    median = {name: statistics.median(values) for name, values in samples.items()}
    speedups = [dense / sum(parts) for dense, *parts in zip(samples["dense"], *(samples[part] for part in PARTS))]
    return BatchTiming(backend, batch, {part: median[part] for part in PARTS}, median["dense"], median["uniform"], speedups)


def bench_clip(path: Path, seconds: float = 10.0, fps: int = 25, size: tuple[int, int] = (256, 340)) -> Path:
    """A smooth moving pattern with a little noise, H.264 at Kinetics-like size (h, w)."""
    rng = np.random.default_rng(0)
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.empty((int(seconds * fps), h, w, 3), dtype=np.uint8)
    for i in range(len(frames)):
        phase = i / fps
        base = 127 + 100 * np.sin((x + 40 * phase) / 23.0)[..., None] * np.cos((y - 25 * phase)[..., None] / 31.0 + np.array([0.0, 1.0, 2.0]))
        frames[i] = np.clip(base + rng.normal(0, 4, size=base.shape), 0, 255).astype(np.uint8)
    encode_h264(frames, path, fps)
    return path


def time_decode(clip: Path, t: int, k: int, light_tf, rec_tf, reps: int) -> DecodeTiming:
    """Median milliseconds per video to decode and preprocess what each method needs: NSNet's T
    observation frames cropped for both models (predict's decoder) and the light model's input
    of all T and the recognizer's of K; DENSE's T and UNIFORM's K frames for the recognizer."""
    observe = ObservationDecoder([clip], t, BothModels(light_tf, rec_tf))
    observed = observe[0]
    if observed.error:
        raise RuntimeError(observed.error)
    dense_ids = observed.frame_indices
    positions = uniform_positions(t, k)
    k_ids = dense_ids[positions]
    cpu = torch.device("cpu")

    def nsnet() -> tuple[torch.Tensor, torch.Tensor]:  # as predict makes the models' inputs
        o = observe[0]
        return o.light.model_input(cpu), o.rec.rows(positions).model_input(cpu)

    jobs: dict[str, Callable[[], object]] = {  # the models' float inputs made too, as the main process makes them
        "nsnet": nsnet,
        "dense": lambda: decode_chosen(FrameSource(clip), dense_ids, rec_tf).model_input(cpu),
        "uniform": lambda: decode_chosen(FrameSource(clip), k_ids, rec_tf).model_input(cpu),
    }
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(reps):  # the methods in turns, as in time_batch
        for name, job in jobs.items():
            samples[name].append(_timed(job, torch.device("cpu"))[0])
    ms = {name: 1000 * statistics.median(values) for name, values in samples.items()}
    return DecodeTiming(f"{clip.name}: generated H.264", ms["nsnet"], ms["dense"], ms["uniform"])


def bench_inference(config: FeaturesConfig, k: int, num_classes: int, batch_sizes: tuple[int, ...], reps: int, device: torch.device, backends: tuple[str, ...] = ("torch",), export_dir: Path = DEFAULT_EXPORT_DIR, decode: bool = True, progress: bool = False) -> InferenceBench:
    engines, sampler, light_cfg, rec_cfg, dim = build_engines(config, k, num_classes, device, backends, export_dir)
    t = config.num_frames
    cost = compute_cost(config.light, config.recognizer, sampler.cpu(), t, dim, num_classes)
    sampler.to(device)
    result = InferenceBench(
        device=str(device),
        threads=torch.get_num_threads(),
        light=f"{config.light.name} @{config.light.resolution}",
        recognizer=f"{config.recognizer.name} @{config.recognizer.resolution}",
        num_frames=t,
        k=k,
        num_classes=num_classes,
        reps=reps,
        gflops={"nsnet": cost.nsnet(min(k, t)), "dense": cost.recognizer(t), "uniform": cost.recognizer(min(k, t)), "sampler": cost.sampler},
        backends=tuple(backends),
        environment=environment(device),
    )
    # counted in videos, so that the bar's rate and time left hold across batch sizes
    total = len(engines) * sum((repetitions(batch, reps) + 1) * batch for batch in batch_sizes)
    with tqdm(total=total, unit="video", desc="bench", disable=not progress) as bar:
        for batch in batch_sizes:
            result.timings.extend(time_batch(engines, batch, t, min(k, t), config.light.resolution, config.recognizer.resolution, repetitions(batch, reps), bar))
    if decode:
        with tempfile.TemporaryDirectory(prefix="nsnet-bench-") as tmp:
            clip = bench_clip(Path(tmp) / "clip_340x256_25fps_10s.mp4")
            result.decode = time_decode(clip, t, min(k, t), frame_transform(light_cfg), frame_transform(rec_cfg), max(reps, 3))
    return result


def write_report(result: InferenceBench, out: Path) -> list[Path]:
    """The JSON report at ``out`` and, with matplotlib, the repetitions' fractions as a PNG beside
    it; returns the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result.to_dict(), indent=1))
    if not matplotlib_available():
        return [out]
    plot = out.with_suffix(".png")
    title = f"NSNet over DENSE on {result.device} ({result.threads} threads): {result.light} + {result.recognizer}, T={result.num_frames}, K={result.k}, FLOP bound {result.flop_bound_speedup:.2f}x"
    return [out, plot] if plot_fractions(result.fraction_panels(), plot, title) else [out]
