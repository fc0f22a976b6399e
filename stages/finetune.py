"""Stage ``nsnet finetune``: train the recognizer or the light backbone on the target dataset.

Output: ``<cache>/<dataset>/finetune/<role>-<model>-<fingerprint>/`` with ``model.pth`` (an
NSNet checkpoint the features stage loads with ``--recognizer-weights`` / ``--light-weights``),
``last.pth`` (the resume point, written after every epoch), ``log.jsonl`` (one line an epoch),
``metrics.json`` and, where videos could not be read, ``left_out.json`` (where some were cut
short, ``read_short.json``). The same config and inputs again: nothing to do.
"""

from __future__ import annotations

import filecmp
import json
import math
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import pipeline
from pipeline import cache as cache_mod
from pipeline.config import FinetuneConfig, ModelSpec, RunOptions
from pipeline.datasets import AnnotationFiles, Manifest, load_manifest
from pipeline.distributed import Worker, barrier, from_leader, gathered, joined_worker, merged_across_ranks
from pipeline.stop_signals import StopSignals, Stopped, stopped_said
from pipeline.environment import environment
from pipeline.extract import decoding_workers, workers_within_shared_memory
from pipeline.checked_files import HISTORY_NOT_SHOWN, resume_point, run_record
from pipeline.checkpoints import make_checkpoint
from pipeline.models import create_finetune_model, data_config, frame_transform, save_atomic, save_resume_point, weights_identity
from pipeline.plots import CURVES_NAME, draw_curves_once
from pipeline.decode_watch import WatchedDecoding
from pipeline.video import failure_summary
from pipeline.wording import counted, first_few
from pipeline.training import GLOBAL, SHUFFLE, EpochStats, ReadShort, TrainClips, ValClips, collate_val_clips, epoch_order, item_seed, joined_scores, train_one_epoch, validation_metrics, validation_scores, watched_batches

ROLES = ("recognizer", "light")
# The videos a run could not read (missing, corrupt, a decoder that hung or crashed), by split:
# {"train": {path: reason}, "val": {...}}, written after each epoch beside the run's checkpoints.
LEFT_OUT = "left_out.json"
# The videos it read short (files cut short, read as the frames that decode), by split:
# {"train": {path: {"frames": n, "listed": m}}, ...}; a resumed run reads them so at once.
READ_SHORT = "read_short.json"
# The panels of a run's curves (pipeline.plots.plot_training_curves), of log.jsonl's keys.
CURVES = (
    ("training", {"loss": "loss"}, "cross-entropy"),
    ("validation", {"top1": "top-1", "mAP": "mAP"}, "0 to 1"),
    ("schedule", {"lr": "learning rate"}, "learning rate"),
)


@dataclass
class FinetuneResult:
    checkpoint: str
    trained_epochs: int  # epochs run by this call (0: already finished)
    history: list[dict[str, Any]] = field(default_factory=list)
    chance_top1: float = 0.0
    seconds: float = 0.0
    leader: bool = True  # False on torchrun ranks other than 0, which print nothing
    start: str = ""  # what the initial weights gave (trained now; empty for a finished run)
    left_out: dict[str, dict[str, str]] = field(default_factory=dict)  # split -> {video: why it could not be read}
    read_short: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # split -> {video: {"frames", "listed"}}
    run_dir: str = ""  # the run's folder (checkpoint may be the copy in --out)
    curves: str = ""  # the run's curves.png, where drawn (draw_curves)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def table(self) -> str:
        lines = [f"started from {self.start}"] if self.start else []
        lines.append(f"{'epoch':>5}  {'loss':>8}  {'val top-1':>9}  {'val mAP':>8}  {'seconds':>7}")
        for h in self.history:
            lines.append(f"{h['epoch']:>5}  {h['loss']:8.4f}  {100 * h['top1']:8.1f}%  {100 * h['mAP']:7.1f}%  {h['seconds']:7.1f}")
        lines.append(f"checkpoint {self.checkpoint}  (chance top-1 {100 * self.chance_top1:.1f}%, {self.trained_epochs} epochs trained now, {self.seconds:.0f} s)")
        if self.curves:
            lines.append(f"curves {self.curves}")
        for split, videos in self.left_out.items():
            if videos:
                lines.append(f"left out of {split}: {len(videos):,} video(s) that could not be read, by reason  {failure_summary(list(videos.values()))}  (each in {LEFT_OUT} beside the run's model.pth)")
        for split, videos in self.read_short.items():
            if videos:
                cut = first_few([f"{path} {n['frames']} of {n['listed']}" for path, n in videos.items()], 3)
                lines.append(f"read short in {split}: {len(videos):,} video(s) cut short, read as the frames that decode ({cut}; each in {READ_SHORT})")
        return "\n".join(lines)


