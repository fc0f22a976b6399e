"""NSNet end to end on videos: what ``nsnet predict`` runs and ``make bench`` times.

Per batch of videos: decode the T observation frames (pre-sampled as in the features stage)
and resize and crop them for the light model; run the light backbone, the trained heads and A.3's
fusion; decode again only the K chosen frames (seeking) for the recognizer, and run it on those
alone. Observation frames are decoded ahead in DataLoader workers; the chosen frames of one
batch are decoded in threads (decord and the torch transforms release the GIL) while the light
model runs on the next batch. The decoders hand over uint8 crops, and the models' float inputs
are made where they run (:class:`pipeline.extract.ModelFrames`).

The heads were trained on light features as the cache stores them (float16), so the features
computed here are rounded through float16 too: ``nsnet predict`` then chooses the frames that
``nsnet evaluate`` chooses for the same video.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from pipeline.config import DECODE_TIMEOUT_S
from pipeline.decode_watch import DecodingWatch, WatchedDecoding
from pipeline.evaluation import all_frame_scores, fused_positions, top_classes
from pipeline.extract import ModelFrames, Transform, decoding_loader, model_frames
from pipeline.backends import HeadsRunner, Runner
from pipeline.recognition import DecodedFrames, decode_chosen
from pipeline.sampling import uniform_frame_indices
from pipeline.video import FrameSource, VideoReadError


def error_text(path: Path | str, exc: Exception) -> str:
    """Why a video failed: a :class:`VideoReadError` names the file and the problem itself; any
    other error (a transform failing on odd frames, ...) gets the file and its type."""
    return str(exc) if isinstance(exc, VideoReadError) else f"{path}: {type(exc).__name__}: {exc}"


@dataclass
class Observation:
    """The T observation frames of one video, for the light model."""

    item: int
    path: Path
    frames: ModelFrames | None = None  # [T, 3, h, w]; None when the video failed
    frame_indices: np.ndarray | None = None  # [T]
    timestamps: np.ndarray | None = None  # [T] seconds (None for frame folders)
    error: str = ""

    def pin_memory(self) -> Observation:
        """The observation with its uint8 crops in page-locked memory (what a DataLoader with
        ``pin_memory=True`` calls, on a GPU), so that their copy to it runs asynchronously."""
        return self if self.frames is None else replace(self, frames=self.frames.pin_memory())


class ObservationDecoder(Dataset):
    """Item ``i``: the T uniformly pre-sampled frames of ``paths[i]`` (A.1, as the features
    stage samples them), for the light model. ``watch``: where a decoding worker notes the
    video it decodes; ``skip``: videos failed with the given reason without decoding (a decoder
    hung or crashed on them, :mod:`pipeline.decode_watch`)."""

    def __init__(self, paths: Sequence[Path], num_frames: int, transform: Transform, *, watch: DecodingWatch | None = None, skip: dict[int, str] | None = None):
        self.paths, self.num_frames, self.transform = list(paths), num_frames, transform
        self.watch, self.skip = watch, dict(skip or {})

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int) -> Observation:
        path = Path(self.paths[item])
        if item in self.skip:
            return Observation(item, path, error=f"{path}: {self.skip[item]}")
        try:
            with self.watch.decoding(item) if self.watch else nullcontext():
                source = FrameSource(path)
                indices = uniform_frame_indices(source.num_frames, self.num_frames)
                decoded = source.read(indices)
            frames = model_frames(decoded, self.transform)
            return Observation(item, path, frames, indices, source.timestamps(indices))
        except Exception as exc:
            return Observation(item, path, error=error_text(path, exc))


@dataclass
class VideoPrediction:
    """NSNet's answer for one video (or why there is none)."""

    path: str
    error: str = ""
    scores: np.ndarray | None = None  # [C] mean softmax of the recognizer over the K frames
    positions: np.ndarray | None = None  # [K] chosen positions among the T observed frames
    observed_indices: np.ndarray | None = None  # [T] frame indices of the observed frames
    observed_timestamps: np.ndarray | None = None  # [T] seconds, None for frame folders
    s_f: np.ndarray | None = None  # [T]
    s_v: np.ndarray | None = None  # [T]
    thumbnails: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def frame_indices(self) -> np.ndarray:
        return self.observed_indices[self.positions]

    @property
    def timestamps(self) -> np.ndarray | None:
        return None if self.observed_timestamps is None else self.observed_timestamps[self.positions]

    def top(self, classes: Sequence[str], n: int = 5) -> list[tuple[str, float]]:
        return top_classes(self.scores, classes, n)

    def to_json(self, classes: Sequence[str]) -> dict:
        if not self.ok:
            return {"video": self.path, "error": self.error}
        times = self.timestamps
        return {
            "video": self.path,
            "top5": [{"class": name, "score": score} for name, score in self.top(classes)],
            "frames": self.frame_indices.tolist(),
            "timestamps": None if times is None else [round(float(t), 4) for t in times],
            "positions": self.positions.tolist(),
        }


