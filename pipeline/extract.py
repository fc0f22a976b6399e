"""Decoding in DataLoader workers and batched inference of the two backbones.

The unit of work is a *block*: a fixed run of consecutive videos (their number is set when a
cache is created). A worker decodes a whole block, pre-samples T frames per video and applies
each model's timm transform; the main process runs both models on all frames of the block at
once (frames of several videos share a batch). Blocks are fixed by video index, so a resumed or
sharded run computes exactly the batches an uninterrupted run would, and on the CPU the cache
comes out bit-identical.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.cache import DONE, FAILED, SHIFT_PREFIX
from pipeline.datasets import VideoRecord
from pipeline.backends import Runner
from pipeline.sampling import candidate_frame_indices
from pipeline.video import VideoReadError, open_record

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DecodedVideo:
    index: int
    frame_indices: np.ndarray  # [S, T]: the segment centres, then the other candidates (S >= 1)
    num_frames: int

    @property
    def rows(self) -> int:
        """Its frames' rows in the block's tensors (S*T, in the order of ``frame_indices``)."""
        return self.frame_indices.size


@dataclass
class VideoFailure:
    index: int
    reason: str


@dataclass
class DecodedBlock:
    block: int
    members: list[int]  # the consecutive video indices of the block
    videos: list[DecodedVideo]
    failures: list[VideoFailure]
    light: torch.Tensor  # [frames, 3, h, w]: every decoded video's rows, video after video, for the light model
    rec: torch.Tensor  # [frames, 3, H, W] for the recognizer; the same tensor when they share preprocessing

    @property
    def num_frames(self) -> int:
        return sum(v.rows for v in self.videos)

    def pin_memory(self) -> DecodedBlock:
        """The block with its frames in page-locked memory, so that their copy to the GPU runs
        asynchronously: what a DataLoader with ``pin_memory=True`` calls, in its own thread."""
        light = self.light.pin_memory()
        return replace(self, light=light, rec=light if self.rec is self.light else self.rec.pin_memory())


def make_blocks(num_videos: int, block_size: int) -> list[list[int]]:
    return [list(range(s, min(num_videos, s + block_size))) for s in range(0, num_videos, block_size)]


def decode_video(root: Path, record: VideoRecord, t: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Pre-sample T frames of a video: (uint8 frames [T, H, W, 3], indices [T], frame count)."""
    frames, indices, count = decode_candidates(root, record, t, 1)
    return frames, indices[0], count


def decode_candidates(root: Path, record: VideoRecord, t: int, offsets: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``offsets`` candidate frames in each of T segments (row 0 the centres, see
    :func:`candidate_frame_indices`): (uint8 frames [S*T, H, W, 3], indices [S, T], frame count).
    A frame two candidates share is decoded once."""
    source = open_record(root, record)
    indices = candidate_frame_indices(source.num_frames, t, offsets)
    return source.read(indices.ravel()), indices, source.num_frames


def to_model_input(frames: np.ndarray, transform: Transform) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> the model's preprocessed float [T, 3, h, w]. The resize and crop of
    a timm eval transform run on the uint8 frames (:func:`uint8_steps`), as timm's PIL pipeline
    runs them, and normalising on the frames scaled to [0, 1]; any other transform takes the
    scaled frames whole."""
    on_uint8, on_float = uint8_steps(transform)
    x = on_uint8(torch.from_numpy(frames).permute(0, 3, 1, 2))
    return on_float(x.float().div_(255.0)).contiguous()


@functools.lru_cache(maxsize=16)
def uint8_steps(transform: Transform) -> tuple[Transform, Transform]:
    """A timm eval transform (resize, centre crop, to-tensor, normalise) as (its resize and crop
    for uint8 frames, the steps after its to-tensor step); (nothing, the whole) for any other.
    The resize is torchvision's v2 ``Resize`` with the same arguments: its uint8 bicubic with
    antialiasing took 0.07 ms a frame against 1.9 for timm's v1 ``Resize`` (which computes in
    floats) and 1.4 on float frames (128² -> 256, one thread, 2026-12-03)."""
    from timm.data.transforms import MaybeToTensor
    from torchvision.transforms import CenterCrop, Compose, Resize, ToTensor, v2

    steps = list(transform.transforms) if isinstance(transform, Compose) else []
    at = next((i for i, step in enumerate(steps) if isinstance(step, (MaybeToTensor, ToTensor))), None)
    if at is None or not all(type(step) in (Resize, CenterCrop) for step in steps[:at]):
        return _unchanged, transform
    geometry = [v2.Resize(s.size, s.interpolation, s.max_size, s.antialias) if type(s) is Resize else v2.CenterCrop(s.size) for s in steps[:at]]
    return v2.Compose(geometry), Compose(steps[at + 1 :])


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


class BlockDecoder(Dataset):
    """Item ``b``: block ``blocks[b]`` decoded and preprocessed for both models: the T segment
    centres of every video and, for the training videos, ``offsets - 1`` other candidates of
    every segment too. Given one transform object for both models (``frame_transforms``), the
    frames are preprocessed once and both models get the same tensor."""

    def __init__(self, root: Path, videos: tuple[VideoRecord, ...], blocks: list[tuple[int, list[int]]], t: int, light_tf: Transform, rec_tf: Transform, offsets: int = 1):
        self.root, self.videos, self.blocks, self.t, self.offsets = Path(root), videos, blocks, t, offsets
        self.light_tf, self.rec_tf = light_tf, rec_tf

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, item: int) -> DecodedBlock:
        """Block ``item``; its frames are joined here, in the decoding worker, so that the main
        process gets one tensor per model (and the loader pins it, on a GPU)."""
        block_id, members = self.blocks[item]
        decoded, failures, light_parts, rec_parts = [], [], [], []
        for index in members:
            record = self.videos[index]
            try:
                frames, indices, count = decode_candidates(self.root, record, self.t, self.offsets if record.split == "train" else 1)
                light = to_model_input(frames, self.light_tf)
                rec = None if self.rec_tf is self.light_tf else to_model_input(frames, self.rec_tf)
            except VideoReadError as exc:
                failures.append(VideoFailure(index, exc.reason))
                continue
            except Exception as exc:  # a frame folder of mixed sizes, a transform error, ...
                failures.append(VideoFailure(index, f"{type(exc).__name__}: {exc}"))
                continue
            decoded.append(DecodedVideo(index, indices, count))
            light_parts.append(light)
            if rec is not None:
                rec_parts.append(rec)
        light = torch.cat(light_parts) if light_parts else torch.empty(0)
        rec = torch.cat(rec_parts) if rec_parts else light
        return DecodedBlock(block_id, members, decoded, failures, light, rec)