def read_by_split(run_dir: Path, name: str) -> dict[str, dict[str, Any]]:
    """A run's record of videos by split, :data:`LEFT_OUT` or :data:`READ_SHORT` (empty before
    its first epoch, and where it is damaged: :func:`~pipeline.checked_files.run_record`)."""
    return run_record(Path(run_dir) / name, {"train": {}, "val": {}}, "the videos it named are read again, as the run meets them")


def _splits(manifest: Manifest) -> tuple[list, list]:
    train = [manifest.videos[i] for i in manifest.split("train")]
    val = [manifest.videos[i] for i in manifest.split("val")] or [manifest.videos[i] for i in manifest.split("test")]
    if not train:
        raise ValueError(f"{manifest.name}: the manifest has no training videos")
    return train, val


def run_dir_for(dataset: str, manifest: Manifest, role: str, spec: ModelSpec, ft: FinetuneConfig, val_frames: int, opts: RunOptions) -> tuple[Path, dict[str, Any]]:
    identity = {
        "schema": pipeline.CACHE_SCHEMA_VERSION,
        "code_version": pipeline.__version__,
        "dataset": dataset,
        "manifest_sha256": manifest.digest(),
        "role": role,
        "model": {**asdict(spec), "weights": weights_identity(spec)},
        "finetune": asdict(ft),
        "val_frames": val_frames,
    }
    fp = cache_mod.fingerprint(identity)
    return Path(opts.cache_dir) / dataset / "finetune" / f"{role}-{spec.name}-{fp[:16]}", identity


def train_transform(cfg: dict[str, Any], ft: FinetuneConfig):
    """timm's training transform at the model's resolution (random resized crop, flip, jitter)."""
    from timm.data import create_transform

    return create_transform(
        input_size=cfg["input_size"],
        is_training=True,
        scale=ft.crop_scale,
        hflip=0.5,
        color_jitter=ft.color_jitter,
        interpolation=cfg["interpolation"],
        mean=cfg["mean"],
        std=cfg["std"],
        re_prob=0.0,
    )


