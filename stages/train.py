"""Stage ``nsnet train``: train the sampler heads (FEM, FSM, VGM) on the cached tensors.

Reads a finished feature cache and its prototypes (guiding scores); decodes no video. Writes
``<features cache>.train-<fingerprint>/`` with ``last.pth`` (resume point, every epoch),
``model.pth``, ``log.jsonl`` (one line an epoch) and ``metrics.json``. Same inputs and config
again: nothing to do. A killed run resumes from its last epoch and ends with the same weights
as an uninterrupted one (CPU, fixed seed).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm import tqdm

from pipeline import cache as cache_mod
from pipeline.cache import DONE, CacheError, FeatureCache, left_out
from pipeline.checked_files import HISTORY_NOT_SHOWN, checked_json, checked_npz, checked_torch_load, made_again, resume_point, run_record
from pipeline.baselines import uniform_positions
from pipeline.config import EvalConfig, TrainConfig
from pipeline.datasets.manifest import EVALUATION_SPLITS, evaluation_splits
from pipeline.demo_data import NO_SALIENCY_AP, salient_targets
from pipeline.environment import environment
from pipeline.evaluation import fused_positions, recognition, scores_at
from pipeline.metrics import multi_hot
from pipeline.models import save_atomic, save_resume_point
from pipeline.output_kinds import SAMPLER_RUN, named
from pipeline.plots import CURVES_NAME, draw_curves_once
from pipeline.sampler import NSNetSampler, SamplerConfig
from pipeline.sampler_training import SALIENCY_BATCH, CachedClips, EpochLosses, FrameObjective, WindowedRows, frame_objective, sampler_saliency, shuffle_windows, train_epoch
from pipeline.shared_caches import output_beside
from pipeline.stop_signals import StopSignals, Stopped, stopped_said
from pipeline.wording import last_validated, videos_said


@dataclass
class TrainResult:
    path: str
    trained_epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    saliency_ap: dict[str, float] = field(default_factory=dict)
    trained_on: str = ""  # the training videos, those left out counted (runs before 2026-12-06, later: "")
    validation: dict[str, Any] = field(default_factory=dict)  # metrics.json's: what the run validated on, and how often

    def table(self) -> str:
        lines = [f"sampler run {self.path}  ({self.trained_epochs} epochs trained now)"]
        if self.trained_on:
            lines.append(f"trained on {self.trained_on}")
        if self.history:
            first, last = self.history[0], self.history[-1]
            lines.append(f"loss  epoch 1: {first['loss']:.4f} (L_f {first['frame']:.4f}, L_v {first['video']:.4f})  ->  epoch {last['epoch']}: {last['loss']:.4f} (L_f {last['frame']:.4f}, L_v {last['video']:.4f})")
        if self.validation and (validated := validation_line(self.validation, self.history)):
            lines.append(validated)
        for name, value in self.saliency_ap.items():
            lines.append(f"{name:<44} {value:.3f}")
        curves = Path(self.path) / CURVES_NAME
        if curves.is_file():
            lines.append(f"curves {curves}")
        return "\n".join(lines)


# The panels of a run's curves (pipeline.plots.plot_training_curves), of log.jsonl's keys: eq. 4's
# loss and its parts, the VGM's eq. 3 parts (gamma weighs L_ns), the validation (where the run
# validated: ValidationCheck), the learning rate.
CURVES = (
    ("loss", {"loss": "L = L_f + L_v", "frame": "L_f (FSM)", "video": "L_v (VGM)"}, "loss"),
    ("L_v = L_cls + gamma L_ns", {"cls": "L_cls", "ns": "L_ns"}, "loss"),
    ("validation at K, cached logits", {"val_map": "NSNet mAP", "val_uniform_map": "UNIFORM mAP", "val_top1": "NSNet top-1", "val_uniform_top1": "UNIFORM top-1"}, "%"),
    ("schedule", {"lr": "learning rate"}, "learning rate"),
)


# Part of every run's fingerprint: bump it when an objective's loss or saliency changes, so that
# runs trained under the old definition are not reused. 2: regression by cross-entropy.
OBJECTIVES_VERSION = 2


def run_finished(run_dir: Path) -> bool:
    """Whether the sampler run ``run_dir`` has finished: its heads saved (``model.pth``)."""
    return (run_dir / "model.pth").is_file()


def run_dir_for(features: Path, prototypes: Path, cfg: TrainConfig, fp_features: str) -> Path:
    fp = cache_mod.fingerprint({"features": fp_features, "prototypes": prototypes.name, "train": asdict(cfg), "objectives": OBJECTIVES_VERSION})
    return output_beside(features, f"{features.name}.train-{fp[:16]}", run_finished)


@dataclass(frozen=True)
class SamplerShape:
    """The sizes a sampler is built for: light feature size D, T observed frames, C classes."""

    dim: int
    num_frames: int
    num_classes: int

    def build(self, cfg: TrainConfig) -> NSNetSampler:
        return NSNetSampler(self.dim, self.num_frames, self.num_classes, SamplerConfig(fem=cfg.fem))


@dataclass
class SamplerInputs:
    """What the sampler trains on, read from a finished feature cache and its prototypes."""

    attrs: dict[str, Any]
    content_fingerprint: str  # the cache's (:meth:`FeatureCache.content_fingerprint`), which later outputs are keyed by
    status: np.ndarray  # [N]
    # The light features [M, T, D_l] (float16, as cached) of the M finished training videos, in
    # the order of finished_training(): the sampler trains on these alone. Held whole, or a
    # window at a time (WindowedRows) beyond the training config's shuffle_window.
    light: np.ndarray | WindowedRows
    frame_indices: np.ndarray  # [N, T]
    g: np.ndarray  # [N, T], 0 for failed videos (never trained on)
    labels: np.ndarray  # [N, C] multi-hot
    # The other candidate frames of every segment (a cache with offsets S > 1, read on request):
    # light features [M, S-1, T, D_l] and g [M, S-1, T] of the M finished training videos, in the
    # order of finished_training(); None otherwise.
    shift_light: np.ndarray | WindowedRows | None = None
    shift_g: np.ndarray | None = None

    @property
    def videos(self) -> list[dict[str, Any]]:
        return self.attrs["manifest"]["videos"]

    def finished_training(self) -> np.ndarray:
        """Indices of the finished training videos."""
        return np.flatnonzero((self.status == DONE) & np.array([v["split"] == "train" for v in self.videos]))

    def evaluation_splits(self) -> list[str]:
        """The splits besides train that the manifest has videos in, val first."""
        return evaluation_splits(v["split"] for v in self.videos)

    def evaluated(self, split: str | None = None) -> tuple[np.ndarray, str]:
        """The finished videos of the evaluation split ``split`` and its name: by default val
        where the manifest has val videos, else test (FCVID's and UCF101's second split)."""
        splits = self.evaluation_splits()
        if split is None:
            split = splits[0] if splits else EVALUATION_SPLITS[0]
        if split not in splits:
            raise CacheError(f"no {split} video in this cache's manifest (its splits besides train: {', '.join(splits) or 'none'})")
        return np.flatnonzero((self.status == DONE) & np.array([v["split"] == split for v in self.videos])), split

    def left_out(self, split: str) -> dict[str, int]:
        """:func:`pipeline.cache.left_out` of ``split``."""
        return left_out(self.status, np.array([v["split"] == split for v in self.videos]))

    @property
    def shape(self) -> SamplerShape:
        return SamplerShape(self.light.shape[-1], self.light.shape[1], self.labels.shape[1])


def guides_file(prototypes: Path) -> Path:
    """The guiding scores' file of a prototypes folder; a :class:`CacheError` saying what the
    path is where it is no such folder (:func:`~pipeline.output_kinds.named`: a feature cache or
    a sampler run given as ``--prototypes``)."""
    path = Path(prototypes) / "guides.npz"
    if not path.is_file():
        raise CacheError(named(Path(prototypes), "a prototypes folder", "not a prototypes folder (no guides.npz; `nsnet prototypes` makes <features cache>.prototypes-<fingerprint>/)"))
    return path


def read_guides(prototypes: Path, *names: str) -> dict[str, np.ndarray]:
    """The arrays ``names`` of a prototypes folder's ``guides.npz`` that it holds, each checked as
    read (:func:`checked_npz`): the others are not read."""
    return checked_npz(guides_file(prototypes), made_again(prototypes, "prototypes") + " (it computes them anew)", names)


def read_run_model(run_dir: Path, **load: Any) -> dict[str, Any]:
    """A sampler run's ``model.pth``, checked before it is loaded (:func:`checked_torch_load`)."""
    return checked_torch_load(Path(run_dir) / "model.pth", made_again(run_dir, "train"), map_location="cpu", **load)


