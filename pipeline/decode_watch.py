"""Which video a decoding worker is on, so that a decoder that hangs or crashes on one video
costs that video, not the run.

decord loops forever in native code on some files (a container that over-reports its frames:
dmlc/decord#373, #269) and FFmpeg aborts the process on others (#25). In a DataLoader worker the
first stalls a run over a dataset for good and the second ends it, and a re-run meets the same
video again. Each worker notes in a shared table which video it decodes, since when, and its
process id; the loader waits for a block in turns of :data:`WATCH_POLL_S` seconds, and when a
worker died or one video has been decoding for the timeout, :meth:`DecodingWatch.culprit` names
the video to fail, and the pass goes on without it (the features stage, predict, evaluate's
decoded paths, its all-frames pass, fine-tuning). Decoding in the main process (no workers), a
thread stands watch instead and ends the process, naming the video, since a native decoder
cannot be stopped there.

A worker's death must reach the stage from the loader's ``next()``: torch's own SIGCHLD handler
raises it wherever the main process happens to be (loading a model, writing a shard), where it
cannot be told from any other failure; :class:`WatchedDecoding` sets that handler aside.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import copy
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import Dataset, get_worker_info
from tqdm import tqdm

from pipeline.cache import CacheError

# Seconds of each wait for a block: how soon a dead worker is noticed.
WATCH_POLL_S = 5.0
# The failure kinds, first in their reasons (pipeline.video.failure_kinds counts them).
HUNG = "decoder hung"
CRASHED = "decoder crashed"
Item = TypeVar("Item")


# The exit status of a process whose own decoding hung (``--workers 0``): nothing else stops it.
HUNG_IN_THIS_PROCESS = 3
# Decoder failures with nothing decoded between them that still count as single videos' faults;
# one more stops the run (a full /dev/shm or memory kills every decoder).
DECODER_FAILURES_IN_A_ROW = 3


class DecoderFailure(Exception):
    """A decoding worker hung or died on video ``index``; the loader's own error is the cause."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"video {index}: {reason}")
        self.index, self.reason = index, reason


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
        """Marks video ``index`` as being decoded by this worker (the first row: the main
        process, where it decodes)."""
        worker = get_worker_info()
        row = self.table[0 if worker is None else worker.id]
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
            if index >= 0 and int(pid) != os.getpid() and process_alive(int(pid)):
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