def single_thread_worker(_: int) -> None:
    """DataLoader worker init: one torch thread per decoding process (the cores are shared)."""
    torch.set_num_threads(1)


def as_is(items):
    """DataLoader collate that keeps the decoded items as they are."""
    return items


CPU_CORES_PER_DECODER = 8


def decoding_workers(requested: int | None, device: torch.device) -> int:
    """DataLoader decoding processes for a features run: ``requested``, or by default one per
    ``CPU_CORES_PER_DECODER`` cores of this process on the CPU (at least one) and 2 on a GPU.
    On the CPU the decoders take their cores from the models: with the paper's backbones one
    decoding process supplies about 240-350 frames/s (each frame preprocessed once for both
    models) while both models through ONNX Runtime take about 40 frames/s on 2 cores (about 50
    core-ms a frame against 3-4 for decoding), and on the 2-core machine a second decoder
    lowered the full stage from 0.90 to 0.85 of the models' rate (README, Benchmarks). The
    cores are shared by the torchrun ranks of one node."""
    if requested is not None:
        return requested
    if torch.device(device).type != "cpu":
        return 2
    cores = len(os.sched_getaffinity(0)) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, cores // CPU_CORES_PER_DECODER)


def block_loader(dataset: BlockDecoder, workers: int, pin_memory: bool) -> DataLoader:
    """Blocks in order, decoded ahead by ``workers`` processes (0: in the main process)."""
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers > 0 else None,
        worker_init_fn=single_thread_worker if workers > 0 else None,
        collate_fn=as_is,
    )


class BlockInference:
    """Runs the light model and the recognizer on all frames of a block."""

    def __init__(self, light: Runner, recognizer: Runner):
        self.light, self.recognizer = light, recognizer

    def __call__(self, block: DecodedBlock, layout_rows: dict[str, tuple[tuple[int, ...], str]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The cache rows of the block's videos (failed ones left zero) and their status
        (DONE, or FAILED for the block's failures)."""
        start, count = block.members[0], len(block.members)
        rows = {name: np.zeros((count,) + shape, dtype=dtype) for name, (shape, dtype) in layout_rows.items()}
        status = np.full(count, DONE, dtype=np.int8)
        for failure in block.failures:
            status[failure.index - start] = FAILED
        if not block.videos:
            return rows, status
        light, _ = self.light(block.light)
        rec, logits = self.recognizer(block.rec)
        outputs = {name: value.float().cpu().numpy() for name, value in (("light_features", light), ("rec_features", rec), ("rec_logits", logits))}
        at = 0
        for video in block.videos:  # a video's frames: S rows of T, the centres first
            views, t = video.frame_indices.shape
            row = video.index - start
            per_view = {name: value[at : at + views * t].reshape(views, t, -1) for name, value in outputs.items()}
            for name, value in {**per_view, "frame_indices": video.frame_indices}.items():
                rows[name][row] = value[0]
                if views > 1:
                    rows[SHIFT_PREFIX + name][row] = value[1:]
            rows["num_frames"][row] = video.num_frames
            at += views * t
        return rows, status
