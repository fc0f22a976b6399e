"""Checkpoints and ``.npz`` files checked against their zip members' CRC-32 before they are read:
``torch.load`` took a damaged one as other weights without a word, numpy's reads gave a
traceback."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cache import CacheError
from pipeline.checked_files import checked_npz, checked_torch_load, damaged_member, resume_point
from pipeline.checkpoints import WeightsError, read_checkpoint
from stages.train import read_guides, read_run_model


def _flip_in(path: Path, member_end: str, at: int = 100) -> str:
    """One byte of a member's data flipped (its offset read from its local header, whose extra
    field torch pads); returns the member's name."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_end))
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + at] ^= 0x01
    path.write_bytes(bytes(data))
    return info.filename


def test_torch_load_takes_a_damaged_checkpoint_and_the_check_names_its_member(tmp_path):
    weights = {"w": torch.arange(1000, dtype=torch.float32)}
    path = tmp_path / "w.pth"
    torch.save(weights, path)
    assert damaged_member(path) is None
    member = _flip_in(path, "data/0", at=400)
    assert torch.load(path, weights_only=True)["w"][100] != 100  # what this guards against: another weight, no error
    assert damaged_member(path) == f"{member}, whose CRC-32 does not match what was written"
    with pytest.raises(CacheError, match=rf"w.pth: damaged \({member}, whose CRC-32 does not match what was written: a copy cut short, or a disk error\); train again$"):
        checked_torch_load(path, "train again", weights_only=True)
    with pytest.raises(CacheError, match=r"last.pth: damaged .*; remove it to train from the first epoch$"):
        torch.save(weights, tmp_path / "last.pth")
        _flip_in(tmp_path / "last.pth", "data/0")
        resume_point(tmp_path / "last.pth", weights_only=True)


def test_a_legacy_checkpoint_is_loaded_unchecked_and_one_cut_short_is_said_so(tmp_path):
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)  # a pickle, no zip: nothing to check
    assert damaged_member(legacy) is None and checked_torch_load(legacy, "", weights_only=True)["w"].tolist() == [1, 1, 1]
    cut = tmp_path / "cut.pth"
    torch.save({"w": torch.ones(3)}, cut)
    cut.write_bytes(cut.read_bytes()[:600])  # a copy cut short: torch's error was "failed finding central directory"
    with pytest.raises(CacheError, match=r"cut.pth: damaged \(the directory at its end does not read: File is not a zip file: a copy cut short, or a disk error\); again$"):
        checked_torch_load(cut, "again", weights_only=True)


def test_a_users_weights_damaged_are_said_so(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(4, 4)}, path)
    member = _flip_in(path, "data/0", at=10)
    with pytest.raises(WeightsError, match=rf"resnet.pth: damaged \({member}, .*\); copy it again from where it came$"):
        read_checkpoint(path)


def test_a_sampler_runs_model_and_a_prototypes_folders_guides_damaged_are_said_with_what_to_run(tmp_path):
    run = tmp_path / "features.zarr.train-1"
    run.mkdir()
    torch.save({"heads": torch.zeros(64)}, run / "model.pth")
    assert read_run_model(run, weights_only=True)["heads"].shape == (64,)
    _flip_in(run / "model.pth", "data/0")
    with pytest.raises(CacheError, match=rf"model.pth: damaged .*; remove {run} and run `nsnet train` again$"):
        read_run_model(run, weights_only=True)

    prototypes = tmp_path / "features.zarr.prototypes-1"
    prototypes.mkdir()
    np.savez(prototypes / "guides.npz", g=np.arange(50, dtype=np.float32), prototypes=np.eye(3))
    assert read_guides(prototypes, "g")["g"].tolist() == list(range(50)) and set(checked_npz(prototypes / "guides.npz", "")) == {"g", "prototypes"}
    assert set(read_guides(prototypes, "g_shift")) == set()  # asked for and not held: absent, as a cache without other candidates leaves it
    _flip_in(prototypes / "guides.npz", "g.npy", at=150)
    with pytest.raises(CacheError, match=rf"guides.npz: damaged \(Bad CRC-32 for file 'g.npy': a copy cut short, or a disk error\); remove {prototypes} and run `nsnet prototypes` again"):
        read_guides(prototypes, "g")
    assert read_guides(prototypes, "prototypes")["prototypes"].tolist() == np.eye(3).tolist()  # the damaged member is not read
