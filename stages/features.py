"""Stage 1, ``nsnet features``: pre-sample T frames per video, run both backbones, fill the cache."""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import pipeline
from pipeline import cache as cache_mod
from pipeline.cache import DONE, FAILED, NOT_RECORDED, PENDING, BackgroundWriter, CacheError, FeatureCache, Layout, ShardAssembler, ZarrWriter, changed_sources, shard_size, store_sizes, write_text_alone
from pipeline.backends import Runner, backend_identity, make_runner, resolve_backend
from pipeline.class_order import OrderWatch, misordered_message, write_recognizer_classes
from pipeline.config import EVEN_SHARES, WEIGHTS_IMAGENET, WEIGHTS_NONE, FeaturesConfig, RunOptions, from_checkpoint
from pipeline.datasets import AnnotationFiles, Manifest, load_manifest
from pipeline.distributed import Worker, barrier, busiest_share, even_shard_size, evener_shard_size, from_leader, gathered, joined_worker, pick_device, shares_even
from pipeline.environment import environment
from pipeline.decode_watch import WatchedDecoding
from pipeline.decoders import DECODER_RULES, looked_into, misread_before
from pipeline.file_rights import warn_if_kept_from_the_group
from pipeline.extract import BlockDecoder, BlockInference, DecodedBlock, decoding_loader, decoding_workers, make_blocks, workers_within_shared_memory
from pipeline.metrics import multi_hot
from pipeline.checkpoints import preprocessing_text
from pipeline.models import CHECKPOINT_TAKEN, FrameEncoder, check_model_name, checkpoint_identity, create_model, data_config, frame_transform, frame_transforms, imagenet_overlay, model_identity, weights_identity
from pipeline.shared_caches import cache_folders
from pipeline.sibling_caches import STORE_NAME, Reusable, Sibling, copied_rows, find_siblings, held, reusable_rows
from pipeline.video import NO_SOURCE, failure_summary, looked_at, source_size
from pipeline.wording import first_few

# The two models of a cache, as its config, identity and data configs name them.
ROLES = ("light", "recognizer")


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    """The lines of a table of names and values, the values in one column."""
    width = max(len(k) for k, _ in rows)
    return [f"{k.ljust(width)}  {v}" for k, v in rows]


@dataclass
class FeaturesSummary:
    """What a features run did, and the state of the whole cache after it."""

    cache: str
    total: int
    computed: int = 0  # finished by this run
    skipped: int = 0  # already finished (or failed) before this run, in this run's share
    changed: int = 0  # finished or failed before, computed again by this run: their sources changed since
    misread: int = 0  # finished or failed before, computed again by this run: decord misread them (cache.py's decoder_rules)
    damaged: int = 0  # computed again by this run: their shards held chunks whose checksums did not match
    verified: bool = False  # the cache was read whole against its checksums first (--verify)
    unchecked: bool = False  # its chunks carry no checksums (a cache made before 2026-12-07)
    copied: int = 0  # finished (or failed) by this run as copies of a sibling cache's rows
    copied_from: list[str] = field(default_factory=list)  # those siblings' names
    failed_now: int = 0
    done: int = 0  # whole cache
    failed: int = 0  # whole cache, plus manifest entries that could not be used
    pending: int = 0  # whole cache, left to other shards or a later run
    cache_bytes: int = 0
    seconds: float = 0.0
    failures_file: str = ""
    failures: list[dict[str, str]] = field(default_factory=list)
    # finished videos whose container states more frames than decode (a file cut short), read as
    # the frames that do (pipeline.video.read_planned)
    short_reads: list[dict[str, Any]] = field(default_factory=list)
    # finished videos PyAV read, decord passing them over, with its reason (pipeline.video
    # FrameSource.decord_passed_over: a file it cannot open or seek in, or would misread)
    pyav_reads: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0  # frames run through both models by this run
    # by role, what a model's checkpoint gives beyond its bytes where not the plain case
    # (pipeline.models.checkpoint_identity: its EMA weights, its recorded preprocessing)
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    compute_seconds: float = 0.0  # time of the decode + inference loop alone
    environment: dict[str, Any] = field(default_factory=dict)  # what the run's figures were measured with (pipeline.environment)
    leader: bool = True  # False on torchrun ranks other than 0, which print nothing

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def table(self) -> str:
        per_video = self.cache_bytes / max(self.done, 1)
        rows = [
            ("cache", self.cache),
            ("videos in manifest", f"{self.total}"),
            ("computed this run", f"{self.computed}"),
            ("skipped (already in cache)", f"{self.skipped}"),
            *([("computed again (file changed)", f"{self.changed} (another size than when computed)")] if self.changed else []),
            *([("verified", f"every chunk decoded; {cache_mod.NO_CHECKSUMS}" if self.unchecked else "every chunk matched its checksum")] if self.verified and not self.damaged else []),
            *([("computed again (damaged)", f"{self.damaged} (in shards holding a chunk whose checksum did not match: a copy cut short, or a disk error)")] if self.damaged else []),
            *([("computed again (misread)", f"{self.misread} (decord read them, as it did every file it opened before 2026-12-06 (night), and misread them; PyAV reads them now)")] if self.misread else []),
            *([("copied from sibling caches", f"{self.copied} ({first_few(self.copied_from, 3)}: the same configuration, another manifest)")] if self.copied else []),
            ("failed", f"{self.failed}" + (f" ({self.failed_now} this run)" if self.failed_now else "")),
            ("done / pending", f"{self.done} / {self.pending}" + ("  (complete)" if self.complete else "  (INCOMPLETE)")),
            ("cache size", f"{self.cache_bytes / 2**20:.2f} MiB ({per_video / 1024:.1f} KiB per video)"),
            ("time", f"{self.seconds:.1f} s" + (f" ({self.frames / self.compute_seconds:.1f} frames/s in the loop)" if self.compute_seconds else "")),
        ]
        for role, taken in self.checkpoints.items():
            if "ema" in taken:
                rows.append((f"{role} weights", f"the checkpoint's averaged ones ({taken['ema']}), as timm loads it"))
            if "preprocessing" in taken:
                rows.append((f"{role} preprocessing", f"{preprocessing_text(taken['preprocessing'])}, as its checkpoint was trained (not timm's for the model)"))
        if self.failures:
            rows.append(("failed, by reason", failure_summary([f["reason"] for f in self.failures])))
            rows.append(("failures file", self.failures_file))
        if self.short_reads:
            rows.append(("read short", f"{len(self.short_reads)} (cut short: the frames that decode used; " + first_few([f"{r['path']} {r['frames']} of {r['listed']}" for r in self.short_reads], 3) + ")"))
        if self.pyav_reads:
            rows.append(("read by PyAV", f"{len(self.pyav_reads)}, decord passing over: {failure_summary([r['pyav'] for r in self.pyav_reads])}"))
        lines = _aligned(rows)
        for failure in self.failures[:10]:
            lines.append(f"  FAILED {failure['video_id']}: {failure['path']}: {failure['reason']}")
        if len(self.failures) > 10:
            lines.append(f"  ... and {len(self.failures) - 10} more in the failures file")
        return "\n".join(lines)


