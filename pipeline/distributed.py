"""Sharding of work across processes: ``torchrun`` ranks and/or ``--shard i/n`` jobs."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

# Imported before any process group exists, on purpose: its functions take ``group=group.WORLD``
# as a default, read when the module is first imported. DDP imports it (through
# ``torch.distributed._shard``) once the group exists, and those ten defaults then hold the world
# group to the process's end: ``destroy_process_group`` could not free it, gloo's threads ran on
# into the interpreter's exit, where a rank now and then aborted ("terminate called without an
# active exception") after its work was done. (A torch built without distributed support has no
# such module, and no process group.)
if torch.distributed.is_available():
    import torch.distributed.nn  # noqa: F401

from pipeline.config import EVEN_SHARES, RANK_WAIT_S, UNEVEN_SHARES


# One process's part of work divided by shards: (i, n) takes the shards s with s % n == i
# (a store's shards of videos, a list's videos); (0, 1) the whole.
Share = tuple[int, int]
WHOLE: Share = (0, 1)


@dataclass(frozen=True)
class Worker:
    """Which share of the work this process does, and on which device."""

    shard: int
    num_shards: int
    rank: int  # rank within torchrun (0 without it)
    world_size: int
    device: torch.device

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def owns(self, item: int) -> bool:
        return item % self.num_shards == self.shard

    @property
    def share(self) -> Share:
        return self.shard, self.num_shards


def busiest_share(num_items: int, shard_items: int, num_shares: int) -> int:
    """The most items one of ``num_shares`` shares holds, items dealt by shards of
    ``shard_items`` consecutive ones (the last one short), shard s to share s % ``num_shares``
    (:meth:`Worker.owns`)."""
    sizes = np.minimum(shard_items, num_items - np.arange(0, num_items, shard_items))
    return int(np.bincount(np.arange(len(sizes)) % num_shares, weights=sizes, minlength=num_shares).max())


def evener_shard_size(num_items: int, shard_items: int, step: int, num_shares: int, even: float) -> int | None:
    """The largest shard size below ``shard_items``, a multiple of ``step``, whose shares are
    even to ``even`` (:func:`shares_even`); None where none is."""
    return next((size for size in range(shard_items - step, 0, -step) if shares_even(num_items, size, num_shares, even)), None)


def shares_even(num_items: int, shard_items: int, num_shares: int, even: float = UNEVEN_SHARES) -> bool:
    """Whether shards of ``shard_items`` fall evenly enough to ``num_shares`` shares: an even
    split's items over the busiest share's at least ``even`` (by default
    :data:`~pipeline.config.UNEVEN_SHARES`)."""
    return num_items / num_shares >= even * busiest_share(num_items, shard_items, num_shares)


def even_shard_size(num_items: int, shard_items: int, step: int, num_shares: int) -> int:
    """The shard size of a new store filled in ``num_shares`` shares: ``shard_items`` where its
    shares are even enough (:func:`shares_even`), else the largest multiple of ``step`` below it
    whose busiest share holds at most 1 / :data:`~pipeline.config.EVEN_SHARES` times an even
    split's items, so that no share's writer waits long on another's (``shard_items`` where
    none is)."""
    if shares_even(num_items, shard_items, num_shares):
        return shard_items
    return evener_shard_size(num_items, shard_items, step, num_shares, EVEN_SHARES) or shard_items


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), with 0 <= i < n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"shard {text}: need 0 <= i < n")
    return index, count


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``: the GPU of this rank (torchrun's ``LOCAL_RANK``) when CUDA is available, else the
    CPU; ``cuda`` without an index: the GPU of this rank too (every rank on ``cuda:0`` would stop
    NCCL at its first collective); ``cuda:N``: that GPU. A GPU that is not there is a clear error,
    not CUDA's "invalid device ordinal" at the first copy, and so is any other name (the stages
    run on the CPU or CUDA GPUs: ``gpu`` was torch's list of device types, ``mps`` a failure at
    the first model)."""
    if requested == "auto" and not torch.cuda.is_available():
        warn_unused_gpu()
        return torch.device("cpu")
    try:
        device = torch.device(requested if requested != "auto" else "cuda")
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index):
        raise ValueError(f"device {requested!r}: the stages run on the CPU or CUDA GPUs; give auto, cpu, cuda or cuda:N")
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} asked for, but CUDA is not available")
    per_rank = device.index is None
    if per_rank:
        device = torch.device("cuda", local_rank)
    visible = torch.cuda.device_count()
    if device.index >= visible:
        whose = f"local rank {local_rank} takes {device}" if per_rank else f"device {requested!r} asked for"
        hint = "; start torchrun with --nproc_per_node at most the GPUs of the node" if per_rank else ""
        raise ValueError(f"{whose}, but {visible} CUDA device{'s' if visible != 1 else ''} visible{hint} (CUDA_VISIBLE_DEVICES picks which)")
    return device


