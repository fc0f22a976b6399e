"""Decoding in DataLoader workers and batched inference of the two backbones.

The unit of work is a *block*: a fixed run of consecutive videos (their number is set when a
cache is created). A worker decodes a whole block, pre-samples T frames per video and resizes
and crops them as each model's timm transform does, handing over uint8 crops; the main process
scales and normalises them on the models' device and runs both models on all frames of the
block at once (frames of several videos share a batch). Blocks are fixed by video index, so a
resumed or sharded run computes exactly the batches an uninterrupted run would, and on the CPU
the cache comes out bit-identical. (Videos computed again in a shard written before, failures
retried or files changed, make blocks of their own: ``stages.features``.)
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import shutil
import sys
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from pipeline.cache import DONE, FAILED, SHIFT_PREFIX
from pipeline.datasets import VideoRecord
from pipeline.decoders import DECODER_RULES, fault_handler_on_a_copy_of_standard_error
from pipeline.backends import Runner
from pipeline import decode_watch
from pipeline.decode_watch import DecodingWatch
from pipeline.sampling import candidate_frame_indices
from pipeline.stop_signals import leave_to_the_command
from pipeline.video import FrameSource, FrameWindow, VideoReadError, open_record, read_planned, read_short, source_size

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DecodedVideo:
    index: int
    frame_indices: np.ndarray  # [S, T]: the segment centres, then the other candidates (S >= 1)
    num_frames: int
    read_short: tuple[int, int] | None = None  # (frames read, frames listed) of a file cut short
    decord_passed_over: str | None = None  # why PyAV read it, not decord (FrameSource.decord_passed_over)

    @property
    def rows(self) -> int:
        """Its frames' rows in the block's tensors (S*T, in the order of ``frame_indices``)."""
        return self.frame_indices.size


@dataclass
class VideoFailure:
    index: int
    reason: str


@dataclass(frozen=True)
class Rescale:
    """uint8 pixels -> a model's float input: the scaling to [0, 1] and timm's ``Normalize`` as
    ``x * scale + shift`` per channel, in place on one contiguous float copy. Plain numbers, so
    that it crosses from a decoding worker as a few bytes and two equal ones compare equal."""

    scale: tuple[float, ...]  # per channel: 1 / (255 std)
    shift: tuple[float, ...]  # per channel: -mean / std

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [N, C, h, w] (any strides, any device) -> contiguous float [N, C, h, w] there."""
        x = torch.empty(pixels.shape, dtype=torch.float32, device=pixels.device).copy_(pixels)
        return x.mul_(self._per_channel(self.scale, x.device)).add_(self._per_channel(self.shift, x.device))

    @staticmethod
    def _per_channel(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


@dataclass
class ModelFrames:
    """One model's frames (of a video, a batch or a block): the uint8 crops and the
    :class:`Rescale` that makes them the model's input (a timm eval transform), or the float
    input itself (any other transform; ``rescale`` None). The decoders hand over uint8 crops, a
    quarter of the float input's bytes, and the input is made where the model runs."""

    pixels: torch.Tensor  # [frames, 3, h, w]
    rescale: Rescale | None

    def __len__(self) -> int:
        return len(self.pixels)

    def model_input(self, device: torch.device) -> torch.Tensor:
        """The model's float input [frames, 3, h, w] on ``device``."""
        x = self.pixels.to(device, non_blocking=True)
        return x if self.rescale is None else self.rescale(x)

    def pin_memory(self) -> ModelFrames:
        return replace(self, pixels=self.pixels.pin_memory())

    @classmethod
    def cat(cls, parts: Sequence[ModelFrames]) -> ModelFrames:
        """The frames of ``parts`` one after the other, as one model batch: they must come from
        one preprocessing."""
        return cls(torch.cat([part.pixels for part in parts]), _one_rescale(parts))

    def on(self, device: torch.device) -> ModelFrames:
        """These frames with their crops copied to ``device`` as they are (asynchronously from
        page-locked memory), rescaled later there."""
        return replace(self, pixels=self.pixels.to(device, non_blocking=True))

    def rows(self, positions: np.ndarray) -> ModelFrames:
        """The frames at ``positions`` (picked where the crops lie)."""
        return replace(self, pixels=self.pixels[torch.as_tensor(positions, device=self.pixels.device)])


def _one_rescale(parts: Sequence[ModelFrames]) -> Rescale | None:
    """The preprocessing of frames that make one model batch: it must be one."""
    rescales = {part.rescale for part in parts}
    if len(rescales) != 1:
        raise ValueError(f"frames of {len(rescales)} different preprocessings cannot make one model batch")
    return rescales.pop()


@dataclass
class DecodedBlock:
    block: int
    members: list[int]  # the video indices of the block, in order: consecutive, or those of a shard computed again
    videos: list[DecodedVideo]
    failures: list[VideoFailure]
    light: ModelFrames  # for the light model
    rec: ModelFrames  # for the recognizer; the same object when they share preprocessing, or the same crops with its own rescaling
    source_sizes: np.ndarray  # [members] int64: each member's source_size, taken before it was decoded

    @property
    def num_frames(self) -> int:
        return sum(v.rows for v in self.videos)

    def positions(self) -> dict[int, int]:
        """Each member's position among the block's members (its row in the block's rows)."""
        return {index: i for i, index in enumerate(self.members)}

    def pin_memory(self) -> DecodedBlock:
        """The block with its frames in page-locked memory, so that their copy to the GPU runs
        asynchronously: what a DataLoader with ``pin_memory=True`` calls, in its own thread."""
        light, rec = both_moved(self.light, self.rec, ModelFrames.pin_memory)
        return replace(self, light=light, rec=rec)


def both_moved(light: ModelFrames, rec: ModelFrames, move: Callable[[ModelFrames], ModelFrames]) -> tuple[ModelFrames, ModelFrames]:
    """Both models' frames moved by ``move`` (pinned, or copied to a device): crops the models
    share are moved once and stay shared."""
    moved = move(light)
    if rec is light:
        return moved, moved
    return moved, (replace(rec, pixels=moved.pixels) if rec.pixels is light.pixels else move(rec))


def make_blocks(num_videos: int, block_size: int) -> list[list[int]]:
    return [list(range(s, min(num_videos, s + block_size))) for s in range(0, num_videos, block_size)]


def decode_video(root: Path, record: VideoRecord, t: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Pre-sample T frames of a video: (uint8 frames [T, H, W, 3], indices [T], frame count)."""
    frames, indices, count, _ = decode_candidates(root, record, t, 1)
    return frames, indices[0], count


def decode_candidates(root: Path, record: VideoRecord, t: int, offsets: int) -> tuple[np.ndarray, np.ndarray, int, FrameSource | FrameWindow]:
    """``offsets`` candidate frames in each of T segments (row 0 the centres, see
    :func:`candidate_frame_indices`): (uint8 frames [S*T, H, W, 3], indices [S, T], frame count,
    the source read, which says whether it read short and which decoder read it). A frame two
    candidates share is decoded once."""
    source = open_record(root, record)
    frames, indices = read_planned(source, lambda count: candidate_frame_indices(count, t, offsets))
    return frames, indices, source.num_frames, source


def model_frames(frames: np.ndarray, transform: Transform) -> ModelFrames:
    """uint8 [T, H, W, 3] -> a model's frames. A timm eval transform runs as :class:`EvalSteps`:
    the resize and crop here, on the uint8 frames as timm's PIL pipeline runs them, giving uint8
    crops (a view of ``frames`` where no resize is needed), and the multiply-add per channel left
    to :meth:`ModelFrames.model_input`. Any other transform takes the frames scaled to [0, 1]
    whole and gives the float input."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)  # a channels-first view of the same memory
    steps = eval_steps(transform)
    if steps is None:
        return ModelFrames(transform(x.float().div_(255.0)).contiguous(), None)
    return ModelFrames(steps.geometry(x), steps.rescale)


def to_model_input(frames: np.ndarray, transform: Transform) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> the model's preprocessed float [T, 3, h, w] on the CPU."""
    return model_frames(frames, transform).model_input(torch.device("cpu"))


@dataclass(frozen=True)
class EvalSteps:
    """A timm eval transform (resize, centre crop, to-tensor, normalise) for uint8 frames: the
    resize and crop as torchvision v2 steps on uint8 (its bicubic with antialiasing took 0.07 ms a
    frame against 1.9 for timm's v1 ``Resize``, which computes in floats, and 1.4 on float frames;
    128² -> 256, one thread, 2026-12-03), then the scaling to [0, 1] and the normalisation as
    ``x * scale + shift`` in place on one contiguous float copy (0.2-0.7 against 1.0-2.3 ms a
    frame for the steps one after the other on channels-last views, 224², 2026-12-03)."""

    geometry: Transform  # uint8 [T, C, H, W] -> uint8 [T, C, h, w]
    rescale: Rescale
    crops: tuple[tuple, ...]  # the resize and crop steps' arguments: equal crops give equal frames


@functools.lru_cache(maxsize=16)
def eval_steps(transform: Transform) -> EvalSteps | None:
    """``transform`` as :class:`EvalSteps` when it is a timm eval transform: resizes and centre
    crops, a to-tensor step, then a ``Normalize`` or nothing; None for any other transform."""
    from timm.data.transforms import MaybeToTensor
    from torchvision.transforms import CenterCrop, Compose, Normalize, Resize, ToTensor, v2

    steps = list(transform.transforms) if isinstance(transform, Compose) else []
    at = next((i for i, step in enumerate(steps) if isinstance(step, (MaybeToTensor, ToTensor))), None)
    if at is None or not all(type(step) in (Resize, CenterCrop) for step in steps[:at]):
        return None
    after = steps[at + 1 :]
    if after and (len(after) > 1 or type(after[0]) is not Normalize):
        return None
    mean, std = (torch.as_tensor(after[0].mean), torch.as_tensor(after[0].std)) if after else (torch.zeros(1), torch.ones(1))
    mean, std = mean.double(), std.double()
    geometry = v2.Compose([v2.Resize(s.size, s.interpolation, s.max_size, s.antialias) if type(s) is Resize else v2.CenterCrop(s.size) for s in steps[:at]])
    crops = tuple((_size(s.size), s.interpolation, s.max_size, s.antialias) if type(s) is Resize else (_size(s.size),) for s in steps[:at])
    return EvalSteps(geometry, Rescale(tuple((1.0 / (255.0 * std)).tolist()), tuple((-mean / std).tolist())), crops)


def _size(size: int | Sequence[int]) -> tuple[int, ...]:
    return tuple(size) if isinstance(size, Sequence) else (size,)


def crops_alike(light_tf: Transform, rec_tf: Transform) -> bool:
    """Whether two timm eval transforms resize and crop alike, differing at most in their
    normalisation (MobileNetV2 with ImageNet's mean and std beside a ViT with 0.5): their uint8
    crops are then equal, and the decoders make them once for both models."""
    light, rec = eval_steps(light_tf), eval_steps(rec_tf)
    return light is not None and rec is not None and light.crops == rec.crops


@dataclass(frozen=True)
class BothModels:
    """How decoded frames become both models' frames. Given one transform object for both, the
    frames are preprocessed once and both models get the same tensor; given transforms that
    crop alike (:func:`crops_alike`), the frames are cropped once and each model rescales the
    same crops its own way; otherwise each model gets its own crops."""

    light_tf: Transform
    rec_tf: Transform

    @functools.cached_property
    def crop_once(self) -> bool:
        return self.rec_tf is self.light_tf or crops_alike(self.light_tf, self.rec_tf)

    @property
    def transforms(self) -> tuple[Transform, ...]:
        """The transforms the decoders run: the light model's, and the recognizer's unless the
        crops are made once."""
        return (self.light_tf,) if self.crop_once else (self.light_tf, self.rec_tf)

    def prepared(self, frames: np.ndarray) -> list[ModelFrames]:
        """uint8 [T, H, W, 3] -> the frames of :attr:`transforms`, one :class:`ModelFrames` each."""
        return [model_frames(frames, tf) for tf in self.transforms]

    def recognizer_frames(self, prepared: Sequence[ModelFrames]) -> ModelFrames:
        """The recognizer's frames among ``prepared`` (of a video or a block): its own, the light
        model's (one transform for both), or the light model's crops with its rescaling."""
        if not self.crop_once:
            return prepared[1]
        if self.rec_tf is self.light_tf:
            return prepared[0]
        return ModelFrames(prepared[0].pixels, eval_steps(self.rec_tf).rescale)

    def frame_bytes(self, light_input: Sequence[int], rec_input: Sequence[int]) -> int:
        """Bytes of a frame's uint8 crops for both models (timm eval transforms)."""
        return math.prod(light_input) + (0 if self.crop_once else math.prod(rec_input))


class BlockDecoder(Dataset):
    """Item ``b``: block ``blocks[b]`` decoded and preprocessed for both models: the T segment
    centres of every video and, for the training videos, ``offsets - 1`` other candidates of
    every segment too, preprocessed for both models (:class:`BothModels`: once where they share
    their crops)."""

    def __init__(
        self,
        root: Path,
        videos: tuple[VideoRecord, ...],
        blocks: list[tuple[int, list[int]]],
        t: int,
        light_tf: Transform,
        rec_tf: Transform,
        offsets: int = 1,
        *,
        watch: DecodingWatch | None = None,
        skip: dict[int, str] | None = None,
    ):
        """``watch``: where the workers note the video they decode; ``skip``: videos failed
        with the given reason without decoding (a decoder hung or crashed on them)."""
        self.root, self.videos, self.blocks, self.t, self.offsets = Path(root), videos, blocks, t, offsets
        self.models = BothModels(light_tf, rec_tf)
        self.watch, self.skip = watch, dict(skip or {})

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, item: int) -> DecodedBlock:
        """Block ``item``; its frames are joined here, in the decoding worker, so that the main
        process gets one tensor per model (and the loader pins it, on a GPU)."""
        block_id, members = self.blocks[item]
        decoded, failures = [], []
        capacity = self._rows(members)
        models = [BlockRows(capacity) for _ in self.models.transforms]
        sizes = np.array([source_size(self.root / self.videos[index].path) for index in members], dtype=np.int64)
        for index in members:
            record = self.videos[index]
            if index in self.skip:
                failures.append(VideoFailure(index, self.skip[index]))
                continue
            try:
                with self.watch.decoding(index) if self.watch else nullcontext():
                    frames, indices, count, source = decode_candidates(self.root, record, self.t, self._candidates(record))
                prepared = self.models.prepared(frames)
            except VideoReadError as exc:
                failures.append(VideoFailure(index, exc.reason))
                continue
            except Exception as exc:  # a frame folder of mixed sizes, a transform error, ...
                failures.append(VideoFailure(index, f"{type(exc).__name__}: {exc}"))
                continue
            for rows, x in zip(models, prepared):
                rows.append(x, self.root / record.path)
            decoded.append(DecodedVideo(index, indices, count, read_short(source), source.decord_passed_over))
        joined = [rows.joined() for rows in models]
        return DecodedBlock(block_id, members, decoded, failures, joined[0], self.models.recognizer_frames(joined), sizes)

    def largest_block_bytes(self, light_input: Sequence[int], rec_input: Sequence[int]) -> int:
        """Bytes of the largest block's uint8 crops (timm eval transforms), one tensor for both
        models where they share their crops: what a block takes of shared memory."""
        rows = max((self._rows(members) for _, members in self.blocks), default=0)
        return rows * self.models.frame_bytes(light_input, rec_input)

    def _rows(self, members: list[int]) -> int:
        """Frames decoded for a block's videos: T per candidate of each."""
        return sum(self.t * self._candidates(self.videos[index]) for index in members)

    def _candidates(self, record: VideoRecord) -> int:
        """Candidate frames per segment decoded for a video: ``offsets`` for training videos
        (the temporal-shift views), 1 for the others."""
        return self.offsets if record.split == "train" else 1


class BlockRows:
    """One model's frames of a block (:func:`model_frames`), copied video after video into one
    tensor, made at the first video for every row the block can have. In a DataLoader worker it
    is made in shared memory, where the loader would otherwise copy it: on the 2-core machine
    fresh memory costs more than the copy into it (40 against 5 ms for a block of 128 frames at
    224²). For a timm eval transform the rows are the uint8 crops, and the rescaling to the
    model's input waits for the main process (:meth:`ModelFrames.model_input`)."""

    def __init__(self, capacity: int):
        self.capacity, self.rows, self.tensor, self.rescale = capacity, 0, None, None

    def append(self, frames: ModelFrames, source: Path) -> None:
        """The frames of the video at ``source`` after the rows so far. All of a block's frames
        have one size, which the timm eval transforms give by cropping; a transform whose frames
        differ from the block's first video's is refused, naming the video."""
        pixels = frames.pixels
        if self.tensor is None:
            self.tensor, self.rescale = _block_tensor((self.capacity,) + tuple(pixels.shape[1:]), pixels.dtype), frames.rescale
        elif pixels.shape[1:] != self.tensor.shape[1:]:
            raise ValueError(
                f"{source}: preprocessed to frames of {tuple(pixels.shape[1:])} where the videos before it in its block gave "
                f"{tuple(self.tensor.shape[1:])}; the transform must give frames of one size (timm's eval transforms crop to one)"
            )
        self.tensor[self.rows : self.rows + len(pixels)].copy_(pixels)
        self.rows += len(pixels)

    def joined(self) -> ModelFrames:
        """The rows appended so far (a view of the block's tensor) and their rescaling."""
        return ModelFrames(torch.empty(0) if self.tensor is None else self.tensor[: self.rows], self.rescale)


def _block_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor; in shared memory in a DataLoader worker."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def single_thread_worker(formatwarning: Callable[..., str] | None, _: int) -> None:
    """DataLoader worker init: one torch thread per decoding process (the cores are shared), and
    the warnings of the process written as ``formatwarning`` (None: Python's way) — a process
    from a fork server does not inherit the way its loader's process writes them
    (:func:`worker_init`). Where Python's fault handler is on (``PYTHONFAULTHANDLER=1``,
    ``python -X faulthandler``, pytest), it is put back over the crash handlers torch's worker
    set before this runs, so that a decoder's segmentation fault prints the Python stack it
    happened in (``Fatal Python error: Segmentation fault``), where torch's one line, which it
    replaces, named no place; written to the standard error as the process began, which decord's
    calls take from it meanwhile (:func:`pipeline.decoders.fault_handler_on_a_copy_of_standard_error`).
    A scheduler's stop signals, which reach every process of a job, are the loader's process's
    to act on (:mod:`pipeline.stop_signals`): a decoder ended by one would be taken for one that
    died on its video; it ends with that process (torch's workers watch it), or is killed at
    its pass's end and at that process's exit (:class:`DecodingLoader`)."""
    torch.set_num_threads(1)
    leave_to_the_command()
    fault_handler_on_a_copy_of_standard_error()
    if formatwarning is not None:
        warnings.formatwarning = formatwarning


def worker_init(formatwarning: Callable[..., str]) -> Callable[[int], None]:
    """The decoding processes' init (:func:`single_thread_worker`), carrying ``formatwarning``
    (this process's ``warnings.formatwarning``: the commands print the toolkit's warnings as one
    line) where it can be sent to a process that is not forked: a function found by its module
    and name (a fork server's processes get it pickled, by name); Python's way otherwise."""
    module = sys.modules.get(getattr(formatwarning, "__module__", None) or "")
    by_name = getattr(module, getattr(formatwarning, "__qualname__", ""), None) is formatwarning
    return functools.partial(single_thread_worker, formatwarning if by_name else None)


def as_is(items):
    """DataLoader collate that keeps the decoded items as they are."""
    return items


CPU_CORES_PER_DECODER = 8
# Cores a GPU run keeps from its decoders: the main process (copies, launches, the pin thread) and
# the cache's writer thread (compression).
GPU_FEEDER_CORES = 2


def _ranks_on_node() -> int:
    """torchrun's processes on this node (``LOCAL_WORLD_SIZE``; 1 without torchrun), which share
    its cores and its shared memory."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def decoding_workers(requested: int | None, device: torch.device) -> int:
    """DataLoader decoding processes for a features run: ``requested``, or by default one per
    ``CPU_CORES_PER_DECODER`` cores of this process on the CPU (at least one), and on a GPU every
    core of it but ``GPU_FEEDER_CORES`` (at least 2). The cores are shared by the torchrun ranks
    of one node.

    With the paper's backbones one decoding process supplies about 240-350 frames/s (each frame
    preprocessed once for both models). On the CPU the decoders take their cores from the
    models, which through ONNX Runtime take about 40 frames/s on 2 cores (about 50 core-ms a
    frame against 3-4 for decoding); on the 2-core machine a second decoder lowered the full
    stage from 0.90 to 0.85 of the models' rate (README, Benchmarks). On a GPU the models leave
    the cores alone and outrun any number of decoders: on an H200 both run 512 frames in about
    49 ms (17 + 32, bf16, 2026-12-04), some 10,000 frames/s, 30 decoders' worth."""
    if requested is not None:
        return requested
    cores = len(os.sched_getaffinity(0)) // _ranks_on_node()
    if torch.device(device).type != "cpu":
        return max(2, cores - GPU_FEEDER_CORES)
    return max(1, cores // CPU_CORES_PER_DECODER)


def per_video_workers(requested: int | None, device: torch.device) -> int:
    """Decoding processes of evaluate's and predict's per-video decoders: ``requested``, else 2
    on the CPU (where they share the cores with the models, as before) and on a GPU the features
    stage's default (:func:`decoding_workers`), since there decoding bounds them too."""
    if requested is not None:
        return requested
    return 2 if torch.device(device).type == "cpu" else decoding_workers(None, device)


# Blocks a decoding process has decoded ahead and waiting (DataLoader's prefetch_factor).
BLOCKS_AHEAD = 2
SHARED_MEMORY = Path("/dev/shm")


def workers_within_shared_memory(workers: int, block_bytes: int, asked: bool, shm: Path = SHARED_MEMORY) -> int:
    """``workers`` decoding processes, or as many as the free shared memory holds blocks for:
    each holds up to ``BLOCKS_AHEAD`` decoded blocks and one it decodes, the main process one or
    two it runs, and torchrun ranks of a node share it. Lowered, with a warning, where the count
    is the default (a container's shared memory is often 64 MiB); an error where it was
    ``--workers``. 0 decodes in the main process, without shared memory."""
    if workers == 0 or block_bytes <= 0 or not shm.is_dir():
        return workers
    free = shutil.disk_usage(shm).free // _ranks_on_node()
    fit = max(0, (free - 2 * block_bytes) // ((BLOCKS_AHEAD + 1) * block_bytes))
    if workers <= fit:
        return workers
    why = (f"each holds up to {BLOCKS_AHEAD + 1} decoded batches of {block_bytes / 2**20:.3g} MiB in shared memory and {shm} has "
           f"{free / 2**20:.0f} MiB free for this process, room for {fit}")
    if asked:
        raise ValueError(f"--workers {workers}: {why}; lower --workers, or give {shm} more room (docker run --shm-size)")
    warnings.warn(f"decoding processes lowered from {workers} to {fit}: {why} (docker run --shm-size gives it more)", RuntimeWarning, stacklevel=2)
    return int(fit)


def worker_start(dataset: Dataset) -> multiprocessing.context.BaseContext | None:
    """How decoding processes start: Python's start method (None), but where that is a fork
    server (Python 3.14's default on Linux), one that imports this module (torch, the decoders,
    the processes' set-up), timm's transforms (which :func:`eval_steps` imports in the process
    that meets a frame first: 1.9 s a loader, every epoch's two loaders of a fine-tuning run,
    before 2026-12-07) and the dataset's before it forks them, so that a loader's processes start
    ready rather than import all that anew (0.05 s against 1.4-1.8 s a loader of two on the
    2-core machine). The preload is taken where this process has not started its fork server."""
    if (multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]) != "forkserver":
        return None
    context = multiprocessing.get_context("forkserver")
    # Python's own, the workers' set-up's, timm's transforms, the dataset's, and the server's leaving of the stop signals to the command
    context.set_forkserver_preload(["__main__", __name__, "timm.data.transforms", type(dataset).__module__, "pipeline.decoding_server"])
    return context


class DecodingLoader(DataLoader):
    """A DataLoader whose iterators' worker processes are killed at this process's exit where
    still alive (:func:`pipeline.decode_watch.ended_at_exit`): they ignore the SIGTERM with
    which Python would end them."""

    def __iter__(self):
        return decode_watch.ended_at_exit(super().__iter__())


def decoding_loader(dataset: Dataset, workers: int, *, batch_size: int | None = None, collate_fn: Callable[[Any], Any] = as_is, pin_memory: bool = False, watched: bool = True) -> DataLoader:
    """The items of ``dataset`` in order (``batch_size`` of them collated, by default into a list;
    None: one by one), decoded up to :data:`BLOCKS_AHEAD` ahead by each of ``workers`` processes
    of one thread (0: in the main process), killed at this process's exit where still alive
    (:class:`DecodingLoader`). Watched (with workers), a wait of more than
    :data:`pipeline.decode_watch.WATCH_POLL_S` seconds for an item is the loader's error, which
    :func:`pipeline.decode_watch.watched` takes up."""
    return DecodingLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=BLOCKS_AHEAD if workers > 0 else None,
        worker_init_fn=worker_init(warnings.formatwarning) if workers > 0 else None,
        collate_fn=collate_fn,
        timeout=decode_watch.WATCH_POLL_S if workers > 0 and watched else 0.0,
        multiprocessing_context=worker_start(dataset) if workers > 0 else None,
        # the workers' base seed (each item seeds itself) drawn from a generator of its own: a loader
        # made anew draws nothing from torch's global one, whose state a stopped run saves and goes on with
        generator=torch.Generator(),
    )


