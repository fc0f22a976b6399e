"""A scheduler's stop signals: noted while a training loop runs, and agreed by the ranks."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from conftest import run_on_two_ranks
from pipeline.stop_signals import StopSignals, Stopped, stopped_said


def test_the_signals_are_noted_while_entered_and_the_handlers_before_put_back(default_stop_signals):
    """While entered, SIGUSR1 and SIGTERM are noted (the first said) and the process goes on;
    the handlers before come back at the end. A signal the process ignores stays ignored."""
    def before(signum, frame):
        raise AssertionError("the handler before was called")

    signal.signal(signal.SIGUSR1, before)
    with StopSignals() as stops:
        assert not stops.noted() and not stops.after_step(True)
        os.kill(os.getpid(), signal.SIGUSR1)  # sbatch --signal=USR1@120
        os.kill(os.getpid(), signal.SIGTERM)  # the first one noted is the one said
        assert stops.received == signal.SIGUSR1 and stops.noted() and stops.agreed() == signal.SIGUSR1
        assert stops.after_step(True) and stops.after_step(False)  # alone, a batch left out asks too
    assert signal.getsignal(signal.SIGUSR1) is before and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with StopSignals() as stops:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)
        assert not stops.noted()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def test_a_loops_checks_are_asked_as_often_on_every_rank():
    """Each of the first ``common`` iterations asks; later ones do not (some ranks no longer
    run them); ``rest`` asks those a loop ended early did not come to."""
    stops = StopSignals()
    asked = []
    stops.agreed = lambda: asked.append(1) or 0  # type: ignore[method-assign]
    checks = stops.checks(3)
    assert [checks() for _ in range(5)] == [False] * 5 and len(asked) == 3
    early = stops.checks(4)
    early()
    early.rest()
    assert len(asked) == 3 + 4 and not early()


def test_a_stopped_run_says_where_it_stopped_and_exits_with_the_signals_status(tmp_path):
    assert stopped_said(tmp_path / "run", signal.SIGTERM, 2, 30, 412, 1426) == f"{tmp_path / 'run'}: stopped by SIGTERM in epoch 3 of 30, after 412 of its 1426 training batches; saved in last.pth, from which the same command goes on"
    assert stopped_said(tmp_path / "run", signal.SIGUSR1, 0, 30, 1426, 1426).endswith("stopped by SIGUSR1 in epoch 1 of 30, its training done, its validation not; saved in last.pth, from which the same command goes on")
    assert Stopped(signal.SIGTERM, "x").exit_status == 143 and Stopped(signal.SIGUSR1, "x").exit_status == 138


TWO_RANKS = """
import json
import os
from pathlib import Path
import torch
from pipeline.distributed import joined_worker
from pipeline.stop_signals import StopSignals

with joined_worker((0, 1), "cpu") as worker, StopSignals(worker) as stops:
    torch.manual_seed(0)
    net = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
    steps = 0
    with stops.join_context(net):  # rank 1 has one batch, rank 0 four
        for _ in range(4 if worker.rank == 0 else 1):
            net(torch.ones(4, 3)).sum().backward()
            steps += 1
            if stops.after_step(True):
                break
        if worker.rank == 1:
            stops.received = 15  # SIGTERM to rank 1 as its batches have run out
    validated = 0
    checks = stops.checks(3)  # the batches of validation every rank has
    for _ in range(5 if worker.rank == 0 else 0):  # rank 1's decoders ended before its first batch
        validated += 1
        if checks():
            break
    checks.rest()
    agreed = stops.agreed()
    del net  # held to the interpreter's exit, it kept the group and gloo's threads, and a rank aborted there now and then
threads = [Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in os.listdir("/proc/self/task")]
Path(f"rank-{worker.rank}.json").write_text(json.dumps({"steps": steps, "validated": validated, "agreed": agreed, "gloo threads": sum("gloo" in name for name in threads)}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads listed through Linux's /proc")
def test_a_signal_on_a_rank_out_of_batches_stops_the_others_and_a_loop_ended_early_asks_its_rest(tmp_path):
    """Under DDP's join, rank 1, out of batches, gets SIGTERM: its shadow of rank 0's next
    question answers with it, and rank 0 stops after that step (2 of its 4). In validation rank
    1's loop ends before its first batch: its checks, asked after it, pair with rank 0's, which
    stops at its first of 5; then both agree on the signal. Without the shadow or the rest, rank
    0 waited for a collective that never came."""
    run_on_two_ranks(TWO_RANKS, tmp_path)
    said = [json.loads((tmp_path / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
    assert said == [{"steps": 2, "validated": 1, "agreed": 15, "gloo threads": 0}, {"steps": 1, "validated": 0, "agreed": 15, "gloo threads": 0}]  # none left to the exit

