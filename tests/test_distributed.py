"""Which device a stage's ``--device`` gives each torchrun rank, and the errors for GPUs not there;
what the ranks share, and their process group gone, threads and all, when the work is done."""

import pickle
import re
import warnings
from pathlib import Path

import pytest
import torch

from conftest import run_on_two_ranks
from pipeline.cache import CacheError, file_lock
from pipeline.distributed import busiest_share, even_shard_size, evener_shard_size, pick_device, shares_even


@pytest.fixture
def two_gpus(monkeypatch):
    """A node that shows two CUDA devices (nothing runs on them here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_shards_are_dealt_round_robin_and_the_busiest_share_is_counted():
    """10 items by shards of 4 (4, 4, 2): two shares hold 4 + 2 and 4, four shares 4, 4, 2, 0;
    the largest size below 4 whose two shares are even to 0.9 is 1 (3: 3+3 and 3+1; 2: 2+2+2 and
    2+2, each 5/6 of even), and in steps of 2 there is none."""
    assert (busiest_share(10, 4, 2), busiest_share(10, 4, 4), busiest_share(10, 4, 1), busiest_share(10, 3, 2), busiest_share(10, 2, 2)) == (6, 4, 10, 6, 6)
    assert evener_shard_size(10, 4, 1, 2, 0.9) == 1 and evener_shard_size(10, 4, 1, 2, 0.8) == 3
    assert evener_shard_size(10, 4, 2, 2, 0.9) is None
    # a new store's: kept where the busiest holds at most 1.25 times an even split's (6 against 5),
    # else the largest within 1.11 (8 and 2 against 5 and 5: 5), else kept (in steps of 8, none)
    assert (even_shard_size(10, 4, 1, 2), even_shard_size(10, 8, 1, 2), even_shard_size(10, 8, 8, 2)) == (4, 5, 8)
    assert shares_even(10, 4, 2) and not shares_even(10, 8, 2) and shares_even(0, 256, 4)  # nothing to share: even


def test_auto_and_cuda_give_each_rank_its_own_gpu(two_gpus):
    assert [pick_device("auto", rank) for rank in (0, 1)] == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert [pick_device("cuda", rank) for rank in (0, 1)] == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert pick_device("cuda:1", 0) == torch.device("cuda", 1)  # an index asked for is kept
    assert pick_device("cpu", 1) == torch.device("cpu")


def test_a_gpu_that_is_not_there_is_a_clear_error(two_gpus):
    with pytest.raises(ValueError, match=r"^local rank 2 takes cuda:2, but 2 CUDA devices visible; start torchrun with --nproc_per_node at most the GPUs of the node \(CUDA_VISIBLE_DEVICES picks which\)$"):
        pick_device("auto", 2)
    with pytest.raises(ValueError, match=r"^device 'cuda:5' asked for, but 2 CUDA devices visible \(CUDA_VISIBLE_DEVICES picks which\)$"):
        pick_device("cuda:5")


def test_without_cuda_auto_is_the_cpu_and_cuda_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto", 3) == torch.device("cpu")
    for asked in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"device '{asked}' asked for, but CUDA is not available"):
            pick_device(asked)


def test_a_device_other_than_the_cpu_or_a_cuda_gpu_is_refused_by_name():
    """``--device gpu`` had ended in torch's list of its device types (a traceback), ``mps`` on
    Linux at the first model."""
    for asked in ("gpu", "mps", "xpu:0", "cpu:1", "cuda:x"):
        with pytest.raises(ValueError, match=rf"^device '{re.escape(asked)}': the stages run on the CPU or CUDA GPUs; give auto, cpu, cuda or cuda:N$"):
            pick_device(asked)
    assert pick_device("cpu:0") == torch.device("cpu", 0)


def test_a_gpu_torch_cannot_use_is_said_where_auto_falls_back_to_the_cpu(monkeypatch, tmp_path):
    """A node's NVIDIA driver older than torch's CUDA (the registry's torch is built for CUDA 13):
    ``auto`` runs on the CPU, and says why, where it would otherwise pass unnoticed."""
    from pipeline import distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info = tmp_path / "version"
    info.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version: gcc 12\n")
    monkeypatch.setattr(distributed, "NVIDIA_DRIVER_INFO", info)
    with pytest.warns(RuntimeWarning, match=rf"^an NVIDIA driver is loaded \(535\.104\.05\) but torch {re.escape(torch.__version__)} \(CUDA .+\) cannot use the GPU, so this runs on the CPU"):
        assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(distributed, "NVIDIA_DRIVER_INFO", tmp_path / "absent")  # no driver: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pick_device("auto") == torch.device("cpu") and pick_device("cpu") == torch.device("cpu")


def test_ranks_wait_for_each_other_longer_than_nccls_ten_minutes(monkeypatch):
    """A rank done with its share waits at the end for the slowest (a hung decoder alone costs 15
    minutes): the process group's timeout is RANK_WAIT_S, not NCCL's default of 10 minutes."""
    from datetime import timedelta

    from pipeline.config import RANK_WAIT_S
    from pipeline.distributed import setup_worker

    calls = []
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kwargs: calls.append(kwargs))
    worker = setup_worker((0, 1), "cpu")
    assert calls == [{"backend": "gloo", "timeout": timedelta(seconds=RANK_WAIT_S)}] and RANK_WAIT_S == 6 * 3600
    assert (worker.rank, worker.world_size, worker.shard, worker.num_shards) == (1, 2, 1, 2)


class TakesTwo(Exception):
    """An error whose class takes other arguments than it keeps: pickled, it cannot be rebuilt."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")


