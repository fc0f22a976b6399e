"""Per-video results computed once into a Zarr store beside a feature cache.

Rows are computed and written a shard of :data:`~pipeline.cache.SHARD_VIDEOS` videos at a
time, their ``status`` last, so a killed run keeps every finished shard and resumes at the
first unfinished one; a second writer on the same store is refused (its output lock). A row
that fails is marked FAILED and computed again by the next run. The all-frames pass and
evaluate's decoded NSNet row keep their results this way.

Several processes (torchrun ranks, ``--shard i/n`` jobs) fill one store together, each the
shards ``s`` with ``s % n == i`` under a lock of its share, as the features stage divides its
cache; a run of the whole store afterwards computes only what they left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.cache import DONE, FAILED, RECOMPUTE_ROWS, RESUMABLE, SHARD_VIDEOS, ZarrWriter, clear_out_of_space, file_lock, output_lock
from pipeline.distributed import WHOLE, Share

# Computes the given rows: yields (row, its arrays' values) or (row, why it failed).
RowComputer = Callable[[list[int]], Iterable[tuple[int, dict[str, Any] | str]]]


def rows_digest(*keys: np.ndarray) -> str:
    """sha256 of integer arrays (as int64) that say which rows a store holds: the videos, and
    what else picks a row's content (the chosen frames)."""
    return hashlib.sha256(b"".join(np.asarray(key, dtype=np.int64).tobytes() for key in keys)).hexdigest()


@dataclass
class StoredRows:
    """A row store's arrays read whole (``status`` aside; empty for a share of the store), what
    this call computed, and the rows that failed in it, with their reasons."""

    path: Path
    arrays: dict[str, np.ndarray]
    computed: int
    errors: dict[int, str]


def share_lock(path: Path, share: Share) -> AbstractContextManager[None]:
    """The lock a process holds while it fills ``share`` of the store at ``path``: the store's
    output lock for the whole, ``.<store>.share-i-of-n.lock`` beside it for a share."""
    if share == WHOLE:
        return output_lock(path)
    index, count = share
    return file_lock(path.with_name(f".{path.name}.share-{index}-of-{count}.lock"), blocking=False, hint="it is computing the same share of this store; wait for it or give another --shard")


def fill_rows(path: Path, fp: str, attrs: dict[str, Any], arrays: dict[str, tuple[tuple[int, ...], str]], computer: Callable[[], RowComputer], progress: bool = True, desc: str = "rows", share: Share = WHOLE) -> StoredRows:
    """The store at ``path`` (fingerprint ``fp``, ``attrs``, ``arrays`` of one row per video
    plus ``status``) with every row of ``share`` not yet DONE computed by ``computer()`` —
    called once, and only when there is a row to compute (it may load a model) — a shard at a
    time."""
    computed, errors = 0, {}
    index, count = share
    with share_lock(path, share):
        writer = ZarrWriter(path, fp, attrs, arrays, SHARD_VIDEOS, RECOMPUTE_ROWS)
        status = np.asarray(writer.arrays["status"][:])
        starts = range(index * SHARD_VIDEOS, len(status), count * SHARD_VIDEOS)
        mine = np.flatnonzero(np.arange(len(status)) // SHARD_VIDEOS % count == index)
        if (status[mine] != DONE).any():
            compute = computer()
            with tqdm(total=len(mine), initial=int((status[mine] == DONE).sum()), unit="video", desc=desc, disable=not progress) as bar:
                for start in starts:
                    stop = min(len(status), start + SHARD_VIDEOS)
                    todo = [row for row in range(start, stop) if status[row] != DONE]
                    if not todo:
                        continue
                    block = {name: np.asarray(writer.arrays[name][start:stop]) for name in arrays if name != "status"}
                    marks = status[start:stop].copy()
                    for row, result in compute(todo):
                        if isinstance(result, str):
                            errors[row], marks[row - start] = result, FAILED
                        else:
                            for name, value in result.items():
                                block[name][row - start] = value
                            marks[row - start] = DONE
                            computed += 1
                        bar.update(1)
                    with clear_out_of_space(path, RESUMABLE):
                        writer.write_block(start, block, marks)
        values = {name: np.asarray(writer.arrays[name][:]) for name in arrays if name != "status"} if share == WHOLE else {}
    return StoredRows(path, values, computed, errors)