def load_sampler_inputs(features: Path, prototypes: Path) -> SamplerInputs:
    """The cache's and prototypes' arrays the sampler needs, its light features left unread (an
    empty ``[0, T, D]`` array keeps their shape): :func:`read_training_features` reads the
    training videos', a stage that scores videos reads their rows itself (evaluate: the
    evaluation split). Prototypes made from the cache as it was before videos of it were
    computed again (their ``info.json`` names its content fingerprint) are refused."""
    guides = read_guides(prototypes, "g")
    info_file = Path(prototypes) / "info.json"
    made_from = checked_json(info_file, made_again(prototypes, "prototypes")).get("features_fingerprint") if info_file.is_file() else None
    with FeatureCache(features) as cache:
        if made_from is not None and made_from != cache.content_fingerprint:
            raise CacheError(f"{prototypes}: these prototypes were made from another feature cache, or from this one before videos of it were computed again, "
                             f"not from {features} as it is now (content fingerprint {cache.content_fingerprint[:16]}); run `nsnet prototypes` on it")
        attrs = cache.attrs
        status = np.asarray(cache["status"][:])
        cached = cache["light_features"]
        frame_indices = np.asarray(cache["frame_indices"][:])
        g = guides["g"]
        if g.shape != status.shape + (cached.shape[1],):
            raise CacheError(f"{prototypes}: guiding scores of shape {g.shape} do not belong to {features}")
        labels = multi_hot([v["labels"] for v in attrs["manifest"]["videos"]], len(attrs["manifest"]["classes"]))
        return SamplerInputs(attrs, cache.content_fingerprint, status, np.empty((0, *cached.shape[1:]), dtype=cached.dtype), frame_indices, np.nan_to_num(g), labels)


