"""A full disk or quota: warned of before the features stage starts, a clear error when it comes,
the finished work kept and completed by a re-run; an HDF5 export refused before it writes."""

import errno
import json
import re
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import demo_files, visible_names
from pipeline import cache as cache_mod
from pipeline.backends import export_onnx
from pipeline.cache import ARRAY_NAMES, DONE, FAILED, PENDING, CacheError, FeatureCache, Layout, ZarrWriter, clear_out_of_space, directory_size
from pipeline.config import ModelSpec
from pipeline.models import FrameEncoder, create_model
from stages.features import bytes_to_write, run_features


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_bytes_to_write_are_the_shards_to_compute_whole_and_an_hdf5_copy(tmp_path):
    layout = Layout(num_videos=10, num_frames=6, light_dim=8, rec_dim=16, num_classes=3, shard_videos=4)
    # a video: 6 frames x (8 x 2 + 16 x 2 light and recognizer float16, 3 x 4 logits, 4 frame index) + 4 num_frames + 1 status + 8 source size + 1 decoder rules
    assert layout.video_bytes() == 6 * (16 + 32 + 12 + 4) + 4 + 1 + 8 + 1 == 398
    attrs = {"videos_per_batch": 2, "videos_per_shard": 4}
    status = np.array([DONE, PENDING, DONE, DONE, DONE, DONE, DONE, FAILED, DONE, PENDING], dtype=np.int8)  # shards of 4, 4, 2
    unchanged = np.zeros(10, dtype=bool)
    assert bytes_to_write(status, attrs, layout, False, False, unchanged) == (4 + 2) * 398
    assert bytes_to_write(status, attrs, layout, True, False, unchanged) == (4 + 4 + 2) * 398
    assert bytes_to_write(status, attrs, layout, False, True, unchanged) == (4 + 2 + 10) * 398
    assert bytes_to_write(np.full(10, DONE, dtype=np.int8), attrs, layout, False, False, unchanged) == 0
    # a video whose file changed since is computed again: its shard is written whole
    assert bytes_to_write(np.full(10, DONE, dtype=np.int8), attrs, layout, False, False, np.arange(10) == 5) == 4 * 398


def test_short_of_space_is_a_warning_with_both_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(2**40, 2**40 - 3 * 2**20, 3 * 2**20))
    with pytest.warns(RuntimeWarning, match=r"new\.zarr: finishing writes up to 1\.5 GiB before compression, and 3 MiB is free there; the run may stop when the disk is full \(what it finished by then is kept"):
        cache_mod.warn_if_short_of_space(tmp_path / "not yet" / "new.zarr", 3 * 2**29, "finishing writes")  # its folder is made later
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache_mod.warn_if_short_of_space(tmp_path, 3 * 2**20, "finishing writes")  # room enough: no warning


