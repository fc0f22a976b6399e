"""Fine-tuning a timm backbone on a video dataset: frame-wise or TSN-style, and video-level
validation. Frames are read through the same decoding (:mod:`pipeline.video`) and
preprocessing (timm transforms, :func:`pipeline.extract.model_frames`) as the features stage.

Every random choice of a training item (its frames, its augmentation) is seeded from
``(seed, epoch, video index)``, and the shuffling from ``(seed, epoch)``: an epoch is the same
whichever worker loads which item, and a run resumed at an epoch boundary, or at the batch a
scheduler's signal stopped it (:mod:`pipeline.stop_signals`), continues exactly as an
uninterrupted run. A video found cut short (:func:`~pipeline.video.read_planned`) is read
over the frames that decode from then on (:class:`ReadShort`), its frames drawn as if it had
been known short from the start.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from pipeline.datasets import VideoRecord
from pipeline.decode_watch import DecodingWatch, WatchedDecoding
from pipeline.extract import ModelFrames, decoding_loader, model_frames, to_model_input
from pipeline.metrics import mean_average_precision, top1_accuracy, video_scores
from pipeline.sampling import segment_random_indices, uniform_frame_indices
from pipeline.stop_signals import StopSignals
from pipeline.video import VideoReadError, open_record, read_planned, read_short

Transform = Callable[[torch.Tensor], torch.Tensor]


def soft_targets(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """One-hot for one label; for several, the mass split evenly among them."""
    target = torch.zeros(num_classes)
    target[list(labels)] = 1.0 / len(labels)
    return target


ITEM, GLOBAL, SHUFFLE = 0, 1, 2  # independent random streams of an epoch


def item_seed(seed: int, epoch: int, index: int = 0, stream: int = ITEM) -> int:
    """A 32-bit seed for one stream of one epoch (``index``: the video, for the ITEM stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream, index]).generate_state(1)[0])


@dataclass(frozen=True)
class ReadShort:
    """A video read short, a file cut short: its number in a dataset's list, the frames that
    decode and the frames its container lists."""

    video: int
    frames: int
    listed: int


@dataclass
class Shortened:
    """A dataset's item of a video this read found short, and the finding."""

    item: Any
    found: ReadShort


def read_clip(root: Path, video: VideoRecord, number: int, known: dict[int, ReadShort], plan: Callable[[int], np.ndarray]) -> tuple[np.ndarray, np.ndarray, ReadShort | None]:
    """The frames of video ``number`` at ``plan(count)`` and those indices, planned over the
    frames that decode where an earlier read found it short (in ``known``: it is not decoded past
    them again, nor said again), and what this read found: a :class:`ReadShort` where it read
    the video short and ``known`` had not said so, else None."""
    source = open_record(root, video)
    earlier = known.get(number)
    if earlier is not None and earlier.frames < source.num_frames:
        source.shorten(earlier.frames)
    frames, indices = read_planned(source, plan)
    short = read_short(source) if earlier is None else None
    return frames, indices, None if short is None else ReadShort(number, *short)


class TrainClips(Dataset):
    """Item ``i``: ``segments`` frames of training video ``i mod V`` (one random frame per
    segment), augmented with timm's training transform, and the video's soft target. An epoch
    visits every video ``repeats`` times, each time with other random frames. A video that
    cannot be decoded yields :class:`Unreadable` (left out by the collate function, counted by
    the trainer), one in ``skip`` (by video number) None, unread, and one this read found short
    a :class:`Shortened` item; ``short`` holds the videos known short. ``watch`` and ``skip`` are
    set by :func:`watched_batches`."""

    def __init__(self, root: Path, videos: Sequence[VideoRecord], num_classes: int, segments: int, transform: Transform, seed: int, repeats: int = 1):
        self.root, self.videos, self.num_classes = Path(root), list(videos), num_classes
        self.segments, self.transform, self.seed, self.repeats = segments, transform, seed, repeats
        self.epoch = 0
        self.watch: DecodingWatch | None = None
        self.skip: dict[int, str] = {}
        self.short: dict[int, ReadShort] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos) * self.repeats

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | Shortened | Unreadable | None:
        seed = item_seed(self.seed, self.epoch, index)
        torch.manual_seed(seed)  # timm's random crop, flip and jitter draw from these
        random.seed(seed)
        number = index % len(self.videos)
        if number in self.skip:
            return None
        video = self.videos[number]
        try:
            with self.watch.decoding(number) if self.watch else nullcontext():
                # each plan draws afresh from the item's seed: the frames of a video found short
                # are those drawn where it was known short before the read
                frames, _, found = read_clip(self.root, video, number, self.short, lambda count: segment_random_indices(count, self.segments, np.random.default_rng(seed)))
        except VideoReadError as exc:
            return Unreadable(number, exc.reason)
        clip = torch.stack([to_model_input(frame[None], self.transform)[0] for frame in frames])
        item = (clip, soft_targets(video.labels, self.num_classes))
        return item if found is None else Shortened(item, found)