# Present where the NVIDIA kernel driver is loaded: its first line names the driver's version.
NVIDIA_DRIVER_INFO = Path("/proc/driver/nvidia/version")


def warn_unused_gpu() -> None:
    """Warn where an NVIDIA driver is loaded but torch cannot use the GPU (torch built for a newer
    CUDA than the driver runs, or without CUDA): ``auto`` would run on the CPU unnoticed."""
    try:
        line = NVIDIA_DRIVER_INFO.read_text().splitlines()[0]
    except (OSError, IndexError):
        return
    driver = re.search(r"Kernel Module\s+(\S+)", line)
    warnings.warn(
        f"an NVIDIA driver is loaded ({driver[1] if driver else line.strip()}) but torch {torch.__version__} "
        f"(CUDA {torch.version.cuda or 'none'}) cannot use the GPU, so this runs on the CPU; install the torch "
        "build for the driver's CUDA version (README, Set-up), or pass --device cpu to say so",
        RuntimeWarning,
        stacklevel=2,
    )


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that a timer reads true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setup_worker(shard: tuple[int, int], device: str) -> Worker:
    """Join the torchrun process group when launched by torchrun; combine its ranks with the
    job-level shard so that ``n`` jobs of ``w`` ranks split the work ``n*w`` ways."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(seconds=RANK_WAIT_S))
    index, count = shard
    return Worker(index * world + rank, count * world, rank, world, dev)


def barrier(worker: Worker) -> None:
    if worker.world_size > 1:
        torch.distributed.barrier()


def gathered(part: Any, worker: Worker) -> list[Any]:
    """Every rank's ``part``, in rank order, on every rank (a collective: all ranks call it)."""
    if worker.world_size == 1:
        return [part]
    parts: list[Any] = [None] * worker.world_size
    torch.distributed.all_gather_object(parts, part)
    return parts


T = TypeVar("T")


def from_leader(make: Callable[[], T], worker: Worker) -> T:
    """``make()`` run by rank 0 alone, its value given to every rank (a collective: all ranks
    call it): one reading of what the ranks must agree on, such as a list of videos on the
    standard input, which torchrun hands to one rank of its choosing. Where ``make()`` raises,
    every rank raises its error (rank 0 the original), so that each stops with its message
    rather than at a closed connection; an error that does not survive pickling (one holding an
    open file, or whose class takes other arguments than it keeps) reaches the others as a
    ``RuntimeError`` with its type and message."""
    if worker.world_size == 1:
        return make()
    box: list[Any] = [None]
    raised: Exception | None = None
    if worker.is_leader:
        try:
            box[0] = (make(), None)
        except Exception as error:
            raised = error
            box[0] = (None, error if _survives_pickling(error) else RuntimeError(f"{type(error).__name__}: {error}"))
    torch.distributed.broadcast_object_list(box, src=0)
    if raised is not None:
        raise raised
    value, error = box[0]
    if error is not None:
        raise error
    return value


def _survives_pickling(error: Exception) -> bool:
    """Whether ``error`` can be pickled and rebuilt, as a broadcast to the other ranks does."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return False
    return True


def merged_across_ranks(found: dict[Any, Any], worker: Worker) -> dict[Any, Any]:
    """Every rank's ``found`` in one dict, on every rank (a collective: all ranks call it)."""
    return {key: value for part in gathered(found, worker) for key, value in part.items()}


def teardown(worker: Worker) -> None:
    if worker.world_size > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@contextmanager
def joined_worker(shard: tuple[int, int], device: str) -> Iterator[Worker]:
    """:func:`setup_worker` for the block, the process group left (:func:`teardown`) when it ends,
    by an error too."""
    worker = setup_worker(shard, device)
    try:
        yield worker
    finally:
        teardown(worker)
