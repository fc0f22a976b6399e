"""Videos whose files changed after their features were computed: the size the cache records for
each video's source, which videos a re-run computes again, and the key that the stages after
the features stage give their outputs (the cache's content fingerprint)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import cache_arrays, demo_files, flip_byte
from pipeline.cache import DONE, FAILED, NOT_RECORDED, PENDING, CacheError, FeatureCache, ZarrWriter, changed_sources, store_files
from pipeline.prototypes import GuidingScorer
from pipeline.video import NO_SOURCE, source_size
from stages.features import run_features
from stages.prototypes import run_prototypes
from stages.train import load_sampler_inputs


def test_a_source_size_is_a_files_bytes_a_frame_folders_frames_and_minus_two_where_nothing_is(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x" * 1234)
    frames = tmp_path / "b"
    frames.mkdir()
    for name in ("img_00001.jpg", "img_00002.jpg", "img_00003.JPG", "flow_x_00001.jpg", "._img_00001.jpg", "notes.txt"):
        (frames / name).write_bytes(b"y")
    (frames / "@eaDir").mkdir()
    assert source_size(video) == 1234
    assert source_size(frames) == 3  # the RGB frames alone: not the flow, the macOS companion, the text or the thumbnails
    assert source_size(tmp_path / "gone.mp4") == NO_SOURCE == -2
    assert source_size(tmp_path / "empty.mp4") == NO_SOURCE
    (tmp_path / "empty.mp4").touch()
    assert source_size(tmp_path / "empty.mp4") == 0


def test_a_source_changed_is_one_of_another_size_that_is_there_where_one_was_recorded():
    recorded = np.array([100, 100, 100, NOT_RECORDED, NO_SOURCE, NO_SOURCE, 0, 7])
    now = np.array([100, 101, NO_SOURCE, 5, NO_SOURCE, 40, 0, 0])
    # same size; another; gone since (kept); never recorded (a store from before); still missing;
    # missing then and there now; empty both times; emptied since
    assert changed_sources(recorded, now).tolist() == [False, True, False, False, False, True, False, True]


def _store(path: Path, status: list[int], sizes: list[int] | None) -> Path:
    """A two-array store (status and, unless None, source sizes) of fingerprint "f" * 64."""
    n = len(status)
    arrays = {"status": ((n,), "int8"), **({} if sizes is None else {"source_sizes": ((n,), "int64")})}
    writer = ZarrWriter(path, "f" * 64, {"videos_per_batch": 2}, arrays, 2)
    writer.write_block(0, {} if sizes is None else {"source_sizes": np.array(sizes)}, np.array(status, dtype=np.int8))
    return path


def test_the_content_fingerprint_follows_the_finished_videos_and_their_sources_sizes(tmp_path):
    """The key later stages give their outputs: the configuration's fingerprint, and where the
    store records its sources, which videos are finished and their sizes (a failure retried
    that finished, a file computed again): each of those changes it. A store made before it
    recorded them keeps the plain fingerprint, and what was computed from it keeps its key."""
    import hashlib

    def key(path: Path) -> str:
        with FeatureCache(path) as cache:
            assert cache.fingerprint == "f" * 64
            return cache.content_fingerprint

    status, sizes = [DONE, FAILED, DONE], [10, NO_SOURCE, 30]
    base = key(_store(tmp_path / "a.zarr", status, sizes))
    expected = hashlib.sha256(("f" * 64).encode() + np.array(status, dtype=np.int8).tobytes() + np.array(sizes, dtype=np.int64).tobytes()).hexdigest()
    assert base == expected and base == key(_store(tmp_path / "same.zarr", status, sizes))
    assert key(_store(tmp_path / "retried.zarr", [DONE, DONE, DONE], sizes)) != base
    assert key(_store(tmp_path / "resized.zarr", status, [10, NO_SOURCE, 31])) != base
    assert key(_store(tmp_path / "before.zarr", status, None)) == "f" * 64


def test_which_videos_a_sibling_gives_by_path_segment_status_size_and_split():
    """Hand-made: a sibling listing five videos, asked for some of a manifest's (the sizes given
    in the order of the videos asked for)."""
    from pipeline.datasets.manifest import Manifest, VideoRecord
    from pipeline.sibling_caches import Sibling, held, reusable_rows

    videos = (VideoRecord("a", "a.mp4", (0,), "train"), VideoRecord("b", "b.mp4", (0,), "train"), VideoRecord("c", "c.mp4", (1,), "val"),
              VideoRecord("d", "d.mp4", (1,), "train", (2.0, 12.0)), VideoRecord("e", "e.mp4", (0,), "val"), VideoRecord("f", "f.mp4", (1,), "val"),
              VideoRecord("g", "g.mp4", (0,), "train"))  # fmt: skip
    manifest = Manifest("x", ("p", "q"), videos)
    rows = {("a.mp4", None): 0, ("b.mp4", None): 1, ("c.mp4", None): 2, ("d.mp4", (2.0, 12.0)): 3, ("e.mp4", None): 4, ("g.mp4", None): 5}
    sibling = Sibling(Path("s.zarr"), None, rows, ["train", "train", "train", "train", "val", "train"],
                      np.array([DONE, DONE, FAILED, DONE, PENDING, DONE]), np.array([10, 20, NO_SOURCE, 40, 50, NOT_RECORDED]))  # fmt: skip
    asked = np.array([1, 2, 3, 4, 5, 6])  # not video 0
    assert held([sibling], manifest, asked).tolist() == [1, 2, 3, 4, 6]  # f is not listed
    now = np.array([20, NO_SOURCE, NO_SOURCE, 50, 60, 70])  # b unchanged, c still missing, d gone since, e, f, g
    found = reusable_rows([sibling], manifest, asked, now, offsets=1)
    # a not asked; b same size; c failed, missing then and now; d done, its file gone since;
    # e pending in the sibling; f not listed; g its size never recorded
    assert found.sibling.tolist() == [-1, 0, 0, 0, -1, -1, -1] and found.row[[1, 2, 3]].tolist() == [1, 2, 3]
    assert 1 in found and 0 not in found
    # with candidates per segment a sibling's video of another split is not the same rows (c: train there)
    assert reusable_rows([sibling], manifest, asked, now, offsets=2).sibling.tolist() == [-1, 0, -1, 0, -1, -1, -1]
    # another size now is no copy
    assert reusable_rows([sibling], manifest, asked[:1], np.array([21]), offsets=1).sibling.tolist() == [-1] * 7


def test_a_shard_is_written_rows_first_then_its_source_sizes_then_its_status(tmp_path):
    """The order of a shard's files: a kill between them leaves a video whose new size is not
    written taken again by the next run, and one whose status is not written as it was."""
    writer = ZarrWriter(tmp_path / "s.zarr", "f" * 64, {"videos_per_batch": 2}, {"status": ((2,), "int8")}, 2)
    written = []

    class Recording:
        def __init__(self, name: str):
            self.name = name

        def __setitem__(self, where, value) -> None:
            written.append(self.name)

    writer.arrays = {name: Recording(name) for name in ("source_sizes", "light_features", "num_frames", "status")}
    writer.write_block(0, {"source_sizes": np.array([3, 4]), "light_features": np.zeros((2, 1, 1)), "num_frames": np.array([5, 6])}, np.array([DONE, FAILED], dtype=np.int8))
    assert written == ["light_features", "num_frames", "source_sizes", "status"]


def test_a_video_whose_file_changed_is_computed_again_alone_and_the_prototypes_follow(tiny_videos, tiny_config, run_options):
    """The cache records each video's file size. One file replaced by another video's bytes
    (a re-download under the same name) is computed again on the next run, its rows those of
    the video it holds now; a file touched (another time, the same bytes, as a copy of the
    dataset gives every file) and a file deleted since (datasets are moved off after their
    features are computed) keep their rows. The cache's key for later stages changes with the
    row, so the prototypes are computed again, into a new folder."""
    first = run_features("demo", tiny_videos, tiny_config, run_options)
    cache = Path(first.cache)
    files = demo_files(tiny_videos)
    before = cache_arrays(cache)
    assert before["source_sizes"].tolist() == [f.stat().st_size for f in files]
    with FeatureCache(cache) as c:
        fingerprint, key_before = c.fingerprint, c.content_fingerprint
    prototypes_before = run_prototypes(cache, GuidingScorer()).path

    changed, donor = next((i, j) for i in range(len(files)) for j in range(len(files)) if files[i].stat().st_size != files[j].stat().st_size and before["num_frames"][i] != before["num_frames"][j])
    shutil.copyfile(files[donor], files[changed])
    touched, deleted = next(k for k in range(len(files)) if k not in (changed, donor)), next(k for k in reversed(range(len(files))) if k not in (changed, donor))
    os.utime(files[touched], ns=(1, 1))
    files[deleted].unlink()

    again = run_features("demo", tiny_videos, tiny_config, run_options)
    assert again.cache == first.cache and (again.changed, again.computed, again.skipped, again.failed) == (1, 1, 11, 0)
    assert again.frames == tiny_config.num_frames  # that video's frames alone went through the models, not its shard's
    assert "computed again (file changed)  1 (another size than when computed)" in again.table()
    after = cache_arrays(cache)
    assert after["source_sizes"][changed] == files[donor].stat().st_size
    for name in ("num_frames", "frame_indices"):
        assert after[name][changed].tolist() == before[name][donor].tolist()
    np.testing.assert_allclose(after["rec_logits"][changed], before["rec_logits"][donor], rtol=1e-4, atol=1e-4)
    others = np.arange(len(files)) != changed
    for name, values in before.items():  # the rest as it was, bit for bit: the touched and the deleted videos' rows too
        np.testing.assert_array_equal(after[name][others], values[others], err_msg=name)
    with FeatureCache(cache) as c:
        key_after = c.content_fingerprint
        assert c.fingerprint == fingerprint and key_after != key_before
    with pytest.raises(CacheError, match="made from another feature cache, or from this one before videos of it were computed again"):
        load_sampler_inputs(cache, Path(prototypes_before))  # what nsnet train would take as the last prototypes made
    prototypes_after = run_prototypes(cache, GuidingScorer())
    assert prototypes_after.computed and prototypes_after.path != prototypes_before
    assert load_sampler_inputs(cache, Path(prototypes_after.path)).content_fingerprint == key_after

    still = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (still.changed, still.computed, still.skipped) == (0, 0, 12)


def test_a_missing_video_that_appears_is_computed_without_retry_failed(tiny_videos, tiny_config, run_options, tmp_path):
    """A file missing in the first run (not downloaded yet) fails; once it is there the next
    run computes it without ``--retry-failed``, where a corrupt file that has not changed stays
    failed until asked."""
    files = demo_files(tiny_videos)
    kept = tmp_path / "later.mp4"
    shutil.move(files[2], kept)
    files[7].write_bytes(b"not a video at all")
    first = run_features("demo", tiny_videos, tiny_config, run_options)
    assert first.failed == 2
    assert cache_arrays(Path(first.cache))["source_sizes"][[2, 7]].tolist() == [NO_SOURCE, len(b"not a video at all")]

    shutil.move(kept, files[2])
    second = run_features("demo", tiny_videos, tiny_config, run_options)
    status = cache_arrays(Path(second.cache))["status"]
    assert (second.changed, second.computed, second.failed, second.frames) == (1, 1, 1, tiny_config.num_frames) and status[2] == DONE and status[7] == FAILED
    retried = run_features("demo", tiny_videos, tiny_config, replace(run_options, retry_failed=True))
    assert (retried.changed, retried.failed_now, retried.failed) == (0, 1, 1)


def test_a_finished_hdf5_cache_computes_a_changed_video_in_its_store_and_is_written_again(tiny_videos, tiny_config, run_options):
    """A finished ``--storage hdf5`` cache has no store left to write in: a video changed since
    has the file copied back into its staging store (what a killed copy left is cleared), the
    video computed there and the file written again; the staging store goes. Before, such a
    run, as one with ``--retry-failed``, found the file finished and did nothing."""
    config = replace(tiny_config, storage="hdf5")
    first = Path(run_features("demo", tiny_videos, config, run_options).cache)
    before = cache_arrays(first)
    files = demo_files(tiny_videos)
    shutil.copyfile(files[0], files[11])
    partial = first.with_name(first.name + ".staging.zarr.999.tmp")
    partial.mkdir()
    again = run_features("demo", tiny_videos, config, run_options)
    assert Path(again.cache) == first and (again.changed, again.computed, again.done) == (1, 1, 12)
    assert not first.with_name(first.name + ".staging.zarr").exists() and not partial.exists()
    assert store_files(first) == {"total": 1}
    after = cache_arrays(first)
    assert after["source_sizes"][11] == files[0].stat().st_size and after["num_frames"][11] == before["num_frames"][0]
    for name, values in before.items():
        np.testing.assert_array_equal(after[name][:11], values[:11], err_msg=name)
    assert run_features("demo", tiny_videos, config, run_options).computed == 0


def _manifest_lines(root: Path) -> list[str]:
    return (root / "manifest.csv").read_text().splitlines()


def _write_manifest(root: Path, lines: list[str]) -> None:
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")


def test_a_cache_for_another_manifest_copies_the_rows_a_sibling_cache_holds(tiny_videos, tiny_config, run_options):
    """A label corrected in the list makes another manifest, so another cache; its videos'
    rows are those of the cache made before (the same configuration, the same files), copied
    from it, not computed: every array equal to the sibling's. A manifest with a video of its
    own computes that video alone and copies the others; a sibling of another configuration
    (another T) is not one."""
    first = run_features("demo", tiny_videos, tiny_config, run_options)
    lines = _manifest_lines(tiny_videos)
    path, label, split = lines[3].split(",")
    relabelled = lines[:3] + [f"{path},{lines[5].split(',')[1]},{split}"] + lines[4:]
    assert relabelled[3] != lines[3]
    _write_manifest(tiny_videos, relabelled)
    second = run_features("demo", tiny_videos, tiny_config, run_options)
    assert second.cache != first.cache and (second.copied, second.computed, second.done) == (12, 0, 12)
    assert second.copied_from == [Path(first.cache).name] and "copied from sibling caches  12 (" in second.table()
    theirs, mine = cache_arrays(Path(first.cache)), cache_arrays(Path(second.cache))
    for name, values in theirs.items():
        np.testing.assert_array_equal(mine[name], values, err_msg=name)

    # a thirteenth video, another name for the bytes of video 0, ninth in the list: computed
    # alone, the twelve others copied
    shutil.copyfile(tiny_videos / lines[1].split(",")[0], tiny_videos / "videos" / "extra.mp4")
    _write_manifest(tiny_videos, relabelled[:9] + ["videos/extra.mp4," + relabelled[1].split(",", 1)[1]] + relabelled[9:])
    third = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (third.copied, third.computed, third.done, third.frames) == (12, 1, 13, tiny_config.num_frames)
    grown = cache_arrays(Path(third.cache))
    for name, values in theirs.items():
        np.testing.assert_array_equal(np.delete(grown[name], 8, axis=0), values, err_msg=name)
    np.testing.assert_allclose(grown["rec_logits"][8], theirs["rec_logits"][0], rtol=1e-4, atol=1e-4)
    assert grown["source_sizes"][8] == theirs["source_sizes"][0] and grown["frame_indices"][8].tolist() == theirs["frame_indices"][0].tolist()

    other = run_features("demo", tiny_videos, replace(tiny_config, num_frames=4), run_options)
    assert (other.copied, other.computed) == (0, 13)


def test_a_sibling_with_a_damaged_chunk_gives_the_rows_it_can_and_its_damaged_ones_are_computed(tiny_videos, tiny_config, run_options):
    """A damaged chunk in a sibling (12 videos in shards of 4; the second shard's logits) made
    the new cache's run stop with its error; its other videos' rows are copied now and that
    shard's four computed, with a warning naming the sibling, to the same numbers. A sibling
    whose status does not read gives nothing (with a warning)."""
    first = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    theirs = cache_arrays(first)
    lines = _manifest_lines(tiny_videos)
    path, _, split = lines[3].split(",")
    _write_manifest(tiny_videos, lines[:3] + [f"{path},{lines[5].split(',')[1]},{split}"] + lines[4:])
    shard = next(p for p in sorted((first / "rec_logits" / "c" / "1").rglob("*")) if p.is_file())
    flip_byte(shard, 20)
    with pytest.warns(UserWarning, match=rf"{first.name}: rec_logits\[.*\] is damaged .*; its 4 video\(s\) are computed here instead"):
        second = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (second.copied, second.computed, second.done) == (8, 4, 12)
    mine = cache_arrays(Path(second.cache))
    for name in ("light_features", "frame_indices", "status"):
        np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)
    np.testing.assert_allclose(mine["rec_logits"], theirs["rec_logits"], rtol=1e-4, atol=1e-4)

    status = next(p for p in sorted((first / "status" / "c").rglob("*")) if p.is_file())
    flip_byte(status, 10)
    _write_manifest(tiny_videos, lines[:2] + lines[3:])  # another manifest again: eleven videos
    with pytest.warns(UserWarning, match=rf"{first.name}: status\[:\] is damaged .*; no rows are copied from it"):
        third = run_features("demo", tiny_videos, tiny_config, run_options)
    assert third.copied_from == [Path(second.cache).name] and (third.copied, third.computed) == (11, 0)


def test_a_sibling_row_is_not_copied_where_the_file_changed_since_and_its_failure_comes_along(tiny_videos, tiny_config, run_options):
    """A sibling's row whose file has another size now is computed, not copied; one whose file
    is gone since is copied (datasets are moved off once their features are computed); a
    sibling's failure (a file missing then and now) is copied as a failure with its logged
    reason. The sibling here is an HDF5 cache (the same configuration in the other format)."""
    files = demo_files(tiny_videos)
    files[9].unlink()
    first = run_features("demo", tiny_videos, replace(tiny_config, storage="hdf5"), run_options)
    assert first.failed == 1 and first.cache.endswith(".h5")
    shutil.copyfile(files[1], files[2])  # a video of the first shard replaced since
    files[5].unlink()  # and one deleted since: its rows are copied, as its own cache keeps them
    lines = _manifest_lines(tiny_videos)
    _write_manifest(tiny_videos, lines[:1] + [lines[11]] + lines[1:11] + lines[12:])  # video 10 first
    second = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (second.copied, second.computed, second.failed) == (11, 1, 1)  # video 2 computed alone
    assert [f["path"] for f in second.failures] == [first.failures[0]["path"]] and second.failures[0]["reason"] == first.failures[0]["reason"] == "file not found"
    mine = cache_arrays(Path(second.cache))
    assert mine["source_sizes"][3] == files[1].stat().st_size and mine["status"].tolist() == [DONE] * 10 + [FAILED, DONE]
    sibling = cache_arrays(Path(first.cache))
    for name, values in sibling.items():  # video 5, at 6 in the new order, as the sibling has it
        np.testing.assert_array_equal(mine[name][6], values[5], err_msg=name)


def test_each_shard_share_looks_at_its_own_videos_and_computes_its_own_changes(tiny_videos, tiny_config, run_options):
    """Separate jobs (``--shard i/n``) writing one store each look at the files of their own
    share alone: a file changed in the second share (shards of 4 videos, alternating) is
    computed by the second job, not seen by the first."""
    first = run_features("demo", tiny_videos, tiny_config, run_options)
    files = demo_files(tiny_videos)
    shutil.copyfile(files[0], files[5])  # video 5: shard 1, the second job's
    mine = run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 2)), cache_path=Path(first.cache))
    assert (mine.changed, mine.computed, mine.skipped) == (0, 0, 8)
    theirs = run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(1, 2)), cache_path=Path(first.cache))
    assert (theirs.changed, theirs.computed, theirs.skipped, theirs.frames) == (1, 1, 3, tiny_config.num_frames)
    assert cache_arrays(Path(first.cache))["source_sizes"][5] == files[0].stat().st_size


def test_a_dry_run_says_what_a_run_would_do_and_writes_nothing(tiny_videos, tmp_path, onnx_exports):
    """``nsnet features --dry-run``: the videos a run would compute (never computed, files
    changed since, failures retried), keep and copy from sibling caches, with no store made or
    touched."""
    from click.testing import CliRunner

    from stages.cli import main

    cache_dir = tmp_path / "cache"
    args = ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(cache_dir), "--onnx-dir", str(onnx_exports),
            "--frames", "6", "--light-model", "test_efficientnet", "--light-weights", "none", "--light-resolution", "32",
            "--recognizer-model", "test_resnet", "--recognizer-weights", "none", "--recognizer-resolution", "32",
            "--device", "cpu", "--workers", "0", "--videos-per-batch", "2", "--videos-per-shard", "4", "--no-progress"]  # fmt: skip

    def dry(*extra: str) -> str:
        result = CliRunner().invoke(main, args + ["--dry-run", *extra])
        assert result.exit_code == 0, result.output
        return result.output

    def files_there() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in cache_dir.rglob("*")} if cache_dir.exists() else {}

    first = dry()
    assert "(not made yet)" in first and "to compute                  12 (12 never computed, 0 whose files changed since, 0 failures retried)" in first
    assert "\nshards                      3 of 4 videos, 2 a model batch\n" in first
    assert not list(cache_dir.glob("demo/features-*")) and "would fail" not in first
    files = demo_files(tiny_videos)
    kept = {path: path.read_bytes() for path in files[4:6]}
    files[4].unlink()  # gone, and emptied: said before a run of hours fails them
    files[5].write_bytes(b"")
    assert "would fail                  2 of those to compute: 1 not on disk, 1 empty (`nsnet data --missing FILE` lists the missing)" in dry()
    for path, data in kept.items():
        path.write_bytes(data)
    files[7].write_bytes(b"not a video")
    assert CliRunner().invoke(main, args + ["--allow-failures"]).exit_code == 0
    shutil.copyfile(files[0], files[2])
    before = files_there()
    again = dry("--retry-failed", "--shard", "0/1")
    assert "finished, kept              10" in again and "to compute                  2 (0 never computed, 1 whose files changed since, 1 failures retried)" in again
    assert "(not made yet)" not in again and files_there() == before
    lines = _manifest_lines(tiny_videos)
    _write_manifest(tiny_videos, lines[:1] + lines[2:] + lines[1:2])  # video 0 last: another manifest
    moved = dry()
    assert "(not made yet)" in moved and "to compute                  1 (1 never computed" in moved and "copied from sibling caches  11 (features-" in moved
    assert files_there() == before
    misnamed = CliRunner().invoke(main, args + ["--dry-run", "--recognizer-model", "Test_ResNet"])  # planned the run before 2026-12-07 (#54), which refused it
    assert misnamed.exit_code == 1 and misnamed.output.startswith("Error: unknown timm model 'Test_ResNet' (timm has test_resnet,")
