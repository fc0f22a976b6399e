"""The recognizer over all frames of the evaluation videos, once: Table 1's baselines.

``nsnet evaluate`` (``--preset table1``, or by default) needs UNIFORM, RANDOM and TOP-K over all
frames of every evaluation video and DENSE over all of them (:mod:`pipeline.all_frames`). This
pass decodes each video a chunk of frames at a time in DataLoader workers, runs the recognizer
of the feature cache on every chunk and keeps only the four video scores, in a Zarr store beside
the cache (``<features>.allframes-<fingerprint>.zarr``), a row per evaluation video:

==============================  ======  =======  ==========================================
array                           shape   dtype    content
==============================  ======  =======  ==========================================
``uniform`` ``random``          [V, C]  float32  video scores (mean softmax of their frames)
``dense`` ``topk``              [V, C]  float32
``frames``                      [V]     int32    frames counted as all frames of the video
``status``                      [V]     int8     0 pending, 1 done, 2 failed
==============================  ======  =======  ==========================================

Rows are written a shard of videos at a time (:mod:`pipeline.row_store`), their ``status`` last, so a killed run keeps
every finished shard and resumes at the first unfinished one; a second writer on the same store
is refused. Failed videos are retried by the next run; the pass raises, after writing what it
finished, while any remain. Torchrun ranks and ``--shard`` jobs of ``nsnet evaluate`` fill the
store together, each its share of the shards (:func:`fill_all_frames`).
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ContextManager, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from pipeline import cache as cache_mod
from pipeline.all_frames import BASELINES, AllFrameSummary, all_frame_indices
from pipeline.backends import DEFAULT_EXPORT_DIR, Runner, backend_identity, resolve_backend
from pipeline.cache import CacheError, FeatureCache
from pipeline.config import DECODE_TIMEOUT_S, AllFramesConfig
from pipeline.datasets import Manifest, VideoRecord
from pipeline.decode_watch import DecodingWatch, WatchedDecoding
from pipeline.extract import ModelFrames, Transform, decoding_loader, model_frames, workers_within_shared_memory
from pipeline.distributed import WHOLE, Share
from pipeline.row_store import RowComputer, StoredRows, fill_rows, finished_rows, rows_digest
from pipeline.shared_caches import output_beside
from pipeline.video import FrameSource, FrameWindow, VideoReadError, open_record, shortened
from pipeline.wording import first_few
from stages.features import cached_runner

CHUNK_FRAMES = 64  # frames decoded and recognised at a time


@dataclass
class FrameChunk:
    row: int  # the video's row in the store
    frames: ModelFrames | None  # [m, 3, H, W] for the recognizer; None when the video failed
    length: int  # frames counted as all frames of the video
    error: str = ""
    start: int = 0  # where the chunk begins among them: 0 begins the video (again, after a short read)


class AllFrameChunks(IterableDataset):
    """The frames of each video in order, ``CHUNK_FRAMES`` at a time; the videos are dealt out
    to the DataLoader workers in turn. A video that cannot be read gives one chunk with its
    error (after any chunks it gave before failing). ``watch``: where a decoding worker notes
    the video (its row) it decodes a chunk of; ``skip``: rows failed with the given reason
    without decoding (a decoder hung or crashed on them); both are set by :func:`summaries`."""

    def __init__(self, root: Path, videos: list[tuple[int, VideoRecord]], transform: Transform, rate: float | None):
        self.root, self.videos, self.transform, self.rate = Path(root), videos, transform, rate
        self.watch: DecodingWatch | None = None
        self.skip: dict[int, str] = {}

    def __iter__(self) -> Iterator[FrameChunk]:
        info = get_worker_info()
        mine = self.videos if info is None else self.videos[info.id :: info.num_workers]
        for row, record in mine:
            if row in self.skip:
                yield FrameChunk(row, None, 0, f"{self.root / record.path}: {self.skip[row]}")
                continue
            try:
                with self._decoding(row):
                    source = open_record(self.root, record)
                yield from self._chunks(row, source)
            except VideoReadError as exc:
                yield FrameChunk(row, None, 0, str(exc))

    def _chunks(self, row: int, source: FrameSource | FrameWindow) -> Iterator[FrameChunk]:
        """The chunks of one video; where its decoding stops partway (:func:`shortened`), again
        from its first frame over the frames that decode."""
        while True:
            plan = all_frame_indices(source.num_frames, source.fps, self.rate)
            if not len(plan):
                raise VideoReadError(source.path, "no frames")
            try:
                for start in range(0, len(plan), CHUNK_FRAMES):
                    with self._decoding(row):  # a chunk at a time: the wait for the recognizer between chunks is not decoding
                        frames = source.read(plan[start : start + CHUNK_FRAMES])
                    yield FrameChunk(row, model_frames(frames, self.transform), len(plan), start=start)
                return
            except VideoReadError as exc:
                if not shortened(source, exc):
                    raise

    def _decoding(self, row: int) -> ContextManager[None]:
        return self.watch.decoding(row) if self.watch else nullcontext()


def summaries(chunks: AllFrameChunks, recognizer: Runner, device: torch.device, budget: int, seed: int, workers: int, decode_timeout: float = DECODE_TIMEOUT_S) -> Iterator[tuple[int, AllFrameSummary | str]]:
    """(row, finished summary) of every video of ``chunks``, or (row, error message), a video
    whose decoder hangs ``decode_timeout`` seconds on a chunk or dies failing with its reason;
    the recognizer's input is made on ``device``, where it runs."""
    workers = min(workers, len(chunks.videos))
    ended: set[int] = set()  # rows given, finished or failed
    open_: dict[int, AllFrameSummary] = {}

    def chunks_of_the_unended() -> Iterator[FrameChunk]:  # after a failure, a video begun is decoded again from its first frame
        open_.clear()
        unended = decoding.attached(chunks)
        unended.videos = [(row, record) for row, record in chunks.videos if row not in ended]
        return iter(decoding_loader(unended, workers))

    records = dict(chunks.videos)
    with WatchedDecoding(workers, decode_timeout, "the all-frames pass", lambda row: str(chunks.root / records[row].path)) as decoding:
        for chunk in decoding.items(chunks_of_the_unended, lambda chunk: chunk.frames is not None):
            if chunk.frames is None:
                open_.pop(chunk.row, None)
                ended.add(chunk.row)
                yield chunk.row, chunk.error
                continue
            if chunk.start == 0:  # a video begun, or begun again over fewer frames
                open_[chunk.row] = AllFrameSummary(chunk.length, budget, np.random.default_rng([seed, chunk.row]))
            summary = open_[chunk.row]
            _, logits = recognizer(chunk.frames.model_input(device))
            summary.update(logits.float().cpu().numpy())
            if summary.complete:
                ended.add(chunk.row)
                yield chunk.row, open_.pop(chunk.row)


