"""NSNet end to end on videos: what ``nsnet predict`` runs and ``make bench`` times.

Per batch of videos: decode the T observation frames (pre-sampled as in the features stage)
once, and resize and crop them for both models, as the features stage does
(:class:`pipeline.extract.BothModels`); run the light backbone, the trained heads and A.3's
fusion on all T; run the recognizer on the K chosen frames' crops alone. The videos are decoded
ahead in DataLoader workers, watched (:mod:`pipeline.decode_watch`); they hand over uint8 crops,
and the models' float inputs are made where they run (:class:`pipeline.extract.ModelFrames`).

The heads were trained on light features as the cache stores them (float16), so the features
computed here are rounded through float16 too: ``nsnet predict`` then chooses the frames that
``nsnet evaluate`` chooses for the same video.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from pipeline.config import DECODE_TIMEOUT_S, PREDICT_BATCH
from pipeline.decode_watch import DecodingWatch, WatchedDecoding
from pipeline.evaluation import all_frame_scores, fused_positions, top_classes
from pipeline.extract import BothModels, ModelFrames, both_moved, decoding_loader
from pipeline.backends import HeadsRunner, Runner
from pipeline.sampling import uniform_frame_indices
from pipeline.video import FrameSource, VideoReadError, read_planned, read_short


def error_text(path: Path | str, exc: Exception) -> str:
    """Why a video failed: a :class:`VideoReadError` names the file and the problem itself; any
    other error (a transform failing on odd frames, ...) gets the file and its type."""
    return str(exc) if isinstance(exc, VideoReadError) else f"{path}: {type(exc).__name__}: {exc}"


THUMBNAIL_SIZE = 96  # pixels, the longer side of the thumbnails kept for ``nsnet predict --plot``


def thumbnails(frames: np.ndarray) -> np.ndarray:
    """uint8 [n, H, W, 3] frames shrunk by a whole step to about :data:`THUMBNAIL_SIZE` pixels."""
    step = max(1, int(np.ceil(max(frames.shape[1:3]) / THUMBNAIL_SIZE)))
    return np.ascontiguousarray(frames[:, ::step, ::step])


@dataclass
class Observation:
    """The T observation frames of one video, cropped for both models."""

    item: int
    path: Path
    light: ModelFrames | None = None  # [T, 3, h, w]; None when the video failed
    rec: ModelFrames | None = None  # [T, 3, H, W]; the light model's crops where they are alike
    frame_indices: np.ndarray | None = None  # [T]
    timestamps: np.ndarray | None = None  # [T] seconds (None for frame folders)
    thumbnails: np.ndarray | None = None  # [T, h, w, 3] uint8, when asked for
    read_short: tuple[int, int] | None = None  # (frames read, frames its container lists) of a file cut short
    error: str = ""

    def pin_memory(self) -> Observation:
        """The observation with its uint8 crops in page-locked memory (what a DataLoader with
        ``pin_memory=True`` calls, on a GPU), so that their copy to it runs asynchronously."""
        if self.light is None:
            return self
        light, rec = both_moved(self.light, self.rec, ModelFrames.pin_memory)
        return replace(self, light=light, rec=rec)


class ObservationDecoder(Dataset):
    """Item ``i``: the T uniformly pre-sampled frames of ``paths[i]`` (A.1, as the features
    stage samples them), decoded once and cropped for both models (and shrunk to
    :func:`thumbnails` with ``keep_thumbnails``). ``watch``: where a decoding worker notes the
    video it decodes; ``skip``: videos failed with the given reason without decoding (a decoder
    hung or crashed on them, :mod:`pipeline.decode_watch`)."""

    def __init__(self, paths: Sequence[Path], num_frames: int, models: BothModels, keep_thumbnails: bool = False, *, watch: DecodingWatch | None = None, skip: dict[int, str] | None = None):
        self.paths, self.num_frames, self.models, self.keep_thumbnails = list(paths), num_frames, models, keep_thumbnails
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
                decoded, indices = read_planned(source, lambda count: uniform_frame_indices(count, self.num_frames))
            prepared = self.models.prepared(decoded)
            return Observation(item, path, prepared[0], self.models.recognizer_frames(prepared), indices, source.timestamps(indices), thumbnails(decoded) if self.keep_thumbnails else None, read_short(source))
        except Exception as exc:
            return Observation(item, path, error=error_text(path, exc))

    def batch_bytes(self, videos: int, light_input: Sequence[int], rec_input: Sequence[int]) -> int:
        """Shared memory that a batch of ``videos`` observations' crops (and thumbnails, at most
        :data:`THUMBNAIL_SIZE` pixels a side) takes at most."""
        thumbnail = 3 * THUMBNAIL_SIZE**2 if self.keep_thumbnails else 0
        return videos * self.num_frames * (self.models.frame_bytes(light_input, rec_input) + thumbnail)


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
    read_short: tuple[int, int] | None = None  # (frames read, frames listed) of a file cut short

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
            **({} if self.read_short is None else {"read_short": {"frames": self.read_short[0], "listed": self.read_short[1]}}),
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
        return fused_positions(s_f, s_v, self.k, self.fusion, self.alpha)

    def recognizer_logits(self, frames: torch.Tensor) -> np.ndarray:
        """[N, 3, H, W] frames -> [N, C] recognizer logits."""
        _, logits = self.recognizer(frames)
        return logits.float().cpu().numpy()


def predict_videos(
    engine: NSNetInference,
    observations: ObservationDecoder,
    batch_size: int = 32,
    workers: int = 2,
    decode_timeout: float = DECODE_TIMEOUT_S,
) -> Iterator[VideoPrediction]:
    """NSNet on every video of ``observations``, in order; a video that cannot be read, or whose
    decoding worker hangs (``decode_timeout`` seconds on it) or dies, comes back with its error
    and the others go on (the loader starts again after the last batch it gave)."""
    paths = observations.paths
    workers = min(workers, len(paths))
    start = 0  # the first video not yet observed

    def batches_from_the_next() -> Iterator[list[Observation]]:  # after a failure, from the video it stopped at
        watched = Subset(decoding.attached(observations), range(start, len(paths)))
        return iter(decoding_loader(watched, workers, batch_size=batch_size, pin_memory=engine.device.type == "cuda"))  # pinned as the features stage's blocks

    with WatchedDecoding(workers, decode_timeout, "predict", lambda index: str(paths[index])) as decoding:
        for batch in decoding.items(batches_from_the_next, lambda batch: any(o.light is not None for o in batch)):
            yield from _predicted(batch, engine)
            start = batch[-1].item + 1


def predict_frames(engine: NSNetInference, models: BothModels, videos: Sequence[np.ndarray], num_frames: int, names: Sequence[str] | None = None, batch_size: int = PREDICT_BATCH) -> list[VideoPrediction]:
    """NSNet on videos decoded by the caller, ``batch_size`` at a time through the models (what
    they hold does not grow with the number of videos given): each video's
    ``num_frames`` observation frames as uint8 RGB ``[T, H, W, 3]`` (any size, in their order:
    the T uniformly pre-sampled frames, :func:`pipeline.sampling.uniform_frame_indices`, where
    they come from a video file), cropped for both models by ``models`` and run as
    :func:`predict_videos` runs a batch: the same positions and scores for the same frames. A
    prediction's ``frame_indices`` are positions among its frames; ``names`` (default ``frames
    <i>``) stand for the videos in their ``path`` and in the error a video of other frames gets."""
    names = [f"frames {i}" for i in range(len(videos))] if names is None else list(names)
    if len(names) != len(videos):
        raise ValueError(f"{len(names)} names for {len(videos)} videos")
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size}: at least 1 video a batch")
    videos = [np.asarray(frames) for frames in videos]
    for frames, name in zip(videos, names):  # every video checked before any is run
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) != num_frames:
            raise ValueError(f"{name}: NSNet takes the {num_frames} observation frames of a video as uint8 RGB [{num_frames}, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    predictions = []
    for at in range(0, len(videos), batch_size):
        batch = []
        for item in range(at, min(at + batch_size, len(videos))):
            prepared = models.prepared(np.ascontiguousarray(videos[item]))
            batch.append(Observation(item, Path(names[item]), prepared[0], models.recognizer_frames(prepared), np.arange(num_frames)))
        predictions += _predicted(batch, engine)
    return predictions


def _predicted(batch: list[Observation], engine: NSNetInference) -> list[VideoPrediction]:
    """Light model, heads and fusion on a batch's observations, then the recognizer on the K
    chosen frames of each (one model batch)."""
    predictions = [VideoPrediction(str(o.path), o.error) for o in batch]
    good = [i for i, o in enumerate(batch) if o.light is not None]
    if not good:
        return predictions
    # each video's crops copied to the device as they are (pinned there: asynchronously; shared crops once), joined and picked there
    moved = [both_moved(batch[i].light, batch[i].rec, lambda frames: frames.on(engine.device)) for i in good]
    frames = ModelFrames.cat([light for light, _ in moved]).model_input(engine.device)
    s_f, s_v = engine.saliency(engine.light_features(frames.unflatten(0, (len(good), -1))))
    chosen = engine.choose(s_f, s_v)
    logits = engine.recognizer_logits(ModelFrames.cat([rec.rows(positions) for (_, rec), positions in zip(moved, chosen)]).model_input(engine.device))
    scores = all_frame_scores(np.split(logits, np.cumsum([len(positions) for positions in chosen])[:-1]))
    for i, positions, f, v, video_scores in zip(good, chosen, s_f, s_v, scores):
        o, p = batch[i], predictions[i]
        p.positions, p.observed_indices, p.observed_timestamps, p.s_f, p.s_v, p.scores = positions, o.frame_indices, o.timestamps, f, v, video_scores
        p.thumbnails = None if o.thumbnails is None else o.thumbnails[positions]
        p.read_short = o.read_short
    return predictions