def test_what_the_ranks_must_agree_on_is_made_by_rank_0_alone(monkeypatch):
    """``from_leader``: rank 0 makes the value (a list on the standard input, which torchrun gives
    to one rank; a manifest of a tree a downloader is filling) and broadcasts it; another rank
    takes what it is sent and makes nothing; rank 0's error is every rank's (torchrun ranks in
    the predict, features and fine-tune tests)."""
    from pipeline.cache import CacheError
    from pipeline.distributed import Worker, from_leader

    sent: list = []

    def broadcast(box: list, src: int) -> None:  # rank 0's box is sent; another's is filled with it
        assert src == 0
        if box[0] is None:
            box[0] = pickle.loads(sent[-1])
        else:
            sent.append(pickle.dumps(box[0]))

    monkeypatch.setattr(torch.distributed, "broadcast_object_list", broadcast)
    made = []
    leader, other = (Worker(0, 2, rank, 2, torch.device("cpu")) for rank in (0, 1))
    assert from_leader(lambda: made.append(0) or "rank 0's list", leader) == "rank 0's list"
    assert from_leader(lambda: made.append(1) or "rank 1's list", other) == "rank 0's list"
    assert made == [0] and [pickle.loads(s) for s in sent] == [("rank 0's list", None)]

    def unreadable() -> str:
        raise CacheError("list.txt: list file not found")

    for worker in (leader, other):
        with pytest.raises(CacheError, match=r"^list\.txt: list file not found$"):
            from_leader(unreadable, worker)
    assert len(sent) == 2 and isinstance(pickle.loads(sent[1])[1], CacheError)

    def fails_otherwise() -> str:
        raise TakesTwo("list.txt", "not UTF-8")

    with pytest.raises(TakesTwo, match=r"^list\.txt: not UTF-8$"):
        from_leader(fails_otherwise, leader)
    with pytest.raises(RuntimeError, match=r"^TakesTwo: list\.txt: not UTF-8$"):
        from_leader(fails_otherwise, other)
    assert from_leader(lambda: "alone", Worker(0, 1, 0, 1, torch.device("cpu"))) == "alone" and len(sent) == 3  # one process: no collective


RANK_AFTER_TEARDOWN = """
import os
from pathlib import Path
import torch
from pipeline.distributed import from_leader, gathered, joined_worker

with joined_worker((0, 1), "cpu") as worker:
    net = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
    with net.join():  # rank 1 a step fewer, as a rank whose batch held no decodable video
        for _ in range(2 - worker.rank):
            net(torch.ones(4, 3)).sum().backward()
    gathered(worker.rank, worker)
    from_leader(lambda: "made by rank 0", worker)
    del net
threads = sorted(Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in os.listdir("/proc/self/task"))
Path(f"threads-of-rank-{worker.rank}.txt").write_text("\\n".join(threads))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads listed through Linux's /proc")
def test_a_ranks_process_group_is_gone_with_its_threads_when_the_work_is_done(tmp_path):
    """After a DDP model (with the join of uneven inputs), gathers and a broadcast, the fine-tune
    stage's pattern, leaving the process group ends gloo's threads in both ranks: none run on into
    the interpreter's exit, where they left a finished rank to abort now and then. (torch's
    ``torch.distributed.nn`` module, imported by DDP, held the world group in its functions'
    defaults where it was first imported after the group was made.)"""
    run_on_two_ranks(RANK_AFTER_TEARDOWN, tmp_path)
    for rank in (0, 1):  # each rank's thread names after teardown, written by the rank
        threads = (tmp_path / f"threads-of-rank-{rank}.txt").read_text().splitlines()
        assert threads and not [name for name in threads if "gloo" in name], f"rank {rank}: {threads}"


def test_a_lock_held_by_a_task_of_the_same_slurm_step_says_to_give_each_task_its_share(tmp_path, monkeypatch):
    """``srun --ntasks=8 nsnet features ...`` without ``--shard``: eight processes run the whole
    command and all but the first stop at its lock; the error says why, where SLURM's variables
    name several tasks and torchrun started none."""
    lock = tmp_path / ".x.lock"
    for env, said in (({"SLURM_NTASKS": "8", "SLURM_PROCID": "3"}, True), ({"SLURM_NTASKS": "1"}, False), ({"SLURM_NTASKS": "8", "WORLD_SIZE": "8"}, False), ({}, False)):
        for name in ("SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "WORLD_SIZE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with file_lock(lock), pytest.raises(CacheError) as refused:
            with file_lock(lock, blocking=False, hint="wait for it"):
                pass
        hint = " (SLURM started 8 tasks of this step, each running the whole command: give each its share, `--shard $SLURM_PROCID/8` inside `bash -c '...'`, or start them with torchrun)"
        assert str(refused.value).endswith("wait for it" + (hint if said else "")), (env, str(refused.value))