# Cache rows read together when the training videos are held a window at a time: a compressed
# chunk of a store (pipeline.cache), the unit that the windows shuffle.
WINDOW_BLOCK = cache_mod.CHUNK_VIDEOS
# Blocks of a window read at once: one chunk a call leaves Zarr's concurrency unused (an epoch's
# 3 windows of FCVID's training videos, D=1280, read in 2.9-3.3 s with 4 threads against
# 3.3-5.1 s one block after another: 7 rounds in turns, 2-core machine, 2026-12-04).
WINDOW_READERS = 4


def read_training_features(inputs: SamplerInputs, features: Path, prototypes: Path, read_shift: bool = False, hold: int | None = None) -> SamplerInputs:
    """``inputs`` with the light features of the finished training videos alone, read a shard at
    a time; ``read_shift`` reads their other candidate frames too, where the cache has them.
    More than ``hold`` videos (None: no limit) are not read now but held a window at a time as
    the epochs visit them (:class:`WindowedRows`, :func:`epoch_loader`)."""
    train = inputs.finished_training()
    with FeatureCache(features) as cache:
        names = ["light_features"] + (["shift_light_features"] if read_shift and cache.offsets > 1 else [])
        shift_g = None
        if len(names) > 1:  # checked before any features are read
            guides = read_guides(prototypes, "g_shift")
            if "g_shift" not in guides:
                raise CacheError(f"{prototypes}: no guiding scores of the other candidate frames, which {features} holds; run `nsnet prototypes` again")
            shift_g = np.nan_to_num(guides["g_shift"][train])
        if hold is None or len(train) <= hold:
            rows = [cache_mod.read_rows(cache[name], train) for name in names]
        else:
            rows = [WindowedRows(partial(_read_window, features, name), train, tuple(cache[name].shape[1:])) for name in names]
    return replace(inputs, light=rows[0], shift_light=rows[1] if shift_g is not None else None, shift_g=shift_g)