def test_out_of_space_is_recognised_through_a_library_wrapping_it(tmp_path):
    with pytest.raises(CacheError, match=r"store\.zarr: no space left on device while writing \([\d.]+ [MG]iB free\); kept as it was"):
        with clear_out_of_space(tmp_path / "store.zarr", "kept as it was"):
            try:
                _disk_full()
            except OSError as exc:
                raise RuntimeError("a library's own words") from exc
    with pytest.raises(CacheError, match="disk quota exceeded"):
        with clear_out_of_space(tmp_path, "kept"):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    with pytest.raises(PermissionError):  # other errors pass as they are
        with clear_out_of_space(tmp_path, "kept"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_a_full_disk_stops_the_stage_clearly_and_a_rerun_resumes_to_the_same_cache(tiny_videos, tiny_config, run_options, tmp_path, monkeypatch):
    written = ZarrWriter.write_block
    calls = []

    def full_after_one_shard(self, *args):
        calls.append(args[0])
        if len(calls) > 1:
            _disk_full()
        written(self, *args)

    monkeypatch.setattr(ZarrWriter, "write_block", full_after_one_shard)
    with pytest.raises(CacheError, match=r"\.zarr: no space left on device while writing \([\d.]+ [MG]iB free\); the videos finished before are kept: free space and run the same command again to resume"):
        run_features("demo", tiny_videos, tiny_config, run_options)
    (store,) = (run_options.cache_dir / "demo").glob("*.zarr")
    with FeatureCache(store) as partial:
        assert partial["status"][:].tolist() == [DONE] * 4 + [PENDING] * 8  # 12 videos in shards of 4: the first written

    monkeypatch.setattr(ZarrWriter, "write_block", written)
    resumed = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (resumed.computed, resumed.skipped, resumed.done) == (8, 4, 12)
    reference = run_features("demo", tiny_videos, tiny_config, replace(run_options, cache_dir=tmp_path / "reference"))
    with FeatureCache(store) as a, FeatureCache(Path(reference.cache)) as b:
        for name in ARRAY_NAMES:
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


def test_an_hdf5_export_without_room_is_refused_before_it_writes_and_the_store_kept(tiny_videos, tiny_config, run_options, monkeypatch):
    config = replace(tiny_config, storage="hdf5")
    monkeypatch.setattr(cache_mod, "free_bytes", lambda path: 0)
    with pytest.warns(RuntimeWarning, match="its HDF5 export included"), pytest.raises(CacheError) as refused:
        run_features("demo", tiny_videos, config, run_options)
    (staging,) = (run_options.cache_dir / "demo").glob("*.h5.staging.zarr")
    needed = cache_mod.size_text(int(directory_size(staging) * 1.1))
    final = staging.name.removesuffix(".staging.zarr")
    assert str(refused.value) == (f"{staging.parent / final}: the HDF5 export needs about {needed} (the store's size and a tenth) and 0 MiB is free; "
                                  f"the finished Zarr store {staging.name} is kept: free space and run the same command again to export it")
    assert not list(staging.parent.glob("*.h5*.tmp"))

    monkeypatch.undo()
    again = run_features("demo", tiny_videos, config, run_options)
    assert (again.computed, again.done, again.cache) == (0, 12, str(staging.parent / final))
    assert not staging.exists()
    with h5py.File(again.cache) as h5:
        assert h5["status"][:].tolist() == [DONE] * 12


def test_the_copy_a_killed_hdf5_export_left_goes_before_the_room_is_counted(tiny_videos, tiny_config, run_options, monkeypatch):
    """A kill while the HDF5 file was written leaves its part-written copy (``<cache>.h5.<pid>.tmp``,
    up to the cache's size: some 10 GB at FCVID's); the next run's export removes it first, so
    that the room it held counts, and no copy stays beside the finished file."""
    config = replace(tiny_config, storage="hdf5")
    with monkeypatch.context() as patched, pytest.warns(RuntimeWarning), pytest.raises(CacheError):
        patched.setattr(cache_mod, "free_bytes", lambda path: 0)
        run_features("demo", tiny_videos, config, run_options)  # the store finished, its export refused
    (staging,) = (run_options.cache_dir / "demo").glob("*.h5.staging.zarr")
    left = staging.with_name(staging.name.removesuffix(".staging.zarr") + ".4321.tmp")
    left.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(2**20))
    monkeypatch.setattr(cache_mod, "free_bytes", lambda path: 0 if left.exists() else 2**40)  # the disk full but for the copy
    again = run_features("demo", tiny_videos, config, run_options)
    assert (again.computed, again.done) == (0, 12) and again.cache.endswith(".h5")
    assert not list(staging.parent.glob("*.tmp")) and not staging.exists()


def test_an_hdf5_export_that_runs_out_of_space_leaves_no_part_written_file(tiny_videos, tiny_config, run_options, monkeypatch):
    config = replace(tiny_config, storage="hdf5")
    monkeypatch.setattr(h5py.Dataset, "__setitem__", _disk_full)
    with pytest.raises(CacheError, match=r"\.h5: no space left on device while writing \([\d.]+ [MG]iB free\); the finished Zarr store [0-9a-z-]+\.h5\.staging\.zarr is kept"):
        run_features("demo", tiny_videos, config, run_options)
    folder = run_options.cache_dir / "demo"
    assert not list(folder.glob("*.tmp")) and not list(folder.glob("*.h5")) and len(list(folder.glob("*.h5.staging.zarr"))) == 1


def test_an_onnx_export_out_of_space_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    encoder = FrameEncoder(create_model(ModelSpec("test_resnet", weights="none", resolution=32), num_classes=5, seed=0))
    monkeypatch.setattr(torch.onnx, "export", _disk_full)
    with pytest.raises(CacheError, match=r"\.onnx: no space left on device while writing \([\d.]+ [MG]iB free\); the file there before, if any, is unchanged: free space and run the same command again"):
        export_onnx(encoder, (3, 32, 32), tmp_path / "onnx")
    assert visible_names(tmp_path / "onnx") == []  # the export's hidden lock aside


