"""Per-video results computed once into a Zarr store beside a feature cache.

Rows are computed and written a shard of :data:`~pipeline.cache.SHARD_VIDEOS` videos at a
time (fewer where a store filled in shares would give them unevenly:
:func:`~pipeline.distributed.even_shard_size`), their ``status`` last, so a killed run keeps
every finished shard and resumes at the first unfinished one; a second writer on the same
store is refused (its output lock). A row that fails is marked FAILED and computed again by the
next run, as is a shard holding a damaged chunk (its checksum does not match: :func:`fill_rows`).
The all-frames pass and evaluate's decoded NSNet row keep their results this way.

Several processes (torchrun ranks, ``--shard i/n`` jobs) fill one store together, each the
shards ``s`` with ``s % n == i`` under a lock of its share, as the features stage divides its
cache (a process of another count at work now is refused: :func:`share_lock`); a run of the
whole store afterwards computes only what they left.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.cache import DONE, FAILED, PENDING, RECOMPUTE_ROWS, RESUMABLE, SHARD_VIDEOS, CacheError, CheckedArray, Damage, ZarrWriter, check_fingerprint, clear_out_of_space, output_lock_path, read_block, require_writable, reset_damaged, share_writer_lock
from pipeline.distributed import WHOLE, Share, even_shard_size
from pipeline.file_rights import can_write_in, warn_if_kept_from_the_group

# Where a new store's shards are made smaller than SHARD_VIDEOS, so that its shares are even, a
# multiple of this many videos.
SHARD_STEP = 8

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
    output lock for the whole, ``.<store>.share-i-of-n.lock`` beside it for a share; refused
    beside a process filling it in another count of shares now (:func:`~pipeline.cache.share_writer_lock`)."""
    index, count = share
    if share == WHOLE:
        lock, hint = output_lock_path(path), "it is computing the same output; run again when it has finished to use its result"
    else:
        lock, hint = path.with_name(f".{path.name}.share-{index}-of-{count}.lock"), "it is computing the same share of this store; wait for it or give another --shard"
    whole, shares = output_lock_path(path).name, re.compile(re.escape(f".{path.name}.share-") + r"\d+-of-(\d+)\.lock")

    def count_of(name: str) -> int | None:
        named = shares.fullmatch(name)
        return 1 if name == whole else int(named[1]) if named else None

    return share_writer_lock(lock, count, path.with_name(f".{path.name}.dividing.lock"), count_of, hint)


def fill_rows(path: Path, fp: str, attrs: dict[str, Any], arrays: dict[str, tuple[tuple[int, ...], str]], computer: Callable[[], RowComputer], progress: bool = True, desc: str = "rows", share: Share = WHOLE) -> StoredRows:
    """The store at ``path`` (fingerprint ``fp``, ``attrs``, ``arrays`` of one row per video
    plus ``status``) with every row of ``share`` not yet DONE computed by ``computer()`` —
    called once, and only when there is a row to compute (it may load a model) — a shard at a
    time. A shard holding a damaged chunk (a copy cut short, a disk error: its checksum does not
    match) is computed again, with a warning, where its status does not read and where the rows
    of the whole store, read at the end, do not (a share's rows are not read); before
    2026-12-07, fifty-fifth session, the store was to be removed and computed anew whole (the
    all-frames pass: hours at a dataset's size)."""
    if not can_write_in(path.parent) and finished_rows(path):  # a shared folder's, used where it lies (output_beside); the status is read once where the folder is one's own
        return _read_finished(path, fp, [name for name in arrays if name != "status"], share)
    index, count = share
    videos = arrays["status"][0][0]
    with share_lock(path, share):
        writer = ZarrWriter(path, fp, attrs, arrays, even_shard_size(videos, SHARD_VIDEOS, SHARD_STEP, count), RECOMPUTE_ROWS)
        filler = _Filler(path, writer, [name for name in arrays if name != "status"], computer, progress, desc)
        mine = range(index * filler.shard, videos, count * filler.shard)
        filler.repair([found for start in mine if isinstance(found := read_block(writer.arrays, "status", start, min(start + filler.shard, videos)), Damage)])
        filler.fill(mine)
        values: dict[str, np.ndarray] = {}
        if share == WHOLE:
            values, damaged = filler.read_whole()
            if damaged:
                filler.repair(damaged)
                filler.fill(range(0, videos, filler.shard))
                values, damaged = filler.read_whole()
                if damaged:  # damaged again as soon as written: the disk's, not a copy's
                    raise CacheError(damaged[0].said)
    return StoredRows(path, values, filler.computed, filler.errors)