def _read_window(features: Path, name: str, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted) of a cached array, read a block of :data:`WINDOW_BLOCK` at a time."""
    with FeatureCache(features) as cache:
        return cache_mod.read_rows(cache[name], rows, block=WINDOW_BLOCK, threads=WINDOW_READERS)


def training_clips(inputs: SamplerInputs, cfg: TrainConfig) -> CachedClips:
    """The finished training videos as the sampler trains on them, with the temporal random
    shift of ``cfg`` (or of the cache's candidate frames, where it has them)."""
    train = inputs.finished_training()
    return CachedClips(inputs.light, inputs.g[train], inputs.labels[train], cfg.max_shift, cfg.seed, shift_features=inputs.shift_light, shift_g=inputs.shift_g)


def epoch_loader(data: CachedClips, cfg: TrainConfig, epoch: int) -> torch.utils.data.DataLoader:
    """The epoch's shuffled batches, seeded from the config's seed and the epoch: a shuffle of
    all the videos where they are held whole, else window by window (:func:`shuffle_windows`)."""
    data.set_epoch(epoch)
    generator = torch.Generator().manual_seed(cfg.seed * 7_919 + epoch)
    if not data.windowed:
        return torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=generator)
    windows = shuffle_windows(data.features.rows // WINDOW_BLOCK, cfg.shuffle_window, generator)
    data.visit_in_windows(windows)
    return torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, sampler=np.concatenate(windows).tolist(), generator=generator)


def draw_curves(result: TrainResult, cfg: TrainConfig) -> None:
    """The run's ``curves.png`` (:data:`CURVES`), where it has none: ``nsnet train``'s last step
    (:func:`pipeline.plots.draw_curves_once`)."""
    title = f"sampler run {Path(result.path).name}: FSM {cfg.fsm_target}, VGM {cfg.vgm_target}, FEM {cfg.fem}, gamma {cfg.gamma:g}"
    draw_curves_once(result.history, CURVES, Path(result.path) / CURVES_NAME, title)


def run_train(features: Path, prototypes: Path, cfg: TrainConfig, device: str = "cpu", progress: bool = True, ground_truth: Path | None = None, val_every: int = 0) -> TrainResult:
    """Train the sampler of ``cfg`` on the cache and prototypes, unless its run has finished
    (resuming it where it stopped; one process trains a run at a time, :func:`pipeline.cache.sole_writer`),
    then report its saliency on the validation videos (against ``ground_truth`` where given).
    With ``val_every``, NSNet and UNIFORM are scored on the evaluation videos
    (:class:`ValidationCheck`) every that many epochs and after the last, into the log."""
    features, prototypes = Path(features), Path(prototypes)
    with FeatureCache(features) as cache:
        run_dir = run_dir_for(features, prototypes, cfg, cache.content_fingerprint)
    checked = ground_truth is not None and Path(ground_truth).is_file()
    if run_finished(run_dir) and not checked:  # finished: nothing to load
        return _logged(run_dir, 0)
    inputs = load_sampler_inputs(features, prototypes)
    dev = torch.device(device)
    trained = 0
    with cache_mod.sole_writer(run_dir, lambda: run_finished(run_dir), resumable=True) as training:
        if training:
            trained = _train_run(inputs, features, prototypes, cfg, dev, run_dir, progress, val_every)
    model, objective, _ = load_trained_sampler(run_dir, inputs.content_fingerprint, inputs.shape, dev)
    result = _logged(run_dir, trained)
    result.saliency_ap = _saliency_report(model, objective, inputs, features, dev, ground_truth)
    return result


def _logged(run_dir: Path, trained: int) -> TrainResult:
    """A finished run as its ``metrics.json`` says it: its history, the training videos it was
    trained on, said with those left out, and its validation ("" and none for runs that did
    not record them)."""
    metrics = run_record(run_dir / "metrics.json", {"history": []}, HISTORY_NOT_SHOWN)
    return TrainResult(str(run_dir), trained, metrics["history"], trained_on=videos_said(metrics) if "videos" in metrics else "", validation=metrics.get("validation") or {})


