"""Which device a stage's ``--device`` gives each torchrun rank, and the errors for GPUs not there."""

import pytest
import torch

from pipeline.distributed import pick_device


@pytest.fixture
def two_gpus(monkeypatch):
    """A node that shows two CUDA devices (nothing runs on them here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


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