class ValClips(Dataset):
    """Item ``i``: the T uniformly pre-sampled frames of video ``i``, preprocessed exactly as
    the features stage does (:class:`Unreadable` if it cannot be decoded, None if in ``skip``,
    :class:`Shortened` where this read found it short; ``short`` holds the videos known short).
    The frames cross from the
    decoding worker as :class:`~pipeline.extract.ModelFrames` (uint8 crops for a timm eval
    transform); collate with :func:`collate_val_clips`. ``watch`` and ``skip`` are set by
    :func:`watched_batches`."""

    def __init__(self, root: Path, videos: Sequence[VideoRecord], num_frames: int, transform: Transform):
        self.root, self.videos, self.num_frames, self.transform = Path(root), list(videos), num_frames, transform
        self.watch: DecodingWatch | None = None
        self.skip: dict[int, str] = {}
        self.short: dict[int, ReadShort] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[int, ModelFrames] | Shortened | Unreadable | None:
        if index in self.skip:
            return None
        try:
            with self.watch.decoding(index) if self.watch else nullcontext():
                frames, _, found = read_clip(self.root, self.videos[index], index, self.short, lambda count: uniform_frame_indices(count, self.num_frames))
        except VideoReadError as exc:
            return Unreadable(index, exc.reason)
        item = (index, model_frames(frames, self.transform))
        return item if found is None else Shortened(item, found)


def collate_val_clips(items: list[tuple[int, ModelFrames]]) -> tuple[torch.Tensor, ModelFrames]:
    """The video indices [B] and the frames of the B clips one after the other [B * T]."""
    indices, frames = zip(*items)
    return torch.tensor(indices), ModelFrames.cat(frames)


@dataclass
class Unreadable:
    """A video a decoding worker could not read: its number in the dataset's list, and why."""

    video: int
    reason: str


@dataclass
class Collated:
    """A batch of the videos read (None: none was), those that could not be, and those found
    read short."""

    data: tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, ModelFrames] | None
    unreadable: list[Unreadable]
    short: list[ReadShort] = field(default_factory=list)

    def pin_memory(self) -> Collated:
        """The batch in page-locked memory (what a DataLoader with ``pin_memory=True`` calls, on a
        GPU), so that its copy to the GPU runs asynchronously."""
        return self if self.data is None else replace(self, data=tuple(part.pin_memory() for part in self.data))


def drop_failed(batch: list[Any], collate: Callable[[list[Any]], Any] = torch.utils.data.default_collate) -> Collated:
    """Collate (``collate``) the items read; undecodable videos (:class:`Unreadable`, or None
    for one already known) are left out, and the findings of :class:`Shortened` items noted."""
    short = [item.found for item in batch if isinstance(item, Shortened)]
    kept = [item.item if isinstance(item, Shortened) else item for item in batch if item is not None and not isinstance(item, Unreadable)]
    return Collated(collate(kept) if kept else None, [item for item in batch if isinstance(item, Unreadable)], short)


