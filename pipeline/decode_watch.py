"""Which video a decoding worker is on, so that a decoder that hangs or crashes on one video
costs that video, not the run.

decord loops forever in native code on some files (a container that over-reports its frames:
dmlc/decord#373, #269) and FFmpeg aborts the process on others (#25). In a DataLoader worker the
first stalls a run over a dataset for good and the second ends it, and a re-run meets the same
video again. Each worker notes in a shared table which video it decodes, since when, and its
process id; the loader waits for a block in turns of :data:`WATCH_POLL_S` seconds, and when a
worker died or one video has been decoding for the timeout, :meth:`DecodingWatch.culprit` names
the video to fail, and the pass goes on without it (the features stage, predict, evaluate's
decoded paths, its all-frames pass, fine-tuning). A worker killed from outside (SIGKILL: the
kernel's out-of-memory killer, most often) is not its video's fault: that video is decoded once
more before it is failed, and the reason says whether the out-of-memory killer counted a kill
meanwhile (:mod:`pipeline.oom_kills`). Decoding in the main process (no workers), a thread
stands watch instead and ends the process, naming the video, since a native decoder cannot be
stopped there.

A worker's death must reach the stage from the loader's ``next()``: torch's own SIGCHLD handler
raises it wherever the main process happens to be (loading a model, writing a shard), where it
cannot be told from any other failure; :class:`WatchedDecoding` sets that handler aside.
"""

from __future__ import annotations

import multiprocessing.util
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from copy import copy
from multiprocessing.process import BaseProcess as Process
from pathlib import Path
from typing import NamedTuple, TypeVar

import torch
from torch.utils.data import Dataset, get_worker_info
from tqdm import tqdm

from pipeline.cache import CacheError
from pipeline.oom_kills import VMSTAT, oom_kills

# Seconds of each wait for a block: how soon a dead worker is noticed.
WATCH_POLL_S = 5.0
# The failure kinds, first in their reasons (pipeline.video.failure_kinds counts them).
HUNG = "decoder hung"
CRASHED = "decoder crashed"
KILLED = "decoder killed"
Item = TypeVar("Item")


# The exit status of a process whose own decoding hung (``--workers 0``): nothing else stops it.
HUNG_IN_THIS_PROCESS = 3
# Decoder failures with nothing decoded between them that still count as single videos' faults;
# one more stops the run (a full /dev/shm or memory kills every decoder).
DECODER_FAILURES_IN_A_ROW = 3


class DecoderFailure(Exception):
    """A decoding worker hung or died on video ``index`` (None: between videos); the loader's
    own error is the cause. ``killed``: its process was killed from outside (SIGKILL), which
    says nothing of the video; ``for_memory``: while the out-of-memory killer counted a kill."""

    def __init__(self, index: int | None, reason: str, killed: bool = False, for_memory: bool = False):
        super().__init__(f"{'between videos' if index is None else f'video {index}'}: {reason}")
        self.index, self.reason, self.killed, self.for_memory = index, reason, killed, for_memory


class Culprit(NamedTuple):
    """The video a decoding worker hung or died on (None: it died between videos), why, whether
    its process was killed from outside (SIGKILL), which says nothing of the video, and whether
    while the out-of-memory killer counted a kill."""

    index: int | None
    reason: str
    killed: bool = False
    for_memory: bool = False


def loader_workers(items: object) -> Sequence[Process]:
    """The worker processes of the loader iterator ``items`` where it is torch's multi-process
    one, which keeps them as ``_workers`` (none for another): how one ended is read from them."""
    return getattr(items, "_workers", ())


def exit_status(process: Process) -> int | None:
    """The exit status of a worker ``process`` found dead (negative: the signal that ended it;
    None: not known). A process of several threads shows as dead (a zombie) once its first
    thread has ended, and its status can be had once every thread has: that is waited for, up
    to :data:`WATCH_POLL_S` seconds."""
    process.join(WATCH_POLL_S)
    return process.exitcode


def death_reason(status: int | None, oom_now: int | None, oom_before: int | None, on_a_video: bool = True) -> tuple[str, bool]:
    """Why a decoding worker that ended with exit ``status`` (negative: a signal; None: not
    known) left its video (``on_a_video``; else it died between videos), and whether it was
    killed from outside (SIGKILL), which is not the video's fault; ``oom_now`` and
    ``oom_before``: the machine's out-of-memory kills counted now and when the watch last looked
    (:func:`pipeline.oom_kills.oom_kills`; None: not known)."""
    if status == -signal.SIGKILL:
        if oom_now is None or oom_before is None:
            return f"{KILLED} (SIGKILL from outside the run: the kernel's out-of-memory killer or another process)", True
        if oom_rose(oom_now, oom_before):
            return f"{KILLED} (SIGKILL while the kernel's out-of-memory killer counted {oom_now - oom_before} more kill(s) in {VMSTAT}: give the decoders more memory, or fewer --workers)", True
        return f"{KILLED} (SIGKILL from outside the run, not the kernel's out-of-memory killer: {VMSTAT} counts no more)", True
    how = "" if status is None else _signal_name(-status) if status < 0 else f"exit status {status}"
    if not on_a_video:
        return f"{CRASHED} ({how or 'its process died'})", False
    return f"{CRASHED} ({how + ': ' if how else ''}its process died on this file; re-encode it to use it)", False


