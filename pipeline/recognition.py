"""The recognizer on chosen frames only: decode exactly those frames, preprocess them with the
recognizer's timm transform, run it, and return the frame logits of every video.

Decoding runs in DataLoader workers, which hand over uint8 crops; the float input is made where
the recognizer runs (:class:`pipeline.extract.ModelFrames`). Frames of several videos share one
model batch. The video prediction is then the mean softmax of its frames
(``pipeline.metrics.video_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.backends import Runner
from pipeline.datasets import VideoRecord
from pipeline.extract import ModelFrames, Transform, as_is, model_frames, single_thread_worker
from pipeline.video import FrameSource, VideoReadError


THUMBNAIL_SIZE = 96  # pixels, the longer side of the thumbnails kept for ``nsnet predict --plot``


@dataclass
class DecodedFrames:
    frames: ModelFrames  # [K, 3, H, W], for the recognizer
    thumbnails: np.ndarray | None  # [K, h, w, 3] uint8, when asked for


def decode_chosen(path: Path, frame_indices: np.ndarray, transform: Transform, thumbnails: bool = False) -> DecodedFrames:
    """Decode only the frames ``frame_indices`` of a video (seeking) for the recognizer."""
    frames = FrameSource(path).read(frame_indices)
    return DecodedFrames(model_frames(frames, transform), _thumbnails(frames) if thumbnails else None)


def _thumbnails(frames: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(frames.shape[1:3]) / THUMBNAIL_SIZE)))
    return np.ascontiguousarray(frames[:, ::step, ::step])


@dataclass
class ChosenFrames:
    item: int
    frames: ModelFrames | None  # [k, 3, H, W], None when the video failed
    error: str = ""


class ChosenFrameDecoder(Dataset):
    """Item ``i``: the frames ``frame_ids[i]`` of video ``records[i]``, for the recognizer."""

    def __init__(self, root: Path, records: list[VideoRecord], frame_ids: list[np.ndarray], transform: Transform):
        if len(records) != len(frame_ids):
            raise ValueError("one list of frame indices per video is needed")
        self.root, self.records, self.frame_ids, self.transform = Path(root), records, frame_ids, transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item: int) -> ChosenFrames:
        try:
            return ChosenFrames(item, decode_chosen(self.root / self.records[item].path, self.frame_ids[item], self.transform).frames)
        except VideoReadError as exc:
            return ChosenFrames(item, None, str(exc))

# Videos whose decoded frames make one recognizer batch.
RECOGNIZED_VIDEOS_PER_BATCH = 8


def recognize_frames(decoder: ChosenFrameDecoder, recognizer: Runner, device: torch.device, videos_per_batch: int = RECOGNIZED_VIDEOS_PER_BATCH, workers: int = 2, progress: bool = True, desc: str = "recognizer") -> tuple[list[np.ndarray | None], dict[int, str]]:
    """Frame logits [k_i, C] of every item (None for a video that could not be decoded) and
    the errors by item; the recognizer's input is made on ``device``, where it runs."""
    loader = DataLoader(
        decoder,
        batch_size=videos_per_batch,
        num_workers=min(workers, len(decoder)),
        collate_fn=as_is,
        worker_init_fn=single_thread_worker if workers > 0 else None,
    )
    logits: list[np.ndarray | None] = [None] * len(decoder)
    errors: dict[int, str] = {}
    with tqdm(total=len(decoder), unit="video", desc=desc, disable=not progress) as bar:
        for batch in loader:
            good = [b for b in batch if b.frames is not None]
            errors.update({b.item: b.error for b in batch if b.frames is None})
            if good:
                _, out = recognizer(ModelFrames.cat([b.frames for b in good]).model_input(device))
                out = out.float().cpu().numpy()
                start = 0
                for b in good:
                    logits[b.item] = out[start : start + len(b.frames)]
                    start += len(b.frames)
            bar.update(len(batch))
    return logits, errors