def finished_rows(path: Path) -> bool:
    """Whether the store at ``path`` holds every row DONE, read without a lock (a finished store
    is only read; a damaged ``status`` reads as unfinished)."""
    import zarr

    if not (path / "zarr.json").is_file():
        return False
    try:
        status = CheckedArray(zarr.open_group(str(path), mode="r")["status"], path, "status")[:]
    except (CacheError, KeyError):
        return False
    return bool((np.asarray(status) == DONE).all())


def _read_finished(path: Path, fp: str, names: list[str], share: Share) -> StoredRows:
    """A finished store in a folder this process cannot write, read whole without a lock (none
    can be taken there; a share of it has nothing to compute): its rows, else a
    :class:`CacheError` where one is damaged, which only its owner can mend."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    check_fingerprint(path, dict(group.attrs), fp)
    try:
        values = {name: np.asarray(CheckedArray(group[name], path, name)[:]) for name in names} if share == WHOLE else {}
    except CacheError as exc:
        raise CacheError(f"{exc}; it lies in a folder not written here: its owner's next run of the same command computes the damaged rows again") from None
    return StoredRows(path, values, 0, {})


class _Filler:
    """Computes the rows of a store not yet DONE, a shard at a time, with the one ``computer()``
    made when a row is first to compute."""

    def __init__(self, path: Path, writer: ZarrWriter, names: list[str], computer: Callable[[], RowComputer], progress: bool, desc: str):
        self.path, self.writer, self.names, self.computer = path, writer, names, computer
        self.progress, self.desc = progress, desc
        self.shard = writer.arrays["status"].shards[0] if writer.arrays["status"].shards else SHARD_VIDEOS  # the store's own, fixed when it was made
        self.computed, self.errors = 0, {}
        self._compute: RowComputer | None = None

    def repair(self, damaged: list[Damage]) -> None:
        """The shards holding ``damaged`` blocks made pending (:func:`~pipeline.cache.reset_damaged`)."""
        if damaged:
            rows = reset_damaged(self.path, damaged)
            warnings.warn(f"{self.path}: {rows} row(s) in shards holding damaged chunks (a copy cut short, or a disk error: {damaged[0].array}[{damaged[0].start}:{damaged[0].stop}] first) are computed again", stacklevel=3)

    def fill(self, starts: range) -> None:
        """The rows not DONE of the shards beginning at ``starts`` computed and written, a shard
        at a time; a shard part-done whose rows do not read is computed whole."""
        status = np.asarray(self.writer.arrays["status"][:])
        shards = [(start, min(start + self.shard, len(status))) for start in starts]
        todo = [(start, stop) for start, stop in shards if (status[start:stop] != DONE).any()]
        if not todo:
            return
        require_writable(self.path)
        warn_if_kept_from_the_group(self.path.parent)
        self._compute = self._compute or self.computer()
        videos = sum(stop - start for start, stop in shards)
        with tqdm(total=videos, initial=videos - sum(int((status[a:b] != DONE).sum()) for a, b in todo), unit="video", desc=self.desc, disable=not self.progress) as bar:
            for start, stop in todo:
                block = {name: read_block(self.writer.arrays, name, start, stop) for name in self.names}
                marks = status[start:stop].copy()
                if any(isinstance(rows, Damage) for rows in block.values()):
                    block = {name: np.zeros((stop - start, *self.writer.arrays[name].shape[1:]), dtype=self.writer.arrays[name].dtype) for name in self.names}
                    marks[:] = PENDING
                for row, result in self._compute([start + i for i in np.flatnonzero(marks != DONE)]):
                    if isinstance(result, str):
                        self.errors[row], marks[row - start] = result, FAILED
                    else:
                        for name, value in result.items():
                            block[name][row - start] = value
                        marks[row - start] = DONE
                        self.computed += 1
                    bar.update(1)
                with clear_out_of_space(self.path, RESUMABLE):
                    self.writer.write_block(start, block, marks)

    def read_whole(self) -> tuple[dict[str, np.ndarray], list[Damage]]:
        """Every array of the store but ``status``, read a shard at a time, and what is damaged."""
        videos = self.writer.arrays["status"].shape[0]
        values = {name: np.empty(self.writer.arrays[name].shape, dtype=self.writer.arrays[name].dtype) for name in self.names}
        damaged = []
        for name in self.names:
            for start in range(0, videos, self.shard):
                rows = read_block(self.writer.arrays, name, start, min(start + self.shard, videos))
                if isinstance(rows, Damage):
                    damaged.append(rows)
                else:
                    values[name][start : start + len(rows)] = rows
        return values, damaged