def _train_run(inputs: SamplerInputs, features: Path, prototypes: Path, cfg: TrainConfig, device: torch.device, run_dir: Path, progress: bool, val_every: int = 0) -> int:
    """Train the run in ``run_dir`` from its resume point (``last.pth``) or from the start, and
    save its heads (``model.pth``); returns the epochs trained."""
    torch.manual_seed(cfg.seed)
    model = inputs.shape.build(cfg).to(device)
    run_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.lr_decay)
    start, history, within = 0, [], None
    if (run_dir / "last.pth").exists():
        state = resume_point(run_dir / "last.pth", map_location=device, weights_only=False)  # resumable on another device
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history, within = state["epoch"] + 1, state["history"], state.get("within")
    # The training videos' features are held for the epochs alone (a window at a time beyond
    # cfg.shuffle_window), freed when they end (the saliency report after them reads the
    # validation videos' a block at a time).
    clips = training_clips(read_training_features(inputs, features, prototypes, read_shift=True, hold=cfg.shuffle_window), cfg)
    check = ValidationCheck.of(inputs, features) if val_every else None
    _train_epochs(model, optimizer, scheduler, frame_objective(cfg.fsm_target), clips, cfg, device, run_dir, start, history, progress, check, val_every, within)
    trained_on = {"videos": len(inputs.finished_training()), "split": "train", "left_out": inputs.left_out("train")}
    validation = {"validation": check.described(val_every)} if check is not None else {}
    cache_mod.write_text_atomic(run_dir / "metrics.json", json.dumps({"history": history, **trained_on, **validation, "config": asdict(cfg), "features": str(features), "prototypes": str(prototypes), "environment": environment(device)}, indent=1))
    save_atomic({"model": model.state_dict(), "config": asdict(cfg), "features": str(features), "features_fingerprint": inputs.content_fingerprint, "prototypes": str(prototypes),
                 "backbones": backbone_attrs(inputs.attrs), "shape": asdict(inputs.shape)}, run_dir / "model.pth")
    return cfg.epochs - start


# What of a feature cache's attributes says how its backbones were built and what their frames
# are (the config, the models' identity and checkpoints, the data configs), kept in a sampler
# run's model.pth with the class names, so that predict runs from the run folder where the cache
# is not there (a run copied to another machine; the cache is the dataset's features, gigabytes).
BACKBONE_ATTRS = ("identity", "config", "checkpoint_files", "data_configs")


def backbone_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """The :data:`BACKBONE_ATTRS` of a feature cache's attributes and its class names, in the
    attributes' own shape (``manifest.classes``): what predict reads of the cache."""
    return {**{key: attrs[key] for key in BACKBONE_ATTRS if key in attrs}, "manifest": {"classes": list(attrs["manifest"]["classes"])}}


def _train_epochs(model: NSNetSampler, optimizer: torch.optim.Optimizer, scheduler: Any, objective: FrameObjective, data: CachedClips, cfg: TrainConfig, device: torch.device, run_dir: Path, start: int, history: list[dict[str, Any]], progress: bool, check: ValidationCheck | None = None, val_every: int = 0, within: dict[str, Any] | None = None) -> None:
    """Epochs ``start`` to ``cfg.epochs`` of the run in ``run_dir``, the first going on from
    ``within`` (the part of it a stopped run saved): each appended to ``history`` (with
    ``check``'s scores every ``val_every`` epochs and after the last), saved as the resume point
    ``last.pth``, then logged in ``log.jsonl``. A scheduler's stop signal
    (:mod:`pipeline.stop_signals`) stops the run after the step it came in, that part of the
    epoch saved (:class:`~pipeline.stop_signals.Stopped`)."""
    cache_mod.restart_log(run_dir / "log.jsonl", history)
    bar = tqdm(range(start, cfg.epochs), desc="train sampler", unit="epoch", disable=not progress)
    with StopSignals() as stops:
        for epoch in bar:
            tick = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            went_on = within if epoch == start else None
            done = EpochLosses(np.array(went_on["sums"]), went_on["videos"], went_on["batches"]) if went_on else EpochLosses()
            if went_on:
                torch.set_rng_state(went_on["rng"])
            lr = optimizer.param_groups[0]["lr"]  # the epoch's, before the scheduler steps to the next
            loader = epoch_loader(data, cfg, epoch)
            # the batches the stopped run trained on are read again and passed over (each item
            # is drawn from its own seed): at FCVID's size an epoch's reading is seconds
            losses = train_epoch(model, itertools.islice(loader, done.batches, None), optimizer, objective, cfg.gamma, device, cfg.grad_clip, cfg.vgm_target, done=done, stops=stops)
            seconds = time.perf_counter() - tick + (went_on["seconds"] if went_on else 0.0)
            if losses.batches < len(loader):
                within = {"sums": losses.sums.tolist(), "videos": losses.videos, "batches": losses.batches, "seconds": seconds, "rng": torch.get_rng_state()}
                save_resume_point(run_dir / "last.pth", model, optimizer, scheduler, epoch - 1, history, within)
                raise Stopped(stops.received, stopped_said(run_dir, stops.received, epoch, cfg.epochs, losses.batches, len(loader)))
            scheduler.step()
            mean = losses.means()
            entry = {"epoch": epoch + 1, "loss": mean.total, "frame": mean.frame, "video": mean.video, "cls": mean.cls, "ns": mean.ns, "lr": lr, "seconds": seconds}
            if check is not None and ((epoch + 1) % val_every == 0 or epoch + 1 == cfg.epochs):
                entry.update(check(model, objective, device))  # the heads in eval mode; train_epoch sets train mode again
            history.append(entry)
            bar.set_postfix(loss=f"{mean.total:.4f}")
            save_resume_point(run_dir / "last.pth", model, optimizer, scheduler, epoch, history)
            cache_mod.append_log(run_dir / "log.jsonl", entry)


