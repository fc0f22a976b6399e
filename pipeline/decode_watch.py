"""Which video a decoding worker is on, so that a decoder that hangs or crashes on one video
costs that video, not the run.

decord loops forever in native code on some files (a container that over-reports its frames:
dmlc/decord#373, #269) and FFmpeg aborts the process on others (#25). In a DataLoader worker the
first stalls a run over a dataset for good and the second ends it, and a re-run meets the same
video again. Each worker notes in a shared table which video it decodes, since when, and its
process id; the loader waits for a block in turns of :data:`WATCH_POLL_S` seconds, and when a
worker died or one video has been decoding for the timeout, :meth:`DecodingWatch.culprit` names
the video to fail, and the stage goes on without it (``stages.features``).

A worker's death must reach the stage from the loader's ``next()``: torch's own SIGCHLD handler
raises it wherever the main process happens to be (loading a model, writing a shard), where it
cannot be told from any other failure; :func:`worker_deaths_in_order` sets that handler aside.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import get_worker_info

from pipeline.cache import CacheError

# Seconds of each wait for a block: how soon a dead worker is noticed.
WATCH_POLL_S = 5.0
# The failure kinds, first in their reasons (pipeline.video.failure_kinds counts them).
HUNG = "decoder hung"
CRASHED = "decoder crashed"
Item = TypeVar("Item")


# Decoder failures with no video decoded between them that still count as single videos'
# faults; one more stops the run (a full /dev/shm or memory kills every decoder).
DECODER_FAILURES_IN_A_ROW = 3


class DecoderFailure(Exception):
    """A decoding worker hung or died on video ``index``; the loader's own error is the cause."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"video {index}: {reason}")
        self.index, self.reason = index, reason


class FailureStreak:
    """Counts decoder failures in a row (no video decoded between them); past
    :data:`DECODER_FAILURES_IN_A_ROW` it is not single files but the machine, and the run
    stops with a :class:`~pipeline.cache.CacheError` that starts with ``where``."""

    def __init__(self, where: str):
        self.where, self.in_a_row, self.decoded = where, 0, 0

    def failed(self, failure: DecoderFailure, decoded: int) -> None:
        """One more failure, ``decoded`` videos decoded so far in the run."""
        self.in_a_row = 1 if decoded > self.decoded else self.in_a_row + 1
        self.decoded = decoded
        if self.in_a_row > DECODER_FAILURES_IN_A_ROW:
            raise CacheError(f"{self.where}: the decoders failed on {self.in_a_row} videos in a row, none decoded between ({failure.__cause__}); more than single videos is wrong: see the failures above") from failure


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


class DecodingWatch:
    """A row per decoding worker, in shared memory: the video it decodes (-1: none), since when
    (seconds since the epoch) and its process id. Made before the loader forks its workers."""

    def __init__(self, workers: int):
        self.table = torch.full((max(workers, 1), 3), -1.0, dtype=torch.float64).share_memory_()

    @contextmanager
    def decoding(self, index: int) -> Iterator[None]:
        """Marks video ``index`` as being decoded by this worker (nothing in the main process)."""
        worker = get_worker_info()
        if worker is None:
            yield
            return
        row = self.table[worker.id]
        row[1], row[2] = time.time(), os.getpid()
        row[0] = index
        try:
            yield
        finally:
            row[0] = -1

    def clear(self) -> None:
        """Kill the workers still on a video (a hung one holds a core and its file, and its
        loader's shutdown would wait for it), and forget every row, before a new loader."""
        for index, _, pid in self.table.tolist():
            if index >= 0 and process_alive(int(pid)):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.table.fill_(-1.0)

    def culprit(self, timeout: float, grace: float = 0.0) -> tuple[int, str] | None:
        """(video, reason) of the video a dead worker was decoding, else of the one decoding
        longest once that is ``timeout`` seconds or more; None when neither, after waiting up
        to ``grace`` seconds for a worker that is still dying."""
        deadline = time.monotonic() + grace
        while (found := self._culprit(timeout)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def _culprit(self, timeout: float) -> tuple[int, str] | None:
        rows = [(int(index), started, int(pid)) for index, started, pid in self.table.tolist() if index >= 0]
        for index, _, pid in rows:
            if not process_alive(pid):
                return index, f"{CRASHED} (its process died on this file; re-encode it to use it)"
        now = time.time()
        stuck = sorted((started, index) for index, started, _ in rows if now - started >= timeout)
        if stuck:
            return stuck[0][1], f"{HUNG} (no frames after {timeout:g} s; re-encode the file to use it)"
        return None


def watched(items: Iterator[Item], watch: DecodingWatch, timeout: float) -> Iterator[Item]:
    """The items of a loader that waits :data:`WATCH_POLL_S` seconds at a time. A wait that runs
    out is taken up again while no video has been decoding for ``timeout`` seconds; an error of
    the loader's (a wait out, a worker dead, or a block lost with it: the tensors of a block
    cross by the worker's file descriptors) is a :class:`DecoderFailure` where the watch names
    a video, and raised as it is where it does not."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            timed_out = isinstance(exc, RuntimeError) and "DataLoader timed out" in str(exc)
            culprit = watch.culprit(timeout, grace=0.0 if timed_out else WATCH_POLL_S)
            if culprit is not None:
                raise DecoderFailure(*culprit) from exc
            if timed_out:
                continue  # torch's iterator is left as it was: the next call waits again
            raise
        yield item


def _torch_sigchld_handler(handler: object) -> bool:
    return getattr(handler, "__module__", "") == "torch.utils.data._utils.signal_handling"


@contextmanager
def worker_deaths_in_order() -> Iterator[Callable[[], None]]:
    """A function to call after each loader iterator is made: it sets aside torch's SIGCHLD
    handler (installed by the first one), so that a dead worker is reported by the loader's
    ``next()`` within :data:`WATCH_POLL_S` seconds; the handler is put back at the end."""
    removed: list[object] = []

    def set_aside() -> None:
        handler = signal.getsignal(signal.SIGCHLD)
        if _torch_sigchld_handler(handler):
            removed.append(handler)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # not SIG_IGN, which would reap the workers

    try:
        yield set_aside
    finally:
        if removed:
            signal.signal(signal.SIGCHLD, removed[0])