class BlockInference:
    """Runs the light model and the recognizer on all frames of a block, their inputs made on
    ``device`` (where the runners take them) from the block's frames."""

    def __init__(self, light: Runner, recognizer: Runner, device: torch.device):
        self.light, self.recognizer, self.device = light, recognizer, torch.device(device)

    def __call__(self, block: DecodedBlock, layout_rows: dict[str, tuple[tuple[int, ...], str]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The cache rows of the block's videos, in the order of its members (failed ones left
        zero but for their source sizes and decoder rules), and their status (DONE, or FAILED for the block's failures)."""
        count, row_of = len(block.members), block.positions()
        rows = {name: np.zeros((count,) + shape, dtype=dtype) for name, (shape, dtype) in layout_rows.items()}
        rows["source_sizes"][:] = block.source_sizes
        rows["decoder_rules"][:] = DECODER_RULES
        status = np.full(count, DONE, dtype=np.int8)
        for failure in block.failures:
            status[row_of[failure.index]] = FAILED
        if not block.videos:
            return rows, status
        light_frames, rec_frames = both_moved(block.light, block.rec, lambda frames: frames.on(self.device))  # shared crops copied once
        inputs = light_frames.model_input(self.device)
        light, _ = self.light(inputs)
        if rec_frames is not light_frames:
            inputs = rec_frames.model_input(self.device)
        rec, logits = self.recognizer(inputs)
        outputs = {name: value.float().cpu().numpy() for name, value in (("light_features", light), ("rec_features", rec), ("rec_logits", logits))}
        at = 0
        for video in block.videos:  # a video's frames: S rows of T, the centres first
            views, t = video.frame_indices.shape
            row = row_of[video.index]
            per_view = {name: value[at : at + views * t].reshape(views, t, -1) for name, value in outputs.items()}
            for name, value in {**per_view, "frame_indices": video.frame_indices}.items():
                rows[name][row] = value[0]
                if views > 1:
                    rows[SHIFT_PREFIX + name][row] = value[1:]
            rows["num_frames"][row] = video.num_frames
            at += views * t
        return rows, status