class NSNetInference:
    """The compute of the end-to-end path, on preprocessed frames."""

    def __init__(self, light: Runner, heads: HeadsRunner, recognizer: Runner, k: int, fusion: str, alpha: float, device: torch.device):
        self.device = torch.device(device)
        self.light, self.heads, self.recognizer = light, heads, recognizer
        self.k, self.fusion, self.alpha = k, fusion, alpha

    def light_features(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, h, w] observation frames -> [B, T, D] light features, rounded through
        float16 as the cache stores them."""
        b, t = frames.shape[:2]
        features, _ = self.light(frames.flatten(0, 1))
        return features.half().float().reshape(b, t, -1)

    def saliency(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(s_f, s_v) [B, T] of the trained heads."""
        return self.heads(features)

    def choose(self, s_f: np.ndarray, s_v: np.ndarray) -> list[np.ndarray]:
        """The K fused positions of every video."""
        return fused_positions(s_f, s_v, min(self.k, s_f.shape[1]), self.fusion, self.alpha)

    def recognizer_logits(self, frames: torch.Tensor) -> np.ndarray:
        """[N, 3, H, W] frames -> [N, C] recognizer logits."""
        _, logits = self.recognizer(frames)
        return logits.float().cpu().numpy()


@dataclass
class _Pending:
    """A batch whose chosen frames are being decoded."""

    predictions: list[VideoPrediction]
    chosen: list[tuple[VideoPrediction, Future]]  # the videos that reached the recognizer


def predict_videos(
    paths: Sequence[Path],
    engine: NSNetInference,
    num_frames: int,
    light_tf: Transform,
    rec_tf: Transform,
    batch_size: int = 32,
    workers: int = 2,
    thumbnails: bool = False,
    decode_timeout: float = DECODE_TIMEOUT_S,
) -> Iterator[VideoPrediction]:
    """NSNet on every video of ``paths``, in order; a video that cannot be read, or whose
    decoding worker hangs (``decode_timeout`` seconds on it) or dies, comes back with its error
    and the others go on (the observation loader starts again after the last batch it gave)."""
    workers = min(workers, len(paths))
    start = 0  # the first video not yet observed

    def batches_from_the_next() -> Iterator[list[Observation]]:  # after a failure, from the video it stopped at
        observations = Subset(ObservationDecoder(paths, num_frames, light_tf, watch=decoding.watch, skip=decoding.skip), range(start, len(paths)))
        return iter(decoding_loader(observations, workers, batch_size=batch_size, pin_memory=engine.device.type == "cuda"))  # pinned as the features stage's blocks

    with WatchedDecoding(workers, decode_timeout, "predict", lambda index: str(paths[index])) as decoding, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: _Pending | None = None
        for batch in decoding.items(batches_from_the_next, lambda batch: any(o.frames is not None for o in batch)):
            current = _observe(batch, engine, rec_tf, pool, thumbnails)
            if pending is not None:
                yield from _recognize(pending, engine)
            pending, start = current, batch[-1].item + 1
        if pending is not None:
            yield from _recognize(pending, engine)


def _observe(batch: list[Observation], engine: NSNetInference, rec_tf: Transform, pool: ThreadPoolExecutor, thumbnails: bool) -> _Pending:
    """Light model, heads and fusion on a batch; the chosen frames' decoding is started."""
    predictions = [VideoPrediction(str(o.path), o.error) for o in batch]
    good = [i for i, o in enumerate(batch) if o.frames is not None]
    chosen: list[tuple[VideoPrediction, Future]] = []
    if good:
        frames = ModelFrames.cat([batch[i].frames for i in good]).model_input(engine.device)
        s_f, s_v = engine.saliency(engine.light_features(frames.unflatten(0, (len(good), -1))))
        for i, positions, f, v in zip(good, engine.choose(s_f, s_v), s_f, s_v):
            o, p = batch[i], predictions[i]
            p.positions, p.observed_indices, p.observed_timestamps, p.s_f, p.s_v = positions, o.frame_indices, o.timestamps, f, v
            chosen.append((p, pool.submit(decode_chosen, o.path, o.frame_indices[positions], rec_tf, thumbnails)))
    return _Pending(predictions, chosen)


def _recognize(pending: _Pending, engine: NSNetInference) -> Iterator[VideoPrediction]:
    """The recognizer on the decoded chosen frames of a batch (one model batch)."""
    decoded: list[tuple[VideoPrediction, DecodedFrames]] = []
    for p, future in pending.chosen:
        try:
            decoded.append((p, future.result()))
        except Exception as exc:
            p.error = error_text(p.path, exc)
    if decoded:
        logits = engine.recognizer_logits(ModelFrames.cat([c.frames for _, c in decoded]).model_input(engine.device))
        splits = np.cumsum([len(c.frames) for _, c in decoded])[:-1]
        scores = all_frame_scores(np.split(logits, splits))
        for (p, c), s in zip(decoded, scores):
            p.scores, p.thumbnails = s, c.thumbnails
    yield from pending.predictions