def cache_identity(dataset: str, manifest: Manifest, config: FeaturesConfig, backend: str = "torch") -> dict[str, Any]:
    """Everything that determines the cache's content; its hash is the fingerprint. The
    backend is named only when it is not torch, the candidates per segment only when there are
    several, and what a model's checkpoint gives beyond its bytes only where that is not the
    plain case, so caches written before there was a choice keep their fingerprints."""
    models = {role: model_identity(getattr(config, role)) for role in ROLES}
    return {
        **backend_identity(backend),
        "schema": pipeline.CACHE_SCHEMA_VERSION,
        "code_version": pipeline.__version__,
        "dataset": dataset,
        "manifest_sha256": manifest.digest(),
        "num_frames": config.num_frames,
        **({} if config.offsets == 1 else {"offsets": config.offsets}),
        "models": models,
        "seed": config.seed,
    }


def resolve_cache_path(dataset: str, manifest: Manifest, config: FeaturesConfig, opts: RunOptions, explicit: Path | None) -> tuple[Path, str, dict[str, Any]]:
    identity = cache_identity(dataset, manifest, config, resolve_backend(opts.backend, pick_device(opts.device)))
    fp = cache_mod.fingerprint(identity)
    path = explicit or cache_mod.store_path(opts.cache_dir, dataset, fp, config.storage)
    if config.storage == "hdf5" and path.suffix != ".h5":
        raise CacheError(f"{path}: an HDF5 cache path must end in .h5")
    if config.storage == "zarr" and path.suffix != ".zarr":
        raise CacheError(f"{path}: a Zarr cache path must end in .zarr")
    return path, fp, identity


def _failures_file(final: Path) -> Path:
    return final.with_name(final.name + ".failures.jsonl")


def _log_video(log: Path, video_id: str, path: str, reason: str, **more: Any) -> None:
    """A line of the run's log of a video: why it failed, or how it was read, and when (``at``,
    seconds since the epoch: the latest line of a video is read back, whichever log holds it)."""
    _log_lines(log, [{"video_id": video_id, "path": path, "reason": reason, **more, "at": round(time.time(), 3)}])


def _log_lines(log: Path, records: list[dict[str, Any]]) -> None:
    """Lines of the run's log, on disk when this returns; on a line of their own where the log
    ends in one cut short (:func:`~pipeline.cache.logged_lines` passes over it)."""
    if not records:
        return
    text = "".join(json.dumps(record) + "\n" for record in records)
    with open(log, "ab+") as handle:  # appends wherever it reads
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                text = "\n" + text
        handle.write(text.encode())
        handle.flush()
        os.fsync(handle.fileno())


