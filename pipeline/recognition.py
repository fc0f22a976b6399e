"""The recognizer on chosen frames only: decode exactly those frames, preprocess them with the
recognizer's timm transform, run it, and return the frame logits of every video.

Decoding runs in DataLoader workers, which hand over uint8 crops; the float input is made where
the recognizer runs (:class:`pipeline.extract.ModelFrames`). Frames of several videos share one
model batch. The video prediction is then the mean softmax of its frames
(``pipeline.metrics.video_scores``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from pipeline.backends import Runner
from pipeline.datasets import VideoRecord
from pipeline.config import DECODE_TIMEOUT_S
from pipeline.decode_watch import DecodingWatch, WatchedDecoding
from pipeline.extract import ModelFrames, Transform, decoding_loader, model_frames
from pipeline.video import FrameSource, FrameWindow, VideoReadError, open_record


def decode_chosen(source: FrameSource | FrameWindow, frame_indices: np.ndarray, transform: Transform) -> ModelFrames:
    """Decode only the frames ``frame_indices`` of a video (seeking) for the recognizer."""
    return model_frames(source.read(frame_indices), transform)


@dataclass
class ChosenFrames:
    item: int
    frames: ModelFrames | None  # [k, 3, H, W], None when the video failed
    error: str = ""


class ChosenFrameDecoder(Dataset):
    """Item ``i``: the frames ``frame_ids[i]`` of video ``records[i]`` (of its segment, where the
    file is the whole video the clip was annotated in, as the features stage read it), for the
    recognizer.
    ``watch``: where a decoding worker notes the video it decodes; ``skip``: videos failed with
    the given reason without decoding (a decoder hung or crashed on them); both are set by
    :func:`recognized`."""

    def __init__(self, root: Path, records: list[VideoRecord], frame_ids: list[np.ndarray], transform: Transform):
        if len(records) != len(frame_ids):
            raise ValueError("one list of frame indices per video is needed")
        self.root, self.records, self.frame_ids, self.transform = Path(root), records, frame_ids, transform
        self.watch: DecodingWatch | None = None
        self.skip: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.records)

    def path(self, item: int) -> Path:
        return self.root / self.records[item].path

    def __getitem__(self, item: int) -> ChosenFrames:
        if item in self.skip:
            return ChosenFrames(item, None, f"{self.path(item)}: {self.skip[item]}")
        try:
            with self.watch.decoding(item) if self.watch else nullcontext():
                return ChosenFrames(item, decode_chosen(open_record(self.root, self.records[item]), self.frame_ids[item], self.transform))
        except VideoReadError as exc:
            return ChosenFrames(item, None, str(exc))


# Videos whose decoded frames make one recognizer batch.
RECOGNIZED_VIDEOS_PER_BATCH = 8


def recognized(
    decoder: ChosenFrameDecoder,
    recognizer: Runner,
    device: torch.device,
    videos_per_batch: int = RECOGNIZED_VIDEOS_PER_BATCH,
    workers: int = 2,
    desc: str = "recognizer",
    decode_timeout: float = DECODE_TIMEOUT_S,
) -> Iterator[tuple[int, np.ndarray | str]]:
    """(item, its frame logits [k_i, C]) for every item, a batch of videos at a time as the
    recognizer finishes them, or (item, why it failed): a video that could not be decoded, or
    whose decoding worker hung ``decode_timeout`` seconds or died on it (named by ``desc``). The
    recognizer's input is made on ``device``, where it runs."""
    workers = min(workers, len(decoder))
    start = 0  # the first video not yet given

    def batches_from_the_next() -> Iterator[list[ChosenFrames]]:  # after a failure, from the video it stopped at
        return iter(decoding_loader(Subset(decoding.attached(decoder), range(start, len(decoder))), workers, batch_size=videos_per_batch))

    with WatchedDecoding(workers, decode_timeout, desc, lambda item: str(decoder.path(item))) as decoding:
        for batch in decoding.items(batches_from_the_next, lambda batch: any(b.frames is not None for b in batch)):
            good = [b for b in batch if b.frames is not None]
            yield from ((b.item, b.error) for b in batch if b.frames is None)
            if good:
                _, out = recognizer(ModelFrames.cat([b.frames for b in good]).model_input(device))
                splits = np.cumsum([len(b.frames) for b in good])[:-1]
                yield from ((b.item, video_logits) for b, video_logits in zip(good, np.split(out.float().cpu().numpy(), splits)))
            start = batch[-1].item + 1