def load_trained_sampler(run_dir: Path, features_fingerprint: str, shape: SamplerShape, device: torch.device) -> tuple[NSNetSampler, FrameObjective, TrainConfig]:
    """The trained heads of a finished ``nsnet train`` run, checked against the feature cache
    (its :meth:`~pipeline.cache.FeatureCache.content_fingerprint`) they are about to be used with."""
    path = Path(run_dir) / "model.pth"
    if not path.is_file():
        raise CacheError(named(Path(run_dir), "a sampler run", "no trained sampler here (model.pth missing); run `nsnet train` first", itself=SAMPLER_RUN))
    saved = read_run_model(run_dir, weights_only=False)
    if saved.get("features_fingerprint") != features_fingerprint:
        raise CacheError(f"{run_dir}: this sampler was trained on another feature cache ({saved.get('features')}), or on this one before videos of it were computed again, "
                         f"not on the one given (content fingerprint {features_fingerprint[:16]}); train on it (nsnet train)")
    try:
        cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
    except ValueError as exc:  # a run made before the ranges were checked (2026-12-06)
        raise CacheError(f"{path}: the run's training config is out of range ({exc}); train again with settings in range") from exc
    model = shape.build(cfg)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as exc:
        raise CacheError(f"{path}: the trained heads do not fit a sampler of {shape} ({str(exc).splitlines()[0]})") from exc
    return model.to(device).eval(), frame_objective(cfg.fsm_target), cfg


def saliency_blocks(model: NSNetSampler, objective: FrameObjective, cache: FeatureCache, rows: np.ndarray, device: torch.device) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(block, s_f, s_v) of trained heads on the cached videos ``rows`` (sorted), ``SALIENCY_BATCH``
    of them at a time, their light features read a block at a time: what is held is one block,
    however many rows."""
    for at in range(0, len(rows), SALIENCY_BATCH):
        block = rows[at : at + SALIENCY_BATCH]
        yield (block, *sampler_saliency(model, objective, cache_mod.read_rows(cache["light_features"], block), device))


def cached_saliency(model: NSNetSampler, objective: FrameObjective, features: Path, rows: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(s_f, s_v) [V, T] of trained heads on the V cached videos ``rows`` (sorted, at least
    one), read and scored a block at a time (:func:`saliency_blocks`)."""
    with FeatureCache(features) as cache:
        blocks = [(s_f, s_v) for _, s_f, s_v in saliency_blocks(model, objective, cache, rows, device)]
    s_f, s_v = (np.concatenate(parts) for parts in zip(*blocks))
    return s_f, s_v


