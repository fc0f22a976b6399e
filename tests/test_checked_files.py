"""Checkpoints and ``.npz`` files checked against their zip members' CRC-32 before they are read:
``torch.load`` took a damaged one as other weights without a word, numpy's reads gave a
traceback."""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import flip_byte
from pipeline.cache import CacheError, read_pointer
from pipeline.checked_files import checked_json, checked_npz, checked_torch_load, damaged_member, resume_point
from pipeline.config import TrainConfig
from pipeline.prototypes import GuidingScorer
from stages.prototypes import run_prototypes
from pipeline.checkpoints import WeightsError, read_checkpoint
from stages.train import load_sampler_inputs, read_guides, read_run_model, run_train


def _flip_in(path: Path, member_end: str, at: int = 100) -> str:
    """One byte of a member's data flipped (its offset read from its local header, whose extra
    field torch pads); returns the member's name."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_end))
    header = path.read_bytes()[info.header_offset : info.header_offset + 30]
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    flip_byte(path, info.header_offset + 30 + name_length + extra_length + at, 0x01)
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


def test_a_json_file_that_does_not_parse_is_named_with_what_to_do(tmp_path):
    record = tmp_path / "info.json"
    record.write_text('{"videos": 12, "classes": ["a", "b"]}')
    assert checked_json(record, "") == {"videos": 12, "classes": ["a", "b"]}
    record.write_text('{"videos": 12, "clas')  # cut short
    with pytest.raises(CacheError, match=re.escape(f"{record}: damaged, not JSON (Unterminated string starting at: line 1 column 16 (char 15): a copy cut short, or a disk error); do this")):
        checked_json(record, "do this")
    record.write_bytes(b'{"videos": 12, "cl\xe1sses": []}')  # a byte damaged: no UTF-8
    with pytest.raises(CacheError, match=re.escape(f"{record}: damaged, not JSON ('utf-8' codec can't decode byte 0xe1 in position 18")):
        checked_json(record, "")


def test_the_stages_records_read_back_damaged_are_said_with_the_file_and_what_to_run(tiny_pipeline):
    """A finished stage's run again reads its record (``info.json``, ``metrics.json``): one that
    did not parse stopped it with JSON's words alone, naming no file (before 2026-12-07). A
    sampler run's ``metrics.json`` is only warned of: its heads stand."""
    features, prototypes, _ = tiny_pipeline
    info = prototypes / "info.json"
    kept = info.read_bytes()
    info.write_bytes(kept[: len(kept) // 2])
    said = re.escape(f"{info}: damaged, not JSON (") + ".*" + re.escape(f"; remove {prototypes} and run `nsnet prototypes` again")
    with pytest.raises(CacheError, match=said):
        run_prototypes(features, GuidingScorer())
    with pytest.raises(CacheError, match=said):  # the later stages read it
        load_sampler_inputs(features, prototypes)
    info.write_bytes(kept)
    run = Path(run_train(features, prototypes, TrainConfig(epochs=1, batch_size=4, milestones=(1,)), progress=False).path)
    metrics = run / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:-3])
    # a trained run's record: warned of, the run's heads used (its remedy was to remove the run)
    with pytest.warns(RuntimeWarning, match=re.escape(f"{metrics}: damaged, not JSON (") + ".*" + re.escape("a copy cut short, or a disk error): the run's history is not shown; its model.pth is used as it is")):
        again = run_train(features, prototypes, TrainConfig(epochs=1, batch_size=4, milestones=(1,)), progress=False)
    assert (again.path, again.trained_epochs, again.history) == (str(run), 0, [])


def test_a_latest_pointer_damaged_is_named_with_what_to_do(tmp_path):
    """A ``latest-*.txt`` pointer with a byte that is no UTF-8 stopped the later stages with
    Python's "'utf-8' codec can't decode byte 0xff ..." alone (before 2026-12-07)."""
    out = tmp_path / "features-1.zarr"
    out.mkdir()
    pointer = tmp_path / "latest-features.txt"
    pointer.write_text(f"{out}\n")
    assert read_pointer(pointer) == out
    for damaged, why in ((b"", "empty"), (b"/data/\xffcache\n", "'utf-8' codec can't decode byte 0xff in position 6: invalid start byte"), (b"\0" * 40, "a NUL byte")):
        pointer.write_bytes(damaged)
        with pytest.raises(CacheError, match=re.escape(f"{pointer}: damaged, names no output ({why}); remove it and pass the output it named (`nsnet outputs` lists them), or run the stage that wrote it again")):
            read_pointer(pointer)