def _collect_logged(final: Path, manifest: Manifest, status: np.ndarray) -> tuple[list[dict[str, str]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Latest logged reason of every video now marked failed, plus unusable manifest entries,
    written atomically to ``<cache>.failures.jsonl``; and the finished videos last logged as
    read short, and as read by PyAV."""
    latest = {record["video_id"]: record for record in cache_mod.logged_lines(final)}
    failures = [{"video_id": r.video_id, "path": r.path, "reason": r.reason} for r in manifest.rejected]
    for index in np.flatnonzero(status == FAILED):
        vid = manifest.videos[index].video_id
        failures.append(latest.get(vid, {"video_id": vid, "path": manifest.videos[index].path, "reason": "failed (reason not logged)"}))
    write_text_alone(_failures_file(final), "".join(json.dumps(f) + "\n" for f in failures))
    finished = {manifest.videos[i].video_id for i in np.flatnonzero(status == DONE)}
    short = [{k: r[k] for k in ("video_id", "path", "frames", "listed")} for r in latest.values() if "listed" in r and r["video_id"] in finished]
    pyav = [{k: r[k] for k in ("video_id", "path", "pyav")} for r in latest.values() if "pyav" in r and r["video_id"] in finished]
    return failures, short, pyav


def build_light(config: FeaturesConfig) -> tuple[FrameEncoder, dict[str, Any]]:
    """The light backbone of a features config (features only) and its data config."""
    model = create_model(config.light, num_classes=0, seed=config.seed)
    return FrameEncoder(model), data_config(model, config.light)


def build_recognizer(config: FeaturesConfig, classes: tuple[str, ...]) -> tuple[FrameEncoder, dict[str, Any]]:
    """The recognizer of a features config, with its C-class head, and its data config."""
    model = create_model(config.recognizer, num_classes=len(classes), seed=config.seed + 1, classes=classes)
    return FrameEncoder(model), data_config(model, config.recognizer)


def check_weights(config: FeaturesConfig, classes: tuple[str, ...]) -> None:
    """Each model's weights taken as a run takes them, for ``--dry-run``: a checkpoint loaded
    into its model, built on the CPU (one that does not fit is refused), ImageNet weights looked
    for where the hub is unreachable (where it is reachable, not fetched)."""
    for role, build in (("light", lambda: build_light(config)), ("recognizer", lambda: build_recognizer(config, classes))):
        weights = getattr(config, role).weights
        if weights == WEIGHTS_IMAGENET:
            imagenet_overlay(getattr(config, role))
        elif weights != WEIGHTS_NONE:
            build()


def checkpoint_files(config: FeaturesConfig) -> dict[str, str]:
    """The absolute path of each model's checkpoint file (none for ImageNet or random weights),
    recorded in a cache beside its config, whose paths are as given: relative to the folder the
    features stage ran in."""
    return {role: str(Path(spec.weights).resolve()) for role in ROLES if (spec := getattr(config, role)).weights not in (WEIGHTS_IMAGENET, WEIGHTS_NONE)}


def located_checkpoints(config: FeaturesConfig, recorded: dict[str, str], folders: tuple[Path, ...] = ()) -> FeaturesConfig:
    """``config`` with each checkpoint not found where its path points from here (a relative path
    and a later stage run from another folder) taken from where the features stage found it
    (``recorded``, :func:`checkpoint_files`), where it is still there, else from the cache's
    ``folders`` (:func:`~pipeline.shared_caches.cache_folders`), moved since, where it was made in it
    (:func:`~pipeline.cache.found_beside`: fine-tuning's ``finetune/<run>/model.pth``, the demo's
    ``recognizer.pth``); its bytes are checked against the cache's identity either way."""
    for role, path in recorded.items():
        spec = getattr(config, role)
        if not Path(spec.weights).is_file():
            found = next((f for f in (cache_mod.found_beside(Path(path), folder) for folder in folders) if f.is_file()), Path(path))
            if found.is_file():
                config = replace(config, **{role: replace(spec, weights=str(found))})
    return config


def cached_model(attrs: dict[str, Any], role: str, folders: tuple[Path, ...] = ()) -> tuple[FrameEncoder, Any]:
    """The ``light`` or ``recognizer`` model exactly as the features stage ran it for the cache
    with these attributes — same weights (refused if the checkpoint changed since), same
    preprocessing — and its frame transform; ``folders``, the cache's (:func:`~pipeline.shared_caches.cache_folders`),
    where a checkpoint made in it is looked for once the folder moved (:func:`located_checkpoints`)."""
    config = located_checkpoints(FeaturesConfig.from_dict(attrs["config"]), attrs.get("checkpoint_files", {}), folders)
    spec = getattr(config, role)
    built = attrs["identity"]["models"][role]
    if from_checkpoint(built) and not Path(spec.weights).is_file():
        back = "put the file back (a copy of the same bytes does)" + (f", or into {folders[0]} under its name" if folders else "")
        where = f": {back}" if Path(spec.weights).is_absolute() else f", a path relative to the folder `nsnet features` ran in (this process runs in {Path.cwd()}): run from there, or {back}"
        raise CacheError(f"{spec.weights}: the {role} checkpoint the feature cache was built with is not found{where}")
    if weights_identity(spec) != built["weights"]:
        raise CacheError(f"{spec.weights}: the {role} weights changed since the feature cache was built; rebuild the cache with `nsnet features`")
    taken = checkpoint_identity(spec)
    changed = [what for key, what in CHECKPOINT_TAKEN.items() if taken.get(key) != built.get(key)]
    if changed:
        raise CacheError(f"{spec.weights}: the feature cache took the {role} checkpoint's {' and '.join(changed)} otherwise than it is taken now (its EMA weights and its recorded mean, std and resize since 2026-12-05); rebuild the cache with `nsnet features`")
    encoder, _ = build_light(config) if role == "light" else build_recognizer(config, tuple(attrs["manifest"]["classes"]))
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs["data_configs"][role].items()}
    return encoder, frame_transform(stored)


def cached_runner(attrs: dict[str, Any], role: str, features: Path, device: torch.device, backend: str, export_dir: Path) -> tuple[Runner, Any]:
    """:func:`cached_model` of the cache at ``features``, ready for inference with ``backend``
    (ONNX exports in ``export_dir``)."""
    encoder, transform = cached_model(attrs, role, cache_folders(features))
    return make_runner(encoder, tuple(attrs["data_configs"][role]["input_size"]), device, backend, export_dir), transform


def build_encoders(config: FeaturesConfig, manifest: Manifest):
    light, light_cfg = build_light(config)
    rec, rec_cfg = build_recognizer(config, manifest.classes)
    return light, rec, light_cfg, rec_cfg


def build_runners(light: FrameEncoder, rec: FrameEncoder, light_cfg: dict[str, Any], rec_cfg: dict[str, Any], device: torch.device, backend: str, export_dir: Path) -> tuple[Runner, Runner]:
    """Both backbones ready for inference on ``device`` with ``backend``, for frames of their
    data configs' input sizes (ONNX exports kept in ``export_dir``)."""
    return (make_runner(light, light_cfg["input_size"], device, backend, export_dir), make_runner(rec, rec_cfg["input_size"], device, backend, export_dir))


def output_dims(encoder: FrameEncoder, cfg: dict[str, Any]) -> tuple[int, int]:
    """(feature size, number of logits) of an encoder, read off one dummy frame."""
    with torch.inference_mode():
        feats, logits = encoder(torch.zeros((1,) + tuple(cfg["input_size"])))
    return int(feats.shape[-1]), int(logits.shape[-1]) if logits is not None else 0


def make_layout(light: FrameEncoder, rec: FrameEncoder, light_cfg: dict[str, Any], rec_cfg: dict[str, Any], num_videos: int, num_frames: int, shard_videos: int | None = None, offsets: int = 1) -> Layout:
    """The cache layout, with feature sizes read off one dummy frame through each model."""
    light_dim, _ = output_dims(light, light_cfg)
    rec_dim, num_classes = output_dims(rec, rec_cfg)
    return Layout(num_videos, num_frames, light_dim, rec_dim, num_classes, shard_videos, offsets)


def run_features(dataset: str, data_root: Path | None, config: FeaturesConfig, opts: RunOptions, cache_path: Path | None = None, files: AnnotationFiles = AnnotationFiles()) -> FeaturesSummary:
    """Compute (or complete) the feature cache of ``dataset`` for ``config``; idempotent."""
    started = time.perf_counter()
    with joined_worker(opts.shard, opts.device) as worker:
        root, manifest = from_leader(lambda: load_manifest(dataset, data_root, files), worker)  # one manifest for every rank
        return manifest_features(dataset, root, manifest, config, opts, worker, cache_path, started)


def manifest_features(dataset: str, root: Path, manifest: Manifest, config: FeaturesConfig, opts: RunOptions, worker: Worker, cache_path: Path | None = None, started: float | None = None) -> FeaturesSummary:
    """:func:`run_features` on a manifest already read (``bench-features`` takes a part of one),
    as ``worker``'s share."""
    started = time.perf_counter() if started is None else started
    if not manifest.videos:
        raise CacheError(f"{root}: the {dataset} manifest has no usable videos")
    final, fp, identity = resolve_cache_path(dataset, manifest, config, opts, cache_path)
    staging = cache_mod.staging_path(final)
    if opts.verify and not (final.exists() or staging.exists()):
        made = sorted(p.name for p in final.parent.glob("features-*") if STORE_NAME.match(p.name)) if final.parent.is_dir() else []
        raise CacheError(f"{final}: no cache made with these options to verify (--verify repairs the cache the same command made, and would compute this one whole)"
                         + (f"; the dataset's caches: {first_few(made, 3)} (`nsnet outputs` says how each was made)" if made else ""))
    if (existing := _existing_store(final, staging)) is not None:  # every rank: the store's fingerprint, before anything of it is read
        with FeatureCache(existing) as cache:
            cache_mod.check_fingerprint(existing, cache.attrs, fp)
            if worker.is_leader:
                _warn_fixed_at_creation(existing, cache.attrs, opts)
    sources = SourceWatch(root, manifest, worker, opts.progress)
    finished, damaged = _finished_hdf5(final, staging), 0
    if finished:
        found = cache_mod.damaged_blocks(final, opts.progress and worker.is_leader, worker.owns) if opts.verify else []
        if not found:  # a damaged status chunk is not read
            with FeatureCache(final) as done_cache:
                plan = sources.plan(done_cache, opts.retry_failed)
                status = np.asarray(done_cache["status"][:])
        finished = not any(gathered(bool(found) or bool(plan.todo), worker))  # the ranks go on together: those without videos to compute wait for the others
        if finished:
            sources.record_looks(final)
        else:  # videos to compute again: in the staging store (the first rank copies it), exported again once finished
            damaged = cache_mod.reopen_hdf5(final, staging)
    if finished:
        summary = _summarise(final, manifest, status, computed=0, failed_now=0, skipped=plan.skipped, started=started)
    else:
        summary = _extract(root, manifest, config, opts, worker, final, staging, fp, identity, started, sources, verify=opts.verify and not damaged)
        summary.damaged += damaged
    summary.verified = opts.verify
    summary.unchecked = opts.verify and not cache_mod.chunks_checked(Path(summary.cache))
    summary = _of_every_rank(summary, worker)
    summary.leader = worker.is_leader
    summary.environment = environment(worker.device)
    summary.checkpoints = {role: taken for role, model in identity["models"].items() if (taken := {k: model[k] for k in CHECKPOINT_TAKEN if k in model})}
    return summary


# What each torchrun rank counts of the run's work in its share, summed for the summary.
RANK_COUNTS = ("computed", "skipped", "changed", "misread", "damaged", "copied", "failed_now", "frames")


def _of_every_rank(summary: FeaturesSummary, worker: Worker) -> FeaturesSummary:
    """The summary with the run's work counted over every torchrun rank's share (each counts its
    own), the loop's time the longest rank's (a collective: every rank calls it)."""
    if worker.world_size == 1:
        return summary
    parts = gathered({**{name: getattr(summary, name) for name in RANK_COUNTS}, "compute_seconds": summary.compute_seconds, "copied_from": summary.copied_from}, worker)
    counts = {name: sum(part[name] for part in parts) for name in RANK_COUNTS}
    return replace(summary, **counts, compute_seconds=max(part["compute_seconds"] for part in parts), copied_from=sorted({name for part in parts for name in part["copied_from"]}))


@dataclass(frozen=True)
class _Plan:
    todo: list[tuple[int, list[int]]]  # (block, member videos) this worker computes
    videos: int  # videos in those blocks that need computing
    skipped: int  # videos of this worker's share already finished
    changed: np.ndarray  # [N] bool: videos done or failed whose sources changed since, computed again
    misread: np.ndarray  # [N] bool: videos done or failed that decord misread (SourceWatch.misread), computed again

    @property
    def again(self) -> np.ndarray:
        """[N] bool: the finished videos computed again."""
        return self.changed | self.misread


class SourceWatch:
    """The sources of a worker's share of the videos, looked at (:func:`source_size`) once a
    run, the first time a store's recorded sizes ask for them, and the files of its finished
    videos read under older decoder rules, looked into (:meth:`misread`) once a run."""

    def __init__(self, root: Path, manifest: Manifest, worker: Worker, progress: bool = False):
        self.root, self.manifest, self.worker, self.progress = root, manifest, worker, progress
        self.now = np.full(len(manifest.videos), NO_SOURCE, dtype=np.int64)
        self.seen = np.zeros(len(manifest.videos), dtype=bool)
        self.misreads: dict[int, str | None] = {}  # video -> why decord misread it (None: it did not)
        self.recorded: set[int] = set()  # videos whose look is recorded in the store (record_looks)

    def changed(self, recorded: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
        """Which videos of this worker's share changed since the store ``recorded`` their sizes
        (:func:`changed_sources`; those of the other shares are not looked at)."""
        self.sizes(np.flatnonzero(self._share(len(recorded), attrs) & (recorded != NOT_RECORDED)))
        return changed_sources(recorded, self.now)

    def _share(self, num_videos: int, attrs: dict[str, Any]) -> np.ndarray:
        """[N] bool: the videos of a store's shards that this worker owns."""
        mine = np.zeros(num_videos, dtype=bool)
        for members in _my_shards(num_videos, attrs, self.worker):
            mine[members] = True
        return mine

    def sizes(self, videos: np.ndarray) -> np.ndarray:
        """The sizes of the sources of ``videos`` (indices) now, each looked at once a run (in
        threads: :func:`~pipeline.video.looked_at`)."""
        look = videos[~self.seen[videos]]
        if len(look):
            root = str(self.root)
            self.now[look] = looked_at(source_size, [os.path.join(root, self.manifest.videos[i].path) for i in look])
            self.seen[look] = True
        return self.now[videos]

    def misread(self, store: FeatureCache | ZarrWriter, status: np.ndarray, changed: np.ndarray) -> np.ndarray:
        """[N] bool: the finished videos of this worker's share (done, or failed: decord's
        misreading failed some, an edit-list cut's count among them), read under older decoder
        rules than :data:`~pipeline.decoders.DECODER_RULES` (the store's ``decoder_rules``: none
        in a store made before the array), whose files decord misread then
        (:func:`misread_before`), to compute again. Those of files on disk not ``changed`` are
        looked into, those of folders of frames taken as read right (never decord's); missing
        files are left for another run."""
        rules = np.asarray(store.arrays["decoder_rules"][:]) if "decoder_rules" in store.arrays else np.zeros(len(status), dtype=np.int8)
        older = np.flatnonzero(self._share(len(status), store.attrs) & (status != PENDING) & (np.abs(rules) < DECODER_RULES) & ~changed)
        paths = {int(i): os.path.join(self.root, self.manifest.videos[i].path) for i in older if i not in self.misreads}
        files = [i for i, path in paths.items() if os.path.isfile(path)]
        self.misreads.update({i: None for i, path in paths.items() if os.path.isdir(path)})
        self.misreads.update(zip(files, looked_into([paths[i] for i in files], misread_before, self.progress and self.worker.is_leader)))
        misread = np.zeros(len(status), dtype=bool)
        misread[[i for i in older if self.misreads.get(int(i))]] = True
        return misread

    def record_looks(self, store: Path) -> None:
        """Record in ``store`` the videos looked into and found read right, not recorded yet
        (:func:`~pipeline.cache.record_looked`)."""
        right = [i for i, why in self.misreads.items() if why is None and i not in self.recorded]
        cache_mod.record_looked(store, np.asarray(right, dtype=np.int64), DECODER_RULES)
        self.recorded.update(right)

    def plan(self, store: FeatureCache | ZarrWriter, retry_failed: bool) -> _Plan:
        """The plan of this worker for ``store`` as it is now."""
        status, recorded = np.asarray(store.arrays["status"][:]), _recorded_sizes(store)
        changed = self.changed(recorded, store.attrs)
        return _plan(status, store.attrs, self.worker, retry_failed, changed, self.misread(store, status, changed))


def _my_shards(num_videos: int, attrs: dict[str, Any], worker: Worker) -> list[list[int]]:
    """The videos of each shard of a store that ``worker`` owns."""
    return [m for s, m in enumerate(make_blocks(num_videos, shard_size(attrs))) if worker.owns(s)]


def _warn_fixed_at_creation(store: Path, attrs: dict[str, Any], opts: RunOptions) -> None:
    """A RuntimeWarning where ``--videos-per-batch`` or ``--videos-per-shard`` asks an existing
    cache for other sizes than it was made with: fixed at its creation, they change nothing."""
    asked, made = opts.cache_layout(attrs), store_sizes(attrs)
    given = {"videos_per_batch": opts.videos_per_batch, "videos_per_shard": opts.videos_per_shard}
    ignored = [f"--{name.replace('_', '-')} {given[name]}" for name in made if given[name] is not None and asked[name] != made[name]]
    if ignored:
        warnings.warn(f"{store}: made with {made['videos_per_batch']} videos a model batch and {made['videos_per_shard']} a shard, fixed at its creation: "
                      f"{' and '.join(ignored)} change{'s' if len(ignored) == 1 else ''} nothing (a cache of other sizes: another --cache, or this one deleted)", RuntimeWarning, stacklevel=2)


def _finished_hdf5(final: Path, staging: Path) -> bool:
    """Whether the cache is an HDF5 file written whole (its staging store gone after the export)."""
    return final != staging and final.exists() and not staging.exists()


def _new_cache_sizes(cache: Path, num_videos: int, opts: RunOptions, num_shares: int, warn: bool) -> dict[str, int]:
    """The batch and shard sizes of a cache made now by ``num_shares`` writers (``--shard`` jobs
    times torchrun ranks): those given, else 8 videos a batch and 256 a shard, or fewer a shard
    where 256 would fall unevenly to the writers (:func:`~pipeline.distributed.even_shard_size`:
    ranks with fewer shards wait for the busiest). With ``warn``, a shard size given that falls
    so is said, with the largest that evens the shares."""
    sizes = opts.cache_layout()
    shard, batch = sizes["videos_per_shard"], sizes["videos_per_batch"]
    if opts.videos_per_shard is None:
        return {**sizes, "videos_per_shard": even_shard_size(num_videos, shard, batch, num_shares)}
    if warn and not shares_even(num_videos, shard, num_shares):
        busiest, even = busiest_share(num_videos, shard, num_shares), num_videos / num_shares
        better = evener_shard_size(num_videos, shard, batch, num_shares, EVEN_SHARES)
        warnings.warn(f"{cache}: {-(-num_videos // shard)} shards of {shard} videos among {num_shares} writers (--shard jobs times torchrun ranks): the busiest writes {busiest} videos where an even split is {even:.0f}, "
                      f"so the run takes about {busiest / even:.1f} times as long as an even one"
                      + (f"; with --videos-per-shard {better} the busiest would write {busiest_share(num_videos, better, num_shares)}, and left out a size that evens them is taken (fixed when a cache is made: give it to the run that makes it)" if better else ""), RuntimeWarning, stacklevel=2)
    return sizes


def _existing_store(final: Path, staging: Path) -> Path | None:
    """The cache's store there is: its HDF5 file written whole, else its staging store (None: neither)."""
    return final if _finished_hdf5(final, staging) else staging if (staging / "zarr.json").exists() else None


def _recorded_sizes(store: FeatureCache | ZarrWriter) -> np.ndarray:
    """The source sizes a store recorded (none recorded, in a store made before it recorded them)."""
    if "source_sizes" in store.arrays:
        return np.asarray(store.arrays["source_sizes"][:])
    return np.full(store.arrays["status"].shape[0], NOT_RECORDED, dtype=np.int64)


def _plan(status: np.ndarray, attrs: dict[str, Any], worker: Worker, retry_failed: bool, changed: np.ndarray, misread: np.ndarray) -> _Plan:
    """The blocks this worker computes, shard by shard of those it owns: a shard never written,
    whole, in the fixed blocks of consecutive videos (so a resumed run computes the batches an
    uninterrupted one would); a shard written before, its videos to compute alone (failures
    retried, changed files, misread ones, videos a sibling cache did not have), in blocks of as
    many, its other videos' rows kept (:class:`ShardAssembler`)."""
    block_size = int(attrs["videos_per_batch"])
    redo = _to_compute(status, retry_failed, changed | misread)
    mine = _my_shards(len(status), attrs, worker)
    blocks = []
    for members in mine:
        todo = members if (status[members] == PENDING).all() else [i for i in members if redo[i]]
        blocks += [(todo[i] // block_size, todo[i : i + block_size]) for i in range(0, len(todo), block_size)]
    videos = sum(int(redo[m].sum()) for m in mine)
    return _Plan(blocks, videos, sum(len(m) for m in mine) - videos, changed & (status != PENDING), misread & (status != PENDING))


def _to_compute(status: np.ndarray, retry_failed: bool, again: np.ndarray) -> np.ndarray:
    """Which videos a run computes: the pending ones, the finished ones to compute ``again``
    (their sources changed since, or decord misread them), and the failed ones on ``--retry-failed``."""
    return np.isin(status, (PENDING, FAILED) if retry_failed else (PENDING,)) | again


def bytes_to_write(status: np.ndarray, attrs: dict[str, Any], layout: Layout, retry_failed: bool, hdf5: bool, again: np.ndarray) -> int:
    """What finishing a store writes, before compression: every shard that holds a video to
    compute (a shard is written whole) and, for an HDF5 cache, the export's copy of the store,
    made while the store is still there."""
    redo = _to_compute(status, retry_failed, again)
    videos = sum(len(m) for m in make_blocks(len(status), shard_size(attrs)) if redo[m].any())
    return (videos + (len(status) if hdf5 else 0)) * layout.video_bytes()


def _shards_lock(staging: Path, worker: Worker) -> AbstractContextManager[None]:
    """What a writer of ``worker``'s shards of the store holds while it writes them; refused
    beside a writer dividing the store into another count of shares at work now (``--shard``
    jobs of another count, or a run of the whole store beside them: before 2026-12-07, both
    computed the shards they shared; :func:`~pipeline.cache.share_writer_lock`)."""
    locks = staging / "locks"
    return cache_mod.share_writer_lock(locks / f"shard-{worker.shard}-of-{worker.num_shards}.lock", worker.num_shards, locks / "dividing.lock", _share_count, "wait for it or pick another shard")


def _share_count(name: str) -> int | None:
    """The count of shares a lock in a store's ``locks`` folder is one of (None: no share's)."""
    named = re.fullmatch(r"shard-\d+-of-(\d+)\.lock", name)
    return int(named[1]) if named else None


def _repaired(staging: Path, fp: str, worker: Worker, progress: bool) -> int:
    """``--verify``: the worker's shards of an existing store read whole against their
    checksums, and those holding a damaged chunk made pending, to compute again with the
    store's other pending videos (:func:`~pipeline.cache.reset_damaged`); returns their videos."""
    if not (staging / "zarr.json").exists():
        return 0
    with FeatureCache(staging) as existing:
        cache_mod.check_fingerprint(staging, existing.attrs, fp)
    with _shards_lock(staging, worker):
        return cache_mod.reset_damaged(staging, cache_mod.damaged_blocks(staging, progress and worker.is_leader, worker.owns))


def _existing_plan(staging: Path, fp: str, sources: SourceWatch, opts: RunOptions) -> _Plan | None:
    """The plan for an existing store, read without building any model (None: no store yet)."""
    if not (staging / "zarr.json").exists():
        return None
    existing = FeatureCache(staging)
    cache_mod.check_fingerprint(staging, existing.attrs, fp)
    return sources.plan(existing, opts.retry_failed)


def _extract(root: Path, manifest: Manifest, config: FeaturesConfig, opts: RunOptions, worker: Worker, final: Path, staging: Path, fp: str, identity: dict[str, Any], started: float, sources: SourceWatch, verify: bool) -> FeaturesSummary:
    damaged = _repaired(staging, fp, worker, opts.progress) if verify else 0
    plan = _existing_plan(staging, fp, sources, opts)
    if plan is not None:
        sources.record_looks(staging)
    computed = failed_now = frames = copied = 0
    copied_from: list[str] = []
    loop_seconds = 0.0
    if plan is None or plan.todo:
        light, rec, light_cfg, rec_cfg = build_encoders(config, manifest)
        sizes = _new_cache_sizes(final, len(manifest.videos), opts, worker.num_shards, warn=plan is None and worker.is_leader)  # an existing store keeps its own
        layout = make_layout(light, rec, light_cfg, rec_cfg, len(manifest.videos), config.num_frames, sizes["videos_per_shard"], config.offsets)
        attrs = {
            "identity": identity,
            "config": config.to_dict(),
            "manifest": json.loads(manifest.to_json()),
            "data_configs": {"light": _jsonable(light_cfg), "recognizer": _jsonable(rec_cfg)},
            "checkpoint_files": checkpoint_files(config),
            "data_root": str(Path(root).resolve()),
            **sizes,
        }
        log_dir = cache_mod.failures_dir(final)
        cache_mod.require_writable(staging, log_dir)  # another member's, begun under a umask of 022
        if worker.is_leader:
            warn_if_kept_from_the_group(staging.parent)
        writer = ZarrWriter(staging, fp, attrs, layout.arrays(), layout.shard_videos)
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"shard-{worker.shard}-of-{worker.num_shards}.jsonl"
        with _shards_lock(staging, worker):
            copied, copied_from = _copy_from_siblings(final, staging, identity, manifest, writer, sources, config.offsets, log, opts.progress and worker.is_leader)
            # read under the lock, after the copies: the block and shard sizes are those fixed at creation
            status = writer.status()
            plan = sources.plan(writer, opts.retry_failed)
            sources.record_looks(staging)  # of the videos copied
            if worker.is_leader:
                needed = bytes_to_write(status, writer.attrs, layout, opts.retry_failed, final != staging, plan.again)
                cache_mod.warn_if_short_of_space(staging, needed, "finishing this cache writes" + (" (its HDF5 export included)" if final != staging else ""))
            if plan.todo:  # all but what was copied
                transforms = frame_transforms(light_cfg, rec_cfg)
                sizing = BlockDecoder(root, manifest.videos, plan.todo, config.num_frames, *transforms, config.offsets)
                workers = min(decoding_workers(opts.workers, worker.device), len(plan.todo))
                workers = workers_within_shared_memory(workers, sizing.largest_block_bytes(light_cfg["input_size"], rec_cfg["input_size"]), asked=opts.workers is not None)
                done = _Done((status != DONE) | plan.again, status != PENDING, log, manifest, tqdm(total=sum(len(m) for _, m in plan.todo), unit="video", desc=f"features {manifest.name}", disable=not opts.progress or not worker.is_leader))
                with WatchedDecoding(workers, opts.decode_timeout, str(staging), lambda index: str(root / manifest.videos[index].path)) as decoding:

                    def blocks_from_the_next() -> Iterator[DecodedBlock]:  # after a failure, from the block it stopped
                        decoder = BlockDecoder(root, manifest.videos, plan.todo[done.blocks :], config.num_frames, *transforms, config.offsets, watch=decoding.watch, skip=decoding.skip)
                        return iter(decoding_loader(decoder, workers, pin_memory=worker.device.type == "cuda"))

                    blocks = decoding.items(blocks_from_the_next, lambda block: bool(block.videos))  # the decoding workers start and decode ahead while the models load
                    infer = BlockInference(*build_runners(light, rec, light_cfg, rec_cfg, worker.device, opts.backend, opts.export_dir), worker.device)
                    done.tick = time.perf_counter()  # the compute's time starts with the models loaded
                    _write_blocks(blocks, infer, writer, layout.rows(), _computed(plan, len(status)), done, _order_watch(manifest, identity["models"]["recognizer"]))
                done.bar.close()
                computed, failed_now, frames, loop_seconds = len(done.computed), len(done.failed), done.frames, time.perf_counter() - done.tick
    barrier(worker)
    status = _finish(final, staging)
    summary = _summarise(final, manifest, status, computed, failed_now, plan.skipped - copied, started)
    summary.frames, summary.compute_seconds, summary.changed, summary.misread, summary.damaged = frames, loop_seconds, int(plan.changed.sum()), int(plan.misread.sum()), damaged
    summary.copied, summary.copied_from = copied, copied_from
    return summary


@contextmanager
def _sibling_rows(final: Path, staging: Path, identity: dict[str, Any], manifest: Manifest, status: np.ndarray, attrs: dict[str, Any], sources: SourceWatch, offsets: int) -> Iterator[tuple[list[Sibling], Reusable, list[list[int]]]]:
    """The sibling caches of this one (:mod:`pipeline.sibling_caches`, open while in the block),
    which videos of the worker's shards not written yet they give, and those shards."""
    unwritten = [m for m in _my_shards(len(status), attrs, sources.worker) if (status[m] == PENDING).all()]
    siblings = find_siblings(final.parent, identity, manifest, {final, staging}) if unwritten else []
    try:
        candidates = held(siblings, manifest, np.concatenate(unwritten)) if siblings else np.zeros(0, dtype=np.int64)
        yield siblings, reusable_rows(siblings, manifest, candidates, sources.sizes(candidates), offsets), unwritten
    finally:
        for sibling in siblings:
            sibling.cache.close()


def _copy_from_siblings(final: Path, staging: Path, identity: dict[str, Any], manifest: Manifest, writer: ZarrWriter, sources: SourceWatch, offsets: int, log: Path, progress: bool) -> tuple[int, list[str]]:
    """Write the worker's shards not written yet that hold videos a sibling cache holds, those
    videos' rows copied, with their logged failures and short reads, and the others pending
    (computed next, alone). Returns the videos copied and the siblings they came from."""
    with _sibling_rows(final, staging, identity, manifest, writer.status(), writer.attrs, sources, offsets) as (siblings, reusable, unwritten):
        copying = [m for m in unwritten if any(i in reusable for i in m)]
        row_layout = {name: (array.shape[1:], str(array.dtype)) for name, array in writer.arrays.items() if name != "status"}
        with cache_mod.clear_out_of_space(writer.path, cache_mod.RESUMABLE), tqdm(total=sum(map(len, copying)), unit="video", desc="copied from sibling caches", disable=not progress or not copying) as bar:
            for members in copying:
                rows, shard_status = copied_rows(siblings, reusable, members, row_layout)
                writer.write_block(members[0], rows, shard_status)
                logged = ((i, siblings[reusable.sibling[i]].logged.get(manifest.videos[i].path)) for i in members if i in reusable)
                _log_lines(log, [{**record, "video_id": manifest.videos[i].video_id} for i, record in logged if record is not None])
                bar.update(len(members))
        return _copied(siblings, reusable)


def _copied(siblings: list[Sibling], reusable: Reusable) -> tuple[int, list[str]]:
    """How many videos the siblings give, and the names of those that give any."""
    taken = reusable.sibling[reusable.sibling >= 0]
    return len(taken), [siblings[s].path.name for s in np.unique(taken)]


@dataclass
class FeaturesPlan:
    """What a features run would do in its share of the videos (``--dry-run``): nothing is
    built or written to find it out."""

    cache: str
    exists: bool  # whether the store is there yet
    share: int  # videos of this job's share
    finished: int  # kept as they are
    to_compute: int  # decoded and run through the models
    changed: int  # of them, done or failed before, whose files changed since
    misread: int  # of them, done or failed before, that decord misread
    retried: int  # of them, failed before and taken again (--retry-failed)
    copied: int = 0  # copied from sibling caches instead
    copied_from: list[str] = field(default_factory=list)
    missing: int = 0  # of those to compute, not on disk: they would fail
    empty: int = 0  # of those to compute, an empty file or a folder without frames: they would fail
    videos: int = 0  # of the cache
    failed: int = 0  # of the cache, failed (and not taken again)
    sizes: dict[str, int] = field(default_factory=dict)  # its videos a model batch and a shard (a new one's as it would be made)

    def table(self, ending: str = "(--dry-run: nothing written, no model run)") -> str:
        fresh = self.to_compute - self.changed - self.misread - self.retried
        rows = [
            ("cache", self.cache + ("" if self.exists else "  (not made yet)")),
            ("shards", f"{-(-self.videos // self.sizes['videos_per_shard'])} of {self.sizes['videos_per_shard']} videos, {self.sizes['videos_per_batch']} a model batch"),
            ("videos in this share", f"{self.share}"),
            ("finished, kept", f"{self.finished}"),
            ("to compute", f"{self.to_compute} ({fresh} never computed, {self.changed} whose files changed since, " + (f"{self.misread} decord misread in the cache, " if self.misread else "") + f"{self.retried} failures retried)"),
            ("copied from sibling caches", f"{self.copied}" + (f" ({first_few(self.copied_from, 3)})" if self.copied else "")),
        ]
        if self.missing or self.empty:
            rows.append(("would fail", f"{self.missing + self.empty} of those to compute: {self.missing} not on disk, {self.empty} empty (`nsnet data --missing FILE` lists the missing)"))
        return "\n".join(_aligned(rows)) + f"\n{ending}"


def plan_features(dataset: str, data_root: Path | None, config: FeaturesConfig, opts: RunOptions, cache_path: Path | None = None, files: AnnotationFiles = AnnotationFiles()) -> FeaturesPlan:
    """What :func:`run_features` would do now with these arguments, in the share ``opts.shard``
    (torchrun's ranks are not divided: a job's share whole), without running a model or
    writing anything: the videos it would compute (and why), keep, and copy from sibling caches;
    a model name timm does not know is refused as the run would refuse it, and where there are
    videos to compute, weights the run could not load (:func:`check_weights`)."""
    for spec in (config.light, config.recognizer):
        check_model_name(spec.name)
    root, manifest = load_manifest(dataset, data_root, files)
    final, fp, identity = resolve_cache_path(dataset, manifest, config, opts, cache_path)
    staging = cache_mod.staging_path(final)
    sources = SourceWatch(root, manifest, Worker(*opts.shard, 0, 1, torch.device("cpu")), opts.progress)
    store = _existing_store(final, staging)
    if store is None:
        status = np.full(len(manifest.videos), PENDING, dtype=np.int8)
        attrs = _new_cache_sizes(final, len(status), opts, sources.worker.num_shards, warn=True)
        plan = _plan(status, attrs, sources.worker, opts.retry_failed, *np.zeros((2, len(status)), dtype=bool))
    else:
        with FeatureCache(store) as cache:
            cache_mod.check_fingerprint(store, cache.attrs, fp)
            _warn_fixed_at_creation(store, cache.attrs, opts)
            status, attrs, plan = np.asarray(cache["status"][:]), cache.attrs, sources.plan(cache, opts.retry_failed)
    coming = _computed(plan, len(status))
    with _sibling_rows(final, staging, identity, manifest, status, attrs, sources, config.offsets) as (siblings, reusable, _):
        copied, copied_from = _copied(siblings, reusable)
        computing = np.array([i for i in np.flatnonzero(coming) if i not in reusable], dtype=np.int64)
    retried = int(((status == FAILED) & ~plan.again & coming).sum()) if opts.retry_failed else 0
    sizes = sources.sizes(computing)  # looked at as the run looks at them
    unreadable = {"missing": int((sizes == NO_SOURCE).sum()), "empty": int((sizes == 0).sum())}
    if plan.videos > copied:  # the run would build the models
        check_weights(config, manifest.classes)
    return FeaturesPlan(str(store or final), store is not None, plan.videos + plan.skipped, plan.skipped, plan.videos - copied, int(plan.changed.sum()), int(plan.misread.sum()), retried, copied, copied_from, **unreadable, videos=len(status), failed=int(((status == FAILED) & ~coming).sum()), sizes=store_sizes(attrs))


# The last line of what a run on a finished cache it cannot write says (plan_in_place).
IN_PLACE = "(the cache lies in a folder not written here, and has nothing to compute: read where it lies, nothing written there)"


def plan_in_place(dataset: str, data_root: Path | None, config: FeaturesConfig, opts: RunOptions, cache_path: Path | None = None, files: AnnotationFiles = AnnotationFiles()) -> FeaturesPlan | None:
    """Where the cache's folder (``--cache``'s, else ``<cache-dir>/<dataset>``) is there and
    cannot be written (a lab's shared cache, a read-only mount), what a run would do
    (:func:`plan_features`, with the videos the cache holds failed), where there is nothing to
    compute: a run would stop at its first lock (``Permission denied``); else a
    :class:`CacheError` saying what there is to compute and who can. None where the folder can
    be written or is not there yet (the run makes it)."""
    from pipeline.file_rights import can_write_in

    folder = cache_path.parent if cache_path is not None else opts.cache_dir / dataset
    if not folder.is_dir() or can_write_in(folder):
        return None
    plan = plan_features(dataset, data_root, config, opts, cache_path, files)
    if not plan.exists or plan.to_compute or plan.copied:
        work = f"{plan.to_compute + plan.copied} video(s) to compute or copy in this share" if plan.exists else "the cache is not made yet"
        raise CacheError(f"{plan.cache}: its folder cannot be written here, and {work} (`--dry-run` says which): its owner can run `nsnet features` on it; or make a cache of yours, with a --cache-dir of yours (and no --cache there)")
    return plan


@dataclass
class _Done:
    """What a features run did, by video."""

    fresh: np.ndarray  # [N] bool: videos not finished at the start, or finished and computed again
    finished_before: np.ndarray  # [N] bool: videos done or failed at the start (the log may hold a line of each)
    log: Path
    manifest: Manifest
    bar: Any  # tqdm
    computed: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    blocks: int = 0  # blocks of the plan taken in (a failed decoder's loader goes on after them)
    frames: int = 0
    tick: float = field(default_factory=time.perf_counter)

    def add(self, block: DecodedBlock) -> None:
        self.computed.update(v.index for v in block.videos if self.fresh[v.index])
        for video in block.videos:
            notes = {**({"frames": video.read_short[0], "listed": video.read_short[1]} if video.read_short else {}), **({"pyav": video.decord_passed_over} if video.decord_passed_over else {})}
            record = self.manifest.videos[video.index]
            if notes:  # one line a video: the latest line of each is read back (_collect_logged)
                _log_video(self.log, record.video_id, record.path, "read short" if video.read_short else "read by PyAV", **notes)
            elif self.finished_before[video.index]:  # a plain read, after the lines of an earlier one
                _log_video(self.log, record.video_id, record.path, "read")
        for failure in block.failures:
            record = self.manifest.videos[failure.index]
            _log_video(self.log, record.video_id, record.path, failure.reason)
            self.failed.add(failure.index)
        self.blocks += 1
        self.frames += block.num_frames
        self.bar.update(len(block.members))
        self.bar.set_postfix(frames_per_s=f"{self.frames / max(time.perf_counter() - self.tick, 1e-9):.1f}")


def _order_watch(manifest: Manifest, recognizer: dict[str, Any]) -> OrderWatch | None:
    """The class order of a recognizer checkpoint's outputs (``recognizer``: its model
    identity), checked on the first training frames computed (None for random or ImageNet
    weights, whose classifier has no order)."""
    if not from_checkpoint(recognizer):
        return None
    return OrderWatch(multi_hot([v.labels for v in manifest.videos], manifest.num_classes), np.array([v.split == "train" for v in manifest.videos]))


def _computed(plan: _Plan, num_videos: int) -> np.ndarray:
    """[N] bool: the videos of the plan's blocks."""
    coming = np.zeros(num_videos, dtype=bool)
    for _, members in plan.todo:
        coming[members] = True
    return coming


def _write_blocks(blocks: Iterator[DecodedBlock], infer: BlockInference, writer: ZarrWriter, row_layout: dict[str, tuple[tuple[int, ...], str]], coming: np.ndarray, done: _Done, order: OrderWatch | None) -> None:
    """Both models on every block, each shard written whole when its last block is in (with
    the kept rows of its videos not ``coming``). Stops (shards written kept) where the first
    training frames show the recognizer's classes in another order than the manifest's."""
    assembler = ShardAssembler(writer.arrays["status"].shape[0], shard_size(writer.attrs), row_layout, coming, writer.rows)
    with cache_mod.clear_out_of_space(writer.path, cache_mod.RESUMABLE), BackgroundWriter() as background:
        for block in blocks:
            rows, block_status = infer(block, row_layout)
            shard_rows = assembler.add(block.members, rows, block_status)
            if shard_rows is not None:
                background.submit(writer.write_block, *shard_rows)
            done.add(block)
            computed = [video.index for video in block.videos]
            at = block.positions()
            found = None if order is None else order.add(computed, rows["rec_logits"][[at[index] for index in computed]])
            if found is not None and found.misordered:
                written = write_recognizer_classes(found, done.manifest.classes, writer.path)
                raise CacheError(misordered_message(str(writer.path), found, done.manifest.classes, written))


def _finish(final: Path, staging: Path) -> np.ndarray:
    """The status of the whole cache; the writer that finds it complete writes the HDF5 file.
    Runs under the store's creation lock, so ranks and jobs finishing together take turns."""
    with cache_mod.file_lock(cache_mod.creation_lock_path(final)):
        if final != staging and not staging.exists():  # exported by another writer
            with FeatureCache(final) as done:
                return np.asarray(done["status"][:])
        status = np.asarray(FeatureCache(staging)["status"][:])
        if final != staging and not (status == PENDING).any():
            cache_mod.export_hdf5(staging, final)
        return status


def _summarise(final: Path, manifest: Manifest, status: np.ndarray, computed: int, failed_now: int, skipped: int, started: float) -> FeaturesSummary:
    """Counts over the whole cache; the cache is ``final`` once finished, else its staging store."""
    path = final if final.exists() else cache_mod.staging_path(final)
    failures, short_reads, pyav_reads = _collect_logged(final, manifest, status)
    return FeaturesSummary(
        cache=str(path),
        total=len(manifest.videos) + len(manifest.rejected),
        computed=computed,
        skipped=skipped,
        failed_now=failed_now,
        done=int(np.sum(status == DONE)),
        failed=int(np.sum(status == FAILED)) + len(manifest.rejected),
        pending=int(np.sum(status == PENDING)),
        cache_bytes=cache_mod.directory_size(path),
        seconds=time.perf_counter() - started,
        failures_file=str(_failures_file(final)),
        failures=failures,
        short_reads=short_reads,
        pyav_reads=pyav_reads,
    )


def write_summary(summary: FeaturesSummary) -> Path | None:
    """``summary`` as JSON beside the store it describes (:func:`~pipeline.cache.summary_path`),
    under the cache's creation lock, which the HDF5 export holds while it removes the staging
    store and the summary written of it: so that none is written of a staging store exported
    meanwhile by another job (None then: the exporting job writes the finished file's). A killed
    writer's partial goes first (:func:`~pipeline.cache.writing_alone`)."""
    store = Path(summary.cache)
    path = cache_mod.summary_path(store)
    with cache_mod.writing_alone(path, lock=cache_mod.creation_lock_path(cache_mod.final_path(store))):
        if not store.exists():
            return None
        cache_mod.write_text_atomic(path, json.dumps(vars(summary), indent=1))
    return path


def _jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
