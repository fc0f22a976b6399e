"""Fig. 4 of the paper: the frames that UNIFORM, NSNet without NS and NSNet choose in a few
evaluation videos, each marked salient or non-salient.

The paper outlines the frames a person judges salient; here a frame's NS pseudo label decides
(section 3.4): salient where its guiding score ``g`` exceeds :data:`SALIENT_G`, so that the
label's larger part is the video's class rather than the non-salient one. The videos drawn are
those where NSNet's chosen frames gain most in guiding score over the w/o-NS sampler's: where
non-saliency suppression changes the choice most, the point the figure makes. Over all
evaluation videos, :func:`chosen_guidance` gives the same comparison as numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.datasets import VideoRecord
from pipeline.inference import thumbnails
from pipeline.metrics import video_scores
from pipeline.video import VideoReadError, open_record

SALIENT_G = 0.5  # g > 1 - g: the frame's pseudo label is more the video's class than non-salient
SHOWCASE_VIDEOS = 4  # videos drawn in the figure


def chosen_guidance(g: np.ndarray, positions: Sequence[np.ndarray]) -> dict[str, float]:
    """Over all videos' chosen frames (``g`` [V, T], one array of positions a video): their
    mean guiding score and the share of them that are salient (``g > SALIENT_G``)."""
    chosen = np.concatenate([row[np.asarray(p)] for row, p in zip(g, positions)])
    return {"mean_g": float(chosen.mean()), "salient_share": float(np.mean(chosen > SALIENT_G))}


def showcase_videos(g: np.ndarray, baseline: Sequence[np.ndarray], positions: Sequence[np.ndarray], count: int = SHOWCASE_VIDEOS) -> np.ndarray:
    """The ``count`` videos (indices into ``g``'s rows) where the chosen frames' mean guiding
    score exceeds the baseline's chosen frames' the most; ties to the earlier video."""
    gain = np.array([row[np.asarray(p)].mean() - row[np.asarray(b)].mean() for row, b, p in zip(g, baseline, positions)])
    return np.argsort(-gain, kind="stable")[:count]


@dataclass
class ShowcaseRow:
    """One sampler's choice in one video."""

    method: str
    positions: list[int]  # among the T observed frames
    frames: list[int]  # frame indices in the video
    g: list[float]
    prediction: str  # the top class of the recognizer on these frames

    @property
    def salient(self) -> list[bool]:
        return [value > SALIENT_G for value in self.g]


@dataclass
class ShowcaseVideo:
    """A video of the figure: each sampler's row, and the chosen frames' thumbnails (by frame
    index) where the video was decoded."""

    video_id: str
    path: str
    labels: list[str]
    rows: list[ShowcaseRow]
    thumbnails: dict[int, np.ndarray] | None = None
    times: dict[int, float] | None = None  # seconds, where the video has a clock
    error: str = ""  # why there are no thumbnails, when decoding failed

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (no pictures)."""
        rows = [{"method": r.method, "positions": r.positions, "frames": r.frames, "g": r.g, "salient": r.salient, "prediction": r.prediction} for r in self.rows]
        out: dict[str, Any] = {"video_id": self.video_id, "path": self.path, "labels": self.labels, "rows": rows}
        if self.times is not None:
            out["times"] = {str(frame): t for frame, t in self.times.items()}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class ShowcaseInput:
    """What one video of the figure is made from."""

    record: VideoRecord
    frame_indices: np.ndarray  # [T] of the observed frames
    g: np.ndarray  # [T]
    logits: np.ndarray  # [T, C] the recognizer's cached logits of the observed frames
    positions: dict[str, np.ndarray] = field(default_factory=dict)  # sampler -> its chosen positions


def showcase_video(item: ShowcaseInput, classes: Sequence[str], root: Path | None) -> ShowcaseVideo:
    """The figure's record of one video; its chosen frames decoded for thumbnails when ``root``
    is given (a video that cannot be decoded keeps its rows, with the reason)."""
    rows = []
    for method, chosen in item.positions.items():
        chosen = np.sort(np.asarray(chosen))
        top = int(video_scores(np.asarray(item.logits, dtype=np.float64)[None, chosen])[0].argmax())
        rows.append(ShowcaseRow(method, chosen.tolist(), item.frame_indices[chosen].tolist(), [float(v) for v in item.g[chosen]], classes[top]))
    video = ShowcaseVideo(item.record.video_id, item.record.path, [classes[c] for c in item.record.labels], rows)
    if root is not None:
        frames = np.unique(np.concatenate([r.frames for r in rows]))
        try:
            source = open_record(root, item.record)
            pictures, times = thumbnails(source.read(frames)), source.timestamps(frames)
        except VideoReadError as exc:
            video.error = str(exc)
        else:
            video.thumbnails = dict(zip(frames.tolist(), pictures))
            video.times = None if times is None else {int(f): float(t) for f, t in zip(frames, times)}
    return video