def watched(items: Iterator[Item], watch: DecodingWatch, timeout: float, stopping: Callable[[], bool] = lambda: False) -> Iterator[Item]:
    """The items of a loader that waits :data:`WATCH_POLL_S` seconds at a time. A wait that runs
    out is taken up again while no video has been decoding for ``timeout`` seconds; an error of
    the loader's (a wait out, a worker dead, or a block lost with it: the tensors of a block
    cross by the worker's file descriptors) is a :class:`DecoderFailure` where the watch names
    a video, and raised as it is where it does not, or at once, no video looked for, where the
    process is ``stopping()`` (:class:`WatchedDecoding`)."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            if stopping():
                raise
            timed_out = isinstance(exc, RuntimeError) and "DataLoader timed out" in str(exc)
            culprit = watch.culprit(timeout, grace=0.0 if timed_out else WATCH_POLL_S)
            if culprit is not None:
                raise DecoderFailure(*culprit) from exc
            if timed_out:
                continue  # torch's iterator is left as it was: the next call waits again
            raise
        yield item


class WatchedDecoding:
    """A pass's decoding in ``workers`` loader processes (0: in this one), watched: the shared
    table the datasets note their videos in (``watch``), the
    videos to fail without decoding (``skip``, video -> reason), and ``describe`` (video -> its
    file) for the line each failure writes to stderr. Past :data:`DECODER_FAILURES_IN_A_ROW`
    failures with no video decoded between them it is not single files but the machine, and the
    pass stops with a :class:`~pipeline.cache.CacheError` that starts with ``where``. Where
    ``stopping()`` says this process has a stop signal to act on (:mod:`pipeline.stop_signals`),
    which reached the workers too, a worker dead or a loader's error ends the items instead,
    taken for no video's fault. A context: torch's SIGCHLD handler, set aside while it is open,
    is put back at its end."""

    def __init__(self, workers: int, timeout: float, where: str, describe: Callable[[int], str], stopping: Callable[[], bool] = lambda: False):
        if not timeout > 0:
            raise ValueError(f"the decode timeout must be a positive number of seconds, got {timeout!r}")
        self.watch = DecodingWatch(workers)
        self.workers, self.timeout, self.where, self.describe, self.stopping = workers, timeout, where, describe, stopping
        self.skip: dict[int, str] = {}
        self.decoded = 0  # items given that hold a decoded video, over every loader
        self.in_a_row, self._decoded_at_failure = 0, 0
        self._torch_handler: object = None

    def __enter__(self) -> WatchedDecoding:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._torch_handler is not None:
            signal.signal(signal.SIGCHLD, self._torch_handler)  # type: ignore[arg-type]
            self._torch_handler = None

    def attached(self, dataset: Dataset) -> Dataset:
        """A copy of ``dataset`` (one with ``watch`` and ``skip`` attributes) whose workers note
        their videos in this watch and fail the videos of this skip list without decoding."""
        watched = copy(dataset)
        watched.watch, watched.skip = self.watch, self.skip  # type: ignore[attr-defined]
        return watched

    def items(self, open_items: Callable[[], Iterator[Item]], decoded: Callable[[Item], bool]) -> Iterator[Item]:
        """The items of a loader's iterator, ``open_items()``, watched (:func:`watched`); where
        a decoder hangs or dies on a video, the failure is taken (:meth:`_failed`) and
        ``open_items()`` is called again, to go on from where the caller's state has reached.
        ``decoded(item)``: whether an item holds a video decoded (not only failures). The first
        loader is opened now, so that its workers decode ahead while the caller gets ready."""
        try:
            items = open_items()
        except Exception:
            if self.stopping():  # its processes could not start, the stop signal having reached what starts them
                return iter(())
            raise
        if not self.workers:
            return self._in_this_process(items)
        self._set_aside()
        return self._restarting(items, open_items, decoded)

    def _in_this_process(self, items: Iterator[Item]) -> Iterator[Item]:
        """The items of a loader that decodes in this process, a thread standing watch: a
        native decoder cannot be stopped here, so a video decoding for the timeout ends the
        process, saying which (its finished work is kept, as after any kill)."""
        stop = threading.Event()
        threading.Thread(target=self._stand_watch, args=(stop,), daemon=True).start()
        try:
            yield from items
        finally:
            stop.set()

    def _stand_watch(self, stop: threading.Event) -> None:
        while not stop.wait(WATCH_POLL_S):
            found = self.watch.culprit(self.timeout)
            if found is not None:
                index, reason = found
                sys.stderr.write(
                    f"{self.describe(index)}: {reason}, decoding in the main process ({self.where}): a decoder cannot be stopped there, so the run "
                    "stops, what it finished kept. Re-encode the file, or decode in worker processes (--workers 1 or more, with room for them in "
                    "/dev/shm) to have it failed and the run go on\n"
                )
                sys.stderr.flush()
                os._exit(HUNG_IN_THIS_PROCESS)

    def _restarting(self, items: Iterator[Item], open_items: Callable[[], Iterator[Item]], decoded: Callable[[Item], bool]) -> Iterator[Item]:
        while True:
            try:
                for item in watched(items, self.watch, self.timeout, self.stopping):
                    self.decoded += decoded(item)
                    yield item
                return
            except Exception as error:
                if self.stopping():  # a stop signal the worker had before it could leave it to this process
                    return
                if not isinstance(error, DecoderFailure):
                    raise
                self._failed(error)
            items = None  # type: ignore[assignment]  (the loader's workers are shut down)
            items = open_items()
            self._set_aside()

    def _failed(self, failure: DecoderFailure) -> None:
        """Kill the workers still on a video (before the failure, which holds the loader, goes:
        its shutdown would wait for them), say so, fail the video without decoding from now on,
        and count the failure."""
        self.watch.clear()
        tqdm.write(f"{self.describe(failure.index)}: {failure.reason}: failed, and decoding goes on", file=sys.stderr)
        self.skip[failure.index] = failure.reason
        self.in_a_row = 1 if self.decoded > self._decoded_at_failure else self.in_a_row + 1
        self._decoded_at_failure = self.decoded
        if self.in_a_row > DECODER_FAILURES_IN_A_ROW:
            raise CacheError(f"{self.where}: the decoders failed on {self.in_a_row} videos in a row, none decoded between ({failure.__cause__}); more than single videos is wrong: see the failures above") from failure

    def _set_aside(self) -> None:
        """Set aside torch's SIGCHLD handler (installed by a loader's first iterator), so that a
        dead worker is reported by the loader's ``next()`` within :data:`WATCH_POLL_S` seconds."""
        handler = signal.getsignal(signal.SIGCHLD)
        if getattr(handler, "__module__", "") == "torch.utils.data._utils.signal_handling":
            self._torch_handler = self._torch_handler or handler
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # not SIG_IGN, which would reap the workers