def epoch_order(size: int, shuffle_seed: int) -> list[int]:
    """The items of an epoch in the order torch's ``RandomSampler`` gives them with a generator
    seeded ``shuffle_seed``."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(shuffle_seed)).tolist()


def watched_batches(
    decoding: WatchedDecoding,
    dataset: TrainClips | ValClips,
    order: Sequence[int],
    batch_size: int,
    workers: int,
    collate: Callable[[list[Any]], Any] = torch.utils.data.default_collate,
    pin_memory: bool = False,
) -> Iterator[Any]:
    """The batches of the items ``order`` of ``dataset`` (undecodable videos left out; None for a
    batch of none), decoded by ``workers`` processes that ``decoding`` watches: where a decoder
    hangs or dies on a video, it is left out from then on, and a new loader goes on from the
    first batch not given. Every video left out, unreadable or failed in its decoder, is noted
    in ``decoding.skip`` (video -> reason), and later loaders do not read it again; every video
    found read short in ``dataset.short``, and later loaders read it so. ``pin_memory``:
    the batches in page-locked memory (on a GPU)."""
    watched = decoding.attached(dataset)
    given = 0

    def from_the_next() -> Iterator[Any]:
        rest = Subset(watched, list(order[given * batch_size :]))
        return iter(decoding_loader(rest, workers, batch_size=batch_size, collate_fn=partial(drop_failed, collate=collate), pin_memory=pin_memory))

    for collated in decoding.items(from_the_next, lambda collated: collated.data is not None):
        decoding.skip.update({u.video: u.reason for u in collated.unreadable})
        dataset.short.update({s.video: s for s in collated.short})
        given += 1
        yield collated.data


@dataclass
class EpochStats:
    """A rank's share of an epoch as far as it went: its training loss summed over the clips it
    trained on (undecodable videos are left out), and the batches of its order given."""

    loss_sum: float = 0.0
    clips: int = 0
    batches: int = 0

    @property
    def loss(self) -> float:
        """The mean training loss over the clips."""
        return self.loss_sum / max(self.clips, 1)

    @staticmethod
    def together(parts: Sequence[EpochStats]) -> EpochStats:
        """The stats of the ranks' shares of an epoch as one."""
        return EpochStats(sum(part.loss_sum for part in parts), sum(part.clips for part in parts), sum(part.batches for part in parts))


def clip_logits(model: nn.Module, clips: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Per-frame logits [B, N, C] of clips [B, N, 3, h, w] (bf16 autocast on GPU)."""
    b, n = clips.shape[:2]
    x = clips.flatten(0, 1).to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(x).float().view(b, n, -1)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device,
    progress=None,
    *,
    done: EpochStats | None = None,
    stops: StopSignals | None = None,
) -> EpochStats:
    """One pass over the loader, going on from ``done`` (the part of the epoch a stopped run
    saved; the loader gives the rest). Clips are [B, N, 3, h, w]; logits are averaged over the N
    segments before the loss (TSN consensus; N=1 is frame-wise training). A batch of which no
    video decoded (None) is skipped, and so is one of a single frame (BatchNorm cannot train on
    it: an epoch's last batch of one clip, frame-wise); under DDP the rank then has a step fewer
    than the others, which DDP's join makes up for (the ranks that finish first shadow the
    others' gradient reductions). ``stops``: the pass ends early after the step at which a stop
    signal is agreed (:meth:`~pipeline.stop_signals.StopSignals.after_step`)."""
    model.train()
    stats = replace(done) if done is not None else EpochStats()
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    with (stops.join_context(model) if stops is not None else model.join()) if ddp else nullcontext():
        for batch in loader:
            stats.batches += 1
            trained = batch is not None and batch[0].shape[:2].numel() >= 2
            if trained:
                x, target = batch
                b = x.shape[0]
                loss = loss_fn(clip_logits(model, x, device).mean(dim=1), target.to(device, non_blocking=True))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                stats.loss_sum += float(loss.detach()) * b
                stats.clips += b
                if progress is not None:
                    progress.update(b)
                    progress.set_postfix(loss=f"{stats.loss:.4f}")
            if stops is not None and stops.after_step(trained):
                break
    return stats


@torch.inference_mode()
def validation_scores(model: nn.Module, loader: Iterable[Any], device: torch.device, stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(video indices [N], video scores [N, C]: the mean frame softmax over the T uniform frames)
    of the videos ``loader`` gives, in batches of :func:`collate_val_clips` (``None`` for a batch
    of which no video decoded). Each batch keeps its video scores, not its frame logits.
    ``stop()``, asked after each batch: where it says so, the videos scored so far."""
    model.eval()
    scored = []
    for batch in loader:
        if batch is not None:
            index, frames = batch
            clips = frames.model_input(device).unflatten(0, (len(index), -1))
            scored.append((index.numpy(), video_scores(clip_logits(model, clips, device).cpu().numpy())))
        if stop is not None and stop():
            break
    return joined_scores(scored)


def joined_scores(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Several (video indices, video scores) as one: batches, or the ranks' shares."""
    kept = [part for part in parts if len(part[0])]
    if not kept:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate([order for order, _ in kept]), np.concatenate([scores for _, scores in kept])


def validation_metrics(order: np.ndarray, scores: np.ndarray, videos: Sequence[VideoRecord]) -> dict[str, float]:
    """Video-level top-1 and mAP of the videos ``order`` (indices into ``videos``) scored ``scores``."""
    if not len(order):
        return {"top1": float("nan"), "mAP": float("nan"), "videos": 0}
    labels = [videos[i].labels for i in order]
    return {"top1": top1_accuracy(scores, labels), "mAP": mean_average_precision(scores, labels), "videos": int(len(order))}
