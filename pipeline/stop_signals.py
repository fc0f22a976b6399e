"""A training run's orderly stop at a scheduler's signal, its progress saved.

A cluster's scheduler ends a job it preempts, or one at its time limit, with SIGTERM to each of
its processes and SIGKILL once the job's grace is over (SLURM's ``GraceTime`` for a preemption,
``KillWait``, 30 s by default, at the time limit); ``sbatch --signal=USR1@<seconds>`` sends
SIGUSR1 that long before the limit; torchrun passes SIGTERM on to its ranks (and SIGKILL 30 s
later). Python ends a process at either signal at once, and a training run loses the epoch in
progress. While a :class:`StopSignals` is entered, the signals are noted instead, and the
training loop asks at each step whether to stop: on every rank at the same step, so that the
ranks' collectives still pair, and the run saves where it is (:class:`Stopped`).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import torch
from torch.distributed.algorithms.join import Join, JoinHook, Joinable

from pipeline.distributed import Worker

# The signals a scheduler sends before it kills a job: SLURM's and torchrun's SIGTERM, and the
# SIGUSR1 of ``sbatch --signal=USR1@<seconds>``.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def leave_to_the_command() -> None:
    """Ignore the stop signals in this process, a helper of the command's (a decoding process,
    the fork server that starts them), which the signals reach with every process of the job:
    the command acts on them, and its helpers end with it (a decoding pass kills its workers at
    its end and at the process's exit, for Python's own end of them there, SIGTERM, leaves them
    be: :class:`pipeline.extract.DecodingLoader`)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class Stopped(Exception):
    """A run stopped at a stop signal with its progress saved: the same command goes on from it.
    Its exit status is the signal's, as for a process the signal ended (128 + its number)."""

    def __init__(self, signum: int, message: str, leader: bool = True):
        super().__init__(message)
        self.signum, self.leader = signum, leader

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def stopped_said(run_dir: Path, signum: int, epoch: int, epochs: int, given: int, batches: int) -> str:
    """What a run stopped in ``epoch`` (from 0) after ``given`` of its ``batches`` training
    batches says: where it stopped, and that the same command goes on from there."""
    where = f"after {given} of its {batches} training batches" if given < batches else "its training done, its validation not"
    return f"{run_dir}: stopped by {signal.Signals(signum).name} in epoch {epoch + 1} of {epochs}, {where}; saved in last.pth, from which the same command goes on"


class StopSignals(Joinable):
    """While entered (in the main thread, where Python runs signal handlers), the stop signals
    this process receives are noted (``received``: the first one's number, 0 for none) rather
    than ending it; ``worker``: the ranks it agrees with (None: this process alone).
    :meth:`agreed` gives every rank the same answer; :meth:`after_step` asks after each training
    step, within DDP's join (:meth:`join_context`), where a rank that has run out of batches
    shadows the question, as it shadows the gradients' reduction."""

    def __init__(self, worker: Worker | None = None):
        super().__init__()
        self.world_size, self.device = (worker.world_size, worker.device) if worker is not None else (1, torch.device("cpu"))
        self.received = 0
        self._before: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # a signal the process ignores stays so (nohup's way, a launcher's)
            self._before = {signum: signal.signal(signum, self._note) for signum in STOP_SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._before = {}

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received = self.received or signum

    def noted(self) -> bool:
        """Whether this process has received a stop signal."""
        return self.received != 0

    def agreed(self) -> int:
        """The stop signal any rank has received (0: none), the same on every rank: a collective
        where there are several, which each rank calls at the same points."""
        if self.world_size == 1:
            return self.received
        return self._reduced(self.received)

    def _reduced(self, signum: int) -> int:
        flag = torch.tensor([signum], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())

    def after_step(self, trained: bool) -> bool:
        """Whether to stop after a batch of the training loop: one this rank ``trained`` on asks
        every rank (their n-th trained steps pair, as their gradients' reductions do); one it
        left out (none of its videos decoded) asks nothing, where there are several ranks, and
        this process alone otherwise."""
        if self.world_size == 1:
            return bool(self.received)
        return bool(trained and self._reduced(self.received))

    def checks(self, common: int) -> Checks:
        """The stop checks of a loop whose first ``common`` iterations every rank runs (the
        ranks' shares of the validation videos, which differ by one)."""
        return Checks(self, common)

    def join_context(self, model: torch.nn.Module) -> Join:
        """DDP's join of ``model`` with this check: where a rank has run out of batches, it
        shadows the others' gradient reductions and then their question (:class:`_Shadow`)."""
        return Join([model, self])

    def join_hook(self, **kwargs: object) -> JoinHook:
        return _Shadow(self)

    @property
    def join_device(self) -> torch.device:
        return self.device

    @property
    def join_process_group(self) -> object:
        return torch.distributed.group.WORLD


class Checks:
    """A loop's stop check, agreed at each of the first ``left`` iterations (every rank runs
    them) and False after them, where some ranks no longer run; :meth:`rest` asks the checks a
    rank did not come to, its loop ended early (its decoders' end at the signal), so that every
    rank asks as many."""

    def __init__(self, stops: StopSignals, left: int):
        self.stops, self.left = stops, left

    def __call__(self) -> bool:
        if not self.left:
            return False
        self.left -= 1
        return bool(self.stops.agreed())

    def rest(self) -> None:
        while self.left:
            self()


class _Shadow(JoinHook):
    """A rank out of batches answers each question of the ranks still training with its own
    signal, so that a signal it received stops them too."""

    def __init__(self, stops: StopSignals):
        self.stops = stops

    def main_hook(self) -> None:
        self.stops._reduced(self.stops.received)