@dataclass(frozen=True)
class ValidationCheck:
    """NSNet and UNIFORM at K on the evaluation videos, during training: the heads' fused choice
    (``cfg``'s K, fusion and alpha) and UNIFORM's K scored with the recognizer's cached logits
    of the chosen frames, as evaluate's cached rows score them; the light features and logits
    read a block of :data:`SALIENCY_BATCH` videos at a time (:func:`saliency_blocks`), so what
    is held is a block and the [V, C] scores."""

    features: Path
    rows: np.ndarray  # the evaluation videos' cache rows, sorted
    labels: list[list[int]]
    split: str
    t: int
    cfg: EvalConfig = EvalConfig()

    @classmethod
    def of(cls, inputs: SamplerInputs, features: Path, cfg: EvalConfig = EvalConfig()) -> ValidationCheck | None:
        """The check on the evaluation split's finished videos; None where there are none."""
        if not inputs.evaluation_splits():
            return None
        rows, split = inputs.evaluated()
        if not len(rows):
            return None
        return cls(Path(features), rows, [inputs.videos[i]["labels"] for i in rows], split, inputs.shape.num_frames, cfg)

    @property
    def k(self) -> int:
        return min(self.cfg.k, self.t)

    def __call__(self, model: NSNetSampler, objective: FrameObjective, device: torch.device) -> dict[str, float]:
        """``val_map``, ``val_top1`` (NSNet) and ``val_uniform_map``, ``val_uniform_top1``, in %."""
        nsnet, uniform = [], []
        with FeatureCache(self.features) as cache:
            for block, s_f, s_v in saliency_blocks(model, objective, cache, self.rows, device):
                logits = cache_mod.read_rows(cache["rec_logits"], block)
                nsnet.append(scores_at(logits, fused_positions(s_f, s_v, self.k, self.cfg.fusion, self.cfg.alpha)))
                uniform.append(scores_at(logits, [uniform_positions(self.t, self.k)] * len(block)))
        ours, base = recognition(np.concatenate(nsnet), self.labels), recognition(np.concatenate(uniform), self.labels)
        return {"val_map": ours.map, "val_top1": ours.top1, "val_uniform_map": base.map, "val_uniform_top1": base.top1}

    def described(self, every: int) -> dict[str, Any]:
        """What the run's ``metrics.json`` says of its validation (``validation``)."""
        return {"split": self.split, "videos": len(self.rows), "k": self.k, "t": self.t, "fusion": self.cfg.fusion, "alpha": self.cfg.alpha, "every": every}


def validation_line(validation: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The summary's line of a run's last validated epoch ("" where it validated none)."""
    entry = last_validated(history)
    if entry is None:
        return ""
    return (f"val on {validation['videos']:,} {validation['split']} videos at K={validation['k']} of T={validation['t']} ({validation['fusion']}, cached logits), epoch {entry['epoch']}: "
            f"NSNet mAP {entry['val_map']:.1f}, top-1 {entry['val_top1']:.1f}; UNIFORM mAP {entry['val_uniform_map']:.1f}, top-1 {entry['val_uniform_top1']:.1f}")


def _saliency_report(model: NSNetSampler, objective: FrameObjective, inputs: SamplerInputs, features: Path, device: torch.device, ground_truth: Path | None) -> dict[str, float]:
    """On demo data: AP of s_f and s_v against the generator's salient frames (the evaluation
    split's videos, as evaluate takes them)."""
    if ground_truth is None or not inputs.evaluation_splits():
        return {}
    truth = run_record(Path(ground_truth), {}, NO_SALIENCY_AP)  # read only where it is wanted
    if not truth:
        return {}
    from sklearn.metrics import average_precision_score

    with FeatureCache(features) as cache:
        num_frames = np.asarray(cache["num_frames"][:])
    val, targets = salient_targets(truth, inputs.videos, inputs.evaluated()[0], inputs.frame_indices, num_frames)
    if not len(val):
        return {}
    s_f, s_v = cached_saliency(model, objective, features, val, device)
    y = targets.ravel()
    return {
        "AP of s_f vs ground-truth salient frames (val)": float(average_precision_score(y, s_f.ravel())),
        "AP of s_v vs ground-truth salient frames (val)": float(average_precision_score(y, s_v.ravel())),
        "share of salient frames (chance AP)": float(y.mean()),
    }