def run_finetune(dataset: str, data_root: Path | None, role: str, spec: ModelSpec, ft: FinetuneConfig, val_frames: int, opts: RunOptions, out: Path | None = None, files: AnnotationFiles = AnnotationFiles()) -> FinetuneResult:
    """Fine-tune (or finish fine-tuning) one backbone; idempotent and resumable."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    started = time.perf_counter()
    with joined_worker((0, 1), opts.device) as worker:
        root, manifest = from_leader(lambda: load_manifest(dataset, data_root, files), worker)  # one manifest for every rank
        train, val = _splits(manifest)
        run_dir, identity = run_dir_for(dataset, manifest, role, spec, ft, val_frames, opts)
        final = run_dir / "model.pth"
        # one job trains a run at a time: its leader holds the run's lock, its other ranks follow
        with cache_mod.sole_writer(run_dir, final.exists, resumable=True) if worker.is_leader else nullcontext(not final.exists()) as training:
            if training:
                result = _train(root, manifest, train, val, role, spec, ft, val_frames, opts, worker, run_dir, identity)
            elif worker.is_leader:  # the one that reports: its records read (and a damaged one warned of) once
                history = run_record(run_dir / "metrics.json", {"history": []}, HISTORY_NOT_SHOWN)["history"]
                result = FinetuneResult(str(final), 0, history, left_out=read_by_split(run_dir, LEFT_OUT), read_short=read_by_split(run_dir, READ_SHORT))
            else:
                result = FinetuneResult(str(final), 0)
    result.leader = worker.is_leader
    result.run_dir = str(run_dir)
    result.chance_top1 = _chance_top1(val, manifest.num_classes)
    result.seconds = time.perf_counter() - started
    if out is not None and worker.is_leader:
        _copy_out(final, Path(out))
        result.checkpoint = str(out)
    return result


def _copy_out(final: Path, out: Path) -> None:
    """The run's ``model.pth`` copied to ``--out`` where ``out`` holds other bytes, one copier
    at a time under ``out``'s lock, which first removes the part-written copies of killed
    runs (``<out>.<pid>.tmp``, a checkpoint's size each)."""
    with cache_mod.writing_alone(out):
        if not (out.exists() and filecmp.cmp(out, final, shallow=False)):
            with cache_mod.replacing(out) as tmp:
                shutil.copyfile(final, tmp)


def draw_curves(result: FinetuneResult) -> None:
    """The run's ``curves.png`` (:data:`CURVES`), where it has none, named in ``result``:
    ``nsnet finetune``'s leader's last step (:func:`pipeline.plots.draw_curves_once`)."""
    path = Path(result.run_dir) / CURVES_NAME
    result.curves = str(path) if draw_curves_once(result.history, CURVES, path, f"fine-tuning {path.parent.name}") else ""


def _chance_top1(val: list, num_classes: int) -> float:
    """Top-1 of always answering the most frequent validation class (1/C when balanced)."""
    if not val:
        return 1.0 / num_classes
    counts = torch.zeros(num_classes)
    for v in val:
        counts[list(v.labels)] += 1
    return float(counts.max() / len(val))


def _train(root: Path, manifest: Manifest, train: list, val: list, role: str, spec: ModelSpec, ft: FinetuneConfig, val_frames: int, opts: RunOptions, worker: Worker, run_dir: Path, identity: dict[str, Any]) -> FinetuneResult:
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    device = worker.device
    model, start = create_finetune_model(spec, manifest.num_classes, ft.seed, manifest.classes)
    cfg = data_config(model, spec)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt=ft.optimizer, lr=ft.lr, weight_decay=ft.weight_decay, momentum=ft.momentum)
    scheduler, _ = create_scheduler_v2(optimizer, sched=ft.scheduler, num_epochs=ft.epochs, warmup_epochs=ft.warmup_epochs, min_lr=ft.lr * 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=ft.label_smoothing)
    # the run's folder once its model, weights, optimizer and schedule are taken: a refused one leaves none
    run_dir.mkdir(parents=True, exist_ok=True)
    if worker.is_leader:  # the one writer in the run's folder, holding its lock
        cache_mod.write_text_atomic(run_dir / "identity.json", json.dumps(identity, indent=1))

    start_epoch, history, within = 0, [], None
    resume = run_dir / "last.pth"
    if resume.exists():
        state = resume_point(resume, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history, within = state["epoch"] + 1, state["history"], state.get("within")
        if worker.is_leader and (before := ranks_before(history, within)) not in (None, worker.world_size):
            warnings.warn(f"{resume}: resumed on {worker.world_size} rank(s), where its {counted(len(history), 'epoch')} so far ran on {before}: a step now takes {ft.batch_size} clips on each of {worker.world_size} (--batch-size is a rank's) where it took them on each of {before}, so the weights will not be those of the run left uninterrupted; resume it on {before} rank(s) to have them", RuntimeWarning, stacklevel=2)
    else:
        scheduler.step(0)

    net: torch.nn.Module = model
    sampler = None
    train_set = TrainClips(root, train, manifest.num_classes, ft.segments, train_transform(cfg, ft), ft.seed, ft.repeats)
    if worker.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        sampler = torch.utils.data.distributed.DistributedSampler(train_set, shuffle=True, seed=ft.seed, drop_last=True)
    # a batch crosses from its decoder through shared memory: training clips as float32, the
    # validation videos' frames as uint8 crops
    frame = math.prod(cfg["input_size"])
    val_batch = max(1, 128 // val_frames)
    batch_bytes = max(ft.batch_size * ft.segments * frame * 4, val_batch * val_frames * frame)
    workers = workers_within_shared_memory(decoding_workers(opts.workers, device), batch_bytes, asked=opts.workers is not None)
    val_set = ValClips(root, val, val_frames, frame_transform(cfg))
    # decoders that hang or crash on a video leave it out for the rest of the run; one that a
    # scheduler's stop signal ended stops it
    stops = StopSignals(worker)
    watched_train = WatchedDecoding(workers, opts.decode_timeout, f"{role} fine-tuning", lambda v: str(root / train[v].path), stops.noted)
    watched_val = WatchedDecoding(workers, opts.decode_timeout, f"{role} validation", lambda v: str(root / val[v].path), stops.noted)
    splits = {"train": (train, watched_train, train_set), "val": (val, watched_val, val_set)}
    pinned = device.type == "cuda"  # batches in page-locked memory, copied to the GPU asynchronously
    # a resumed run does not read again the videos left out before, and reads those found short so
    left_out, read_short = read_by_split(run_dir, LEFT_OUT), read_by_split(run_dir, READ_SHORT)
    for split, (videos, decoding, dataset) in splits.items():
        number = {v.path: i for i, v in enumerate(videos)}
        decoding.skip.update({number[path]: reason for path, reason in left_out[split].items() if path in number})
        dataset.short.update({number[path]: ReadShort(number[path], n["frames"], n["listed"]) for path, n in read_short[split].items() if path in number})
    log = run_dir / "log.jsonl"
    if worker.is_leader:
        cache_mod.restart_log(log, history)
    # every rank validates batches of its share of the videos; the first `common` of them every rank has
    common = math.ceil(len(val) // worker.world_size / val_batch)
    with stops:
        for epoch in range(start_epoch, ft.epochs):
            tick = time.perf_counter()
            train_set.set_epoch(epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            torch.manual_seed(item_seed(ft.seed, epoch, stream=GLOBAL))
            went_on = within if epoch == start_epoch else None  # the part of the epoch a stopped run saved
            done, earlier = _going_on(went_on, worker), went_on["seconds"] if went_on else 0.0
            order = list(sampler) if sampler is not None else epoch_order(len(train_set), item_seed(ft.seed, epoch, stream=SHUFFLE))
            lr = optimizer.param_groups[0]["lr"]  # the epoch's: the scheduler steps at its end
            bar = tqdm(total=len(order), initial=min(done.batches * ft.batch_size, len(order)), unit="clip", desc=f"{role} epoch {epoch + 1}/{ft.epochs}", disable=not opts.progress or not worker.is_leader, leave=False)
            with watched_train:
                rest = order[done.batches * ft.batch_size :]
                stats = train_one_epoch(net, watched_batches(watched_train, train_set, rest, ft.batch_size, workers, pin_memory=pinned), optimizer, loss_fn, device, bar, done=done, stops=stops)
            bar.close()
            scored = None
            if not stops.agreed():
                with watched_val:
                    share, checks = range(worker.rank, len(val), worker.world_size), stops.checks(common)
                    scored = validation_scores(model, watched_batches(watched_val, val_set, share, val_batch, workers, collate_val_clips, pinned), device, checks)
                checks.rest()
            left_out, read_short = _records(run_dir, splits, worker)
            if signum := stops.agreed():
                raise _stop_here(signum, epoch, stats, math.ceil(len(order) / ft.batch_size), time.perf_counter() - tick + earlier, resume, model, optimizer, scheduler, history, ft, worker)
            scored = joined_scores(gathered(scored, worker))
            stats = EpochStats.together(gathered(stats, worker))
            scheduler.step(epoch + 1)
            if worker.is_leader:
                metrics = validation_metrics(*scored, val)
                seconds = time.perf_counter() - tick + earlier
                entry = {"epoch": epoch + 1, "loss": stats.loss, "clips": stats.clips, "skipped": len(order) * worker.world_size - stats.clips, **metrics, "lr": lr, "ranks": worker.world_size, "seconds": seconds}
                history.append(entry)
                if opts.progress:
                    tqdm.write(f"{role} epoch {epoch + 1}: loss {stats.loss:.4f}, val top-1 {100 * metrics['top1']:.1f}%, mAP {100 * metrics['mAP']:.1f}%")
                save_resume_point(resume, model, optimizer, scheduler, epoch, history)
                cache_mod.append_log(log, entry)
            barrier(worker)
    if worker.is_leader:
        checkpoint = make_checkpoint(model, spec.name, manifest.classes, cfg, role=role, identity=identity, metrics=history[-1] if history else {})
        cache_mod.write_text_atomic(run_dir / "metrics.json", json.dumps({"history": history, "environment": environment(worker.device)}, indent=1))
        save_atomic(checkpoint, run_dir / "model.pth")
    barrier(worker)
    return FinetuneResult(str(run_dir / "model.pth"), ft.epochs - start_epoch, history, start=start, left_out=left_out, read_short=read_short)


def ranks_before(history: list[dict[str, Any]], within: dict[str, Any] | None = None) -> int | None:
    """The ranks a resumed run last ran on: those of the part of an epoch a stopped run saved
    (``within``), else of its last epoch (None for epochs logged before 2026-12-07, which did not
    record them)."""
    if within is not None:
        return len(within["batches"])
    return history[-1].get("ranks") if history else None


def _going_on(within: dict[str, Any] | None, worker: Worker) -> EpochStats:
    """Where this rank goes on in an epoch a stopped run saved part of (``within``; None: from
    its start): at its own place in its order where the ranks are as many as the run's were,
    else each at the mean of their places; the loss and clips so far on rank 0, which sums the
    ranks'; torch's generators as the run left them."""
    if within is None:
        return EpochStats()
    torch.set_rng_state(within["rng"])
    if worker.device.type == "cuda" and within.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(within["cuda_rng"], worker.device)
    places = within["batches"]
    place = places[worker.rank] if len(places) == worker.world_size else sum(places) // worker.world_size
    return EpochStats(within["loss_sum"], within["clips"], place) if worker.is_leader else EpochStats(batches=place)


def _records(run_dir: Path, splits: dict[str, tuple[list, WatchedDecoding, Any]], worker: Worker) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The videos left out and read short so far, by split, of every rank (a collective: the
    ranks read different videos), written by the leader as :data:`LEFT_OUT` and
    :data:`READ_SHORT`."""
    for _, decoding, dataset in splits.values():
        decoding.skip.update(merged_across_ranks(decoding.skip, worker))
        dataset.short.update(merged_across_ranks(dataset.short, worker))
    left_out = {split: {videos[i].path: reason for i, reason in sorted(decoding.skip.items())} for split, (videos, decoding, _) in splits.items()}
    read_short = {split: {videos[i].path: {"frames": s.frames, "listed": s.listed} for i, s in sorted(dataset.short.items())} for split, (videos, _, dataset) in splits.items()}
    if worker.is_leader:
        _written(run_dir / LEFT_OUT, left_out)
        _written(run_dir / READ_SHORT, read_short)
    return left_out, read_short


def _stop_here(signum: int, epoch: int, stats: EpochStats, batches: int, seconds: float, resume: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, history: list[dict[str, Any]], ft: FinetuneConfig, worker: Worker) -> Stopped:
    """The run's progress within ``epoch`` saved in ``resume`` (a collective: every rank's place
    and loss are gathered), and the :class:`~pipeline.stop_signals.Stopped` that says so."""
    parts = gathered(stats, worker)
    if worker.is_leader:
        total = EpochStats.together(parts)
        within = {"batches": [part.batches for part in parts], "loss_sum": total.loss_sum, "clips": total.clips, "seconds": seconds, "rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(worker.device) if worker.device.type == "cuda" else None}
        save_resume_point(resume, model, optimizer, scheduler, epoch - 1, history, within)
    barrier(worker)
    return Stopped(signum, stopped_said(resume.parent, signum, epoch, ft.epochs, stats.batches, batches), worker.is_leader)


def _written(path: Path, now: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``now`` (videos by split), written to ``path`` where the file there says otherwise (a
    damaged one too: :func:`~pipeline.checked_files.run_record`), or where there is none and
    ``now`` names a video."""
    if path.exists() or any(now.values()):
        cache_mod.write_text_changed(path, json.dumps(now, indent=1))
    return now