def test_a_checkpoint_written_on_a_full_disk_leaves_the_one_before(tmp_path, monkeypatch):
    from pipeline.models import save_atomic

    last = tmp_path / "last.pth"
    save_atomic({"epoch": 3}, last)

    def half_then_full(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        _disk_full()

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(CacheError, match=r"last\.pth: no space left on device while writing \([\d.]+ [MG]iB free\); the file there before, if any, is unchanged"):
        save_atomic({"epoch": 4}, last)
    monkeypatch.undo()
    assert torch.load(last) == {"epoch": 3} and sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


def test_a_checkpoint_torch_could_not_write_says_so_with_the_free_space(tmp_path, monkeypatch):
    """On a full disk torch.save's zip writer raises a RuntimeError without an errno, "[enforce
    fail at inline_container.cc:672] . unexpected pos 91136 vs 91024" (what a training run
    printed alone when the development machine's disk filled, 2026-12-07, the fifty-fourth
    session): said now with the free space and what was kept; the checkpoint before stays."""
    from pipeline.models import save_atomic

    last = tmp_path / "last.pth"
    save_atomic({"epoch": 3}, last)

    def writer_failed(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 91136 vs 91024")

    monkeypatch.setattr(torch, "save", writer_failed)
    with pytest.raises(CacheError, match=r"last\.pth: torch could not write it \(\[enforce fail at inline_container.cc:672\] \. unexpected pos 91136 vs 91024\); [\d.]+ [MGT]iB free on its disk: a full disk or quota, or a disk error; the file there before, if any, is unchanged"):
        save_atomic({"epoch": 4}, last)
    monkeypatch.setattr(torch, "save", lambda obj, path: (_ for _ in ()).throw(RuntimeError("CUDA error: out of memory")))
    with pytest.raises(RuntimeError, match="CUDA error"):  # other errors as they are
        save_atomic({"epoch": 5}, last)
    monkeypatch.undo()
    assert torch.load(last) == {"epoch": 3} and sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


def test_an_output_folder_written_on_a_full_disk_leaves_nothing_and_a_rerun_writes_it(tiny_videos, tiny_config, run_options, monkeypatch):
    from pipeline.prototypes import GuidingScorer
    from stages.prototypes import run_prototypes

    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    monkeypatch.setattr(np, "savez", _disk_full)
    with pytest.raises(CacheError, match=r"\.prototypes-[0-9a-f]+: no space left on device while writing \([\d.]+ [MG]iB free\); nothing of it is kept: free space and run the same command again"):
        run_prototypes(features, GuidingScorer())
    assert not [p.name for p in features.parent.iterdir() if ".prototypes-" in p.name and not p.name.endswith(".lock")]
    monkeypatch.undo()
    assert run_prototypes(features, GuidingScorer()).computed


def test_a_log_line_cut_short_is_passed_over_with_a_warning_and_the_next_written_on_a_line_of_its_own(tiny_videos, tiny_config, run_options):
    """A features log ending in half a line (its job killed in the middle of a write, or the disk
    full) stopped every later run of the cache at its summary with JSON's "Unterminated string
    starting at: line 1 column 37 (char 36)", naming no file, and a line appended after it was
    lost with it (before 2026-12-07)."""
    notes = demo_files(tiny_videos)[7]
    notes.write_text("meeting notes, not a video")
    first = run_features("demo", tiny_videos, tiny_config, run_options)
    assert first.failed == 1
    (log,) = cache_mod.failures_dir(Path(first.cache)).glob("*.jsonl")
    with open(log, "ab") as handle:
        handle.write(b'{"video_id": "train_00_003", "pa')
    with pytest.warns(RuntimeWarning, match=re.escape(f"{log}: line 2 not whole (a job killed while writing, or a full disk): passed over")):
        again = run_features("demo", tiny_videos, tiny_config, replace(run_options, retry_failed=True))
    assert again.computed == 0 and again.failed_now == 1 and again.failed == 1
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and lines[1] == '{"video_id": "train_00_003", "pa' and json.loads(lines[2])["reason"] == json.loads(lines[0])["reason"]
    (failures,) = Path(first.cache).parent.glob("*.failures.jsonl")
    (failure,) = map(json.loads, failures.read_text().splitlines())
    assert failure["path"] == str(notes.relative_to(tiny_videos)) and failure["reason"].startswith("not a video file (")