def oom_rose(oom_now: int | None, oom_before: int | None) -> bool:
    """Whether the machine's count of out-of-memory kills rose from ``oom_before`` to ``oom_now``
    (not where either is not known)."""
    return oom_now is not None and oom_before is not None and oom_now > oom_before


def _signal_name(number: int) -> str:
    """``SIGABRT`` for 6; ``signal 200`` for a number with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
        self.oom_kills = oom_kills()  # the machine's count when the watch began, or at the last kill it took

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

    def culprit(self, timeout: float, grace: float = 0.0, workers: Sequence[Process] = ()) -> Culprit | None:
        """The video a dead worker was decoding, else the one decoding longest once that is
        ``timeout`` seconds or more, else a worker of the loader's (``workers``,
        :func:`loader_workers`) dead between videos; None when none, after waiting up to
        ``grace`` seconds for a worker that is still dying. How a worker died is read from its
        process among ``workers`` (:func:`death_reason`)."""
        deadline = time.monotonic() + grace
        while (found := self._culprit(timeout, workers)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def _culprit(self, timeout: float, workers: Sequence[Process]) -> Culprit | None:
        rows = [(int(index), started, int(pid)) for index, started, pid in self.table.tolist() if index >= 0]
        processes = {process.pid: process for process in workers}
        for index, _, pid in rows:
            if not process_alive(pid):
                return self._died(processes.get(pid), index)
        now = time.time()
        stuck = sorted((started, index) for index, started, _ in rows if now - started >= timeout)
        if stuck:
            return Culprit(stuck[0][1], f"{HUNG} (no frames after {timeout:g} s; re-encode the file to use it)")
        for process in workers:
            if process.exitcode not in (None, 0):  # a worker ends at its loader's shutdown alone, with 0
                return self._died(process, None)
        return None

    def _died(self, process: Process | None, index: int | None) -> Culprit:
        """The culprit of a worker ``process`` (None: not known) dead on video ``index``, or
        between videos (None), the machine's out-of-memory kills read again after a SIGKILL."""
        status = None if process is None else exit_status(process)
        counted = oom_kills() if status == -signal.SIGKILL else self.oom_kills
        reason, killed = death_reason(status, counted, self.oom_kills, on_a_video=index is not None)
        for_memory = killed and oom_rose(counted, self.oom_kills)
        self.oom_kills = counted
        return Culprit(index, reason, killed, for_memory)


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
            culprit = watch.culprit(timeout, grace=0.0 if timed_out else WATCH_POLL_S, workers=loader_workers(items))
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
    pass stops with a :class:`~pipeline.cache.CacheError` that starts with ``where``. A video
    whose worker was killed from outside (SIGKILL) is decoded once more before it is failed
    (``killed``: those decoded once more). Where
    ``stopping()`` says this process has a stop signal to act on (:mod:`pipeline.stop_signals`),
    which reached the workers too, a worker dead or a loader's error ends the items instead,
    taken for no video's fault. A worker dead between videos costs no video: a new loader goes
    on. A context: torch's SIGCHLD handler, set aside while it is open, is put back at its end,
    and the workers still alive are killed."""

    def __init__(self, workers: int, timeout: float, where: str, describe: Callable[[int], str], stopping: Callable[[], bool] = lambda: False):
        if not timeout > 0:
            raise ValueError(f"the decode timeout must be a positive number of seconds, got {timeout!r}")
        self.watch = DecodingWatch(workers)
        self.workers, self.timeout, self.where, self.describe, self.stopping = workers, timeout, where, describe, stopping
        self.skip: dict[int, str] = {}
        self.killed: set[int] = set()  # videos whose worker was killed from outside once, decoded once more
        self.decoded = 0  # items given that hold a decoded video, over every loader
        self.in_a_row, self._decoded_at_failure = 0, 0
        self.in_a_row_for_memory = 0  # of those, the kills the out-of-memory killer counted
        self._torch_handler: object = None
        self._processes: list[Process] = []  # the workers of every loader opened

    def __enter__(self) -> WatchedDecoding:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill the loaders' workers still alive (:meth:`end_workers`) and put back torch's
        SIGCHLD handler."""
        self.end_workers()
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
            items = self._opened(open_items)
        except Exception:
            if self.stopping():  # its processes could not start, the stop signal having reached what starts them
                return iter(())
            raise
        if not self.workers:
            return self._in_this_process(items)
        self._set_aside()
        return self._restarting(items, open_items, decoded)

    def end_workers(self) -> None:
        """Kill the loaders' workers still alive (a pass left by an error, or by a caller that
        stopped taking items). They ignore the stop signals (:mod:`pipeline.stop_signals`), so
        the SIGTERM with which torch ends a worker that does not end when asked leaves them be;
        and Python's own end of them at this process's exit, where they are killed too
        (:func:`ended_at_exit`), would wait for them for good."""
        kill_workers(self._processes)
        self._processes.clear()

    def _opened(self, open_items: Callable[[], Iterator[Item]]) -> Iterator[Item]:
        """``open_items()``, its workers kept to be ended with the pass."""
        items = open_items()
        self._processes.extend(loader_workers(items))
        return items

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
                sys.stderr.write(
                    f"{self.describe(found.index)}: {found.reason}, decoding in the main process ({self.where}): a decoder cannot be stopped there, so the run "
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
            items = self._opened(open_items)
            self._set_aside()

    def _failed(self, failure: DecoderFailure) -> None:
        """Kill the workers still on a video (before the failure, which holds the loader, goes:
        its shutdown would wait for them), say so, fail the video without decoding from now on
        (one whose worker was killed from outside, the first time: decode it once more; none
        where the worker died between videos), and count the failure."""
        self.watch.clear()
        if failure.index is None:
            tqdm.write(f"{self.where}: a decoding process {failure.reason}, between videos: decoding goes on", file=sys.stderr)
        elif failure.killed and failure.index not in self.killed:
            self.killed.add(failure.index)
            tqdm.write(f"{self.describe(failure.index)}: {failure.reason}: decoding it once more", file=sys.stderr)
        else:
            reason = f"{failure.reason}; killed on its second go too" if failure.killed else failure.reason
            tqdm.write(f"{self.describe(failure.index)}: {reason}: failed, and decoding goes on", file=sys.stderr)
            self.skip[failure.index] = reason
        if self.decoded > self._decoded_at_failure:  # a new row
            self.in_a_row, self.in_a_row_for_memory = 0, 0
        self.in_a_row += 1
        self.in_a_row_for_memory += failure.for_memory
        self._decoded_at_failure = self.decoded
        if self.in_a_row > DECODER_FAILURES_IN_A_ROW:
            memory = f" ({self.in_a_row_for_memory} of them the kernel's out-of-memory killer's: give the decoders more memory, or fewer --workers)" if self.in_a_row_for_memory else ""
            raise CacheError(f"{self.where}: the decoders failed on {self.in_a_row} videos in a row, none decoded between ({failure.__cause__}); more than single videos is wrong{memory}: see the failures above") from failure

    def _set_aside(self) -> None:
        """Set aside torch's SIGCHLD handler (installed by a loader's first iterator), so that a
        dead worker is reported by the loader's ``next()`` within :data:`WATCH_POLL_S` seconds."""
        handler = signal.getsignal(signal.SIGCHLD)
        if getattr(handler, "__module__", "") == "torch.utils.data._utils.signal_handling":
            self._torch_handler = self._torch_handler or handler
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # not SIG_IGN, which would reap the workers


# The decoding loaders' workers (:func:`pipeline.extract.decoding_loader`), killed where still
# alive at this process's exit before Python ends them: multiprocessing's exit function runs its
# finalizers of priority 0 and up first, then sends SIGTERM to its daemonic processes, which the
# decoders ignore (:mod:`pipeline.stop_signals`), and waits for them. Kept by the id of the
# process that started them: a process forked from this one (``os.fork``) inherits the table and
# the finalizer, and its exit must not touch what is not its own (``is_alive`` asserts so).
_DECODERS: dict[int, weakref.WeakSet[Process]] = {}


def ended_at_exit(items: Iterator[Item]) -> Iterator[Item]:
    """``items``, a loader's iterator, its worker processes noted to be killed at this process's
    exit where still alive (a pass left by an error, its loader held by the traceback)."""
    _DECODERS.setdefault(os.getpid(), weakref.WeakSet()).update(loader_workers(items))
    return items


def kill_workers(processes: Iterable[Process]) -> None:
    """Kill those of ``processes`` still alive, waiting up to :data:`WATCH_POLL_S` seconds for
    each; torch's SIGCHLD handler, which would raise at the first death wherever this process
    is (in the middle of these kills), set aside meanwhile where this is the main thread."""
    alive = [process for process in processes if process.is_alive()]
    if not alive:
        return
    in_main = threading.current_thread() is threading.main_thread()
    handler = signal.signal(signal.SIGCHLD, signal.SIG_DFL) if in_main else None
    try:
        for process in alive:
            process.kill()
        for process in alive:
            process.join(WATCH_POLL_S)
    finally:
        if in_main:
            signal.signal(signal.SIGCHLD, handler)


multiprocessing.util.Finalize(None, lambda: kill_workers(list(_DECODERS.get(os.getpid(), ()))), exitpriority=0)