@dataclass
class AllFrameScores:
    """The pass's results for the evaluation videos, in their order."""

    scores: dict[str, np.ndarray]  # baseline -> [V, C] video scores
    frames: np.ndarray  # [V] frames counted as all frames
    path: Path
    computed: int  # videos computed by this call


def store_for(features: Path, features_fp: str, videos: np.ndarray, cfg: AllFramesConfig, backend: str = "torch") -> tuple[Path, str]:
    """The store of a feature cache, evaluation videos, config and the recognizer's backend
    (resolved; named only when it is not torch, so stores made before there was a choice keep
    their fingerprints), and its fingerprint."""
    fp = cache_mod.fingerprint({"features": features_fp, "videos": rows_digest(videos), "all_frames": asdict(cfg), **backend_identity(backend)})
    return output_beside(features, f"{features.name}.allframes-{fp[:16]}.zarr", finished_rows), fp


def run_all_frames(features: Path, videos: np.ndarray, root: Path, cfg: AllFramesConfig, device: torch.device, workers: int = 2, progress: bool = True, backend: str = "torch", export_dir: Path = DEFAULT_EXPORT_DIR, decode_timeout: float = DECODE_TIMEOUT_S) -> AllFrameScores:
    """Table 1's baselines over all frames of the videos ``videos`` (rows of the feature
    cache's manifest), computed once and cached; resumes an interrupted pass. The recognizer
    runs with ``backend`` (:func:`pipeline.backends.resolve_backend`); a video whose decoder
    hangs ``decode_timeout`` seconds on a chunk of frames, or dies, fails (:mod:`pipeline.decode_watch`)."""
    stored = fill_all_frames(features, videos, root, cfg, device, workers, progress, backend, export_dir, decode_timeout)
    if stored.errors:
        listed = first_few([stored.errors[r] for r in sorted(stored.errors)], 5, sep="; ")
        raise CacheError(f"{stored.path}: {len(stored.errors)} evaluation video(s) could not be decoded for the all-frames baselines (finished ones are kept; a new run retries these): {listed}")
    scores = {name: stored.arrays[name].astype(np.float64) for name in BASELINES}
    return AllFrameScores(scores, stored.arrays["frames"], stored.path, stored.computed)


def fill_all_frames(features: Path, videos: np.ndarray, root: Path, cfg: AllFramesConfig, device: torch.device, workers: int = 2, progress: bool = True, backend: str = "torch", export_dir: Path = DEFAULT_EXPORT_DIR, decode_timeout: float = DECODE_TIMEOUT_S, share: Share = WHOLE) -> StoredRows:
    """The store of :func:`run_all_frames` with the rows of ``share`` (:mod:`pipeline.row_store`)
    computed; its failures are returned, not raised."""
    backend = resolve_backend(backend, device)
    features = Path(features)
    with FeatureCache(features) as cache:
        attrs, content = cache.attrs, cache.content_fingerprint
        counted = int(np.asarray(cache["num_frames"][:])[videos].sum())
    manifest = Manifest.from_json(json.dumps(attrs["manifest"]))
    path, fp = store_for(features, content, videos, cfg, backend)
    size = f"{counted:,} frames" if cfg.rate is None else f"{cfg.rate:g} a second of {counted:,} frames"  # the pass's size, shown as it starts
    n, c = len(videos), len(manifest.classes)
    arrays = {**{name: ((n, c), "float32") for name in BASELINES}, "frames": ((n,), "int32"), "status": ((n,), "int8")}

    def computer() -> RowComputer:  # the recognizer is loaded only where a video is to compute
        runner, transform = cached_runner(attrs, "recognizer", features, device, backend, export_dir)
        # a chunk of uint8 crops crosses from its decoder through shared memory
        fitting = workers_within_shared_memory(workers, CHUNK_FRAMES * math.prod(attrs["data_configs"]["recognizer"]["input_size"]), asked=False)

        def compute(rows: list[int]) -> Iterator[tuple[int, dict[str, np.ndarray] | str]]:
            todo = [(row, manifest.videos[videos[row]]) for row in rows]
            for row, result in summaries(AllFrameChunks(root, todo, transform, cfg.rate), runner, device, cfg.budget, cfg.seed, fitting, decode_timeout):
                yield row, result if isinstance(result, str) else {**result.scores(), "frames": result.length}

        return compute

    return fill_rows(path, fp, {"all_frames": asdict(cfg), "features": str(features), "video_ids": [manifest.videos[v].video_id for v in videos]}, arrays, computer, progress, f"recognizer on all frames ({size})", share)
