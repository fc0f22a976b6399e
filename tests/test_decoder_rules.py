"""Caches built under older rules for which decoder reads a file: the decoder rules each video's
rows record, the look a later run takes at the videos read under older rules, and the videos
it computes again (those decord misread then: before 2026-12-06, night, decord read every file
it opened with usable frame times, transport streams, edit-list cuts and open groups of
pictures among them)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from conftest import cache_arrays, demo_files, numbered_frames, refuse_looks
from pipeline.cache import DONE, FAILED, FeatureCache, ZarrWriter
from pipeline.datasets import get_dataset
from pipeline.decoders import DECODER_RULES
from stages.features import plan_features, run_features

FRAMES = 64  # the transport stream's, a keyframe every 8: decord read its six centres 7 frames late


def _key(path: Path) -> str:
    with FeatureCache(path) as cache:
        return cache.content_fingerprint


def _as_before_the_rules(store: Path) -> None:
    """The store as a features run before the array left it: no ``decoder_rules``."""
    if store.suffix == ".h5":
        with h5py.File(store, "r+") as h5:
            del h5["decoder_rules"]
    else:
        shutil.rmtree(store / "decoder_rules")


def _built_before_the_rules(videos: Path, config, options, video_writer, monkeypatch) -> tuple[Path, int]:
    """A cache built when decord read a transport stream (one demo video's file, its sixth,
    in the second shard of 4), as a features run before the array left it; and that video."""
    stream = 5
    video_writer(demo_files(videos)[stream], numbered_frames(FRAMES, 32, 32), 25, "mpegts", "libx264", {"g": "8"})  # a .mp4 name, a transport stream inside
    with monkeypatch.context() as before:
        before.setattr("pipeline.decoders.decord_misreads", lambda path: None)  # the rules before 2026-12-06 (night)
        cache = Path(run_features("demo", videos, config, options).cache)
    _as_before_the_rules(cache)
    return cache, stream


def test_a_video_decord_misread_in_a_cache_built_before_is_computed_again_once(tiny_videos, tiny_config, run_options, video_writer, monkeypatch, tmp_path):
    """A cache built when decord read a transport stream holds the frames decord gave for it,
    7 frames late at every centre. The next run looks into its share's finished videos' files
    (not into them again after), computes that video again, alone, with the rows a fresh cache
    holds, records the rules every video was read under (the others' rows, bit for bit as they
    were, under the rules' negative: looked at, read right) and gives the cache another content
    key; the dry run counts it among the videos to compute."""
    cache, stream = _built_before_the_rules(tiny_videos, tiny_config, run_options, video_writer, monkeypatch)
    old, old_key = cache_arrays(cache), _key(cache)
    assert "decoder_rules" not in old and (old["status"] == DONE).all()
    fresh = cache_arrays(Path(run_features("demo", tiny_videos, tiny_config, replace(run_options, cache_dir=tmp_path / "fresh")).cache))
    assert not np.allclose(old["light_features"][stream], fresh["light_features"][stream], atol=1e-2)  # decord's frames were other frames

    planned = plan_features("demo", tiny_videos, tiny_config, run_options)
    assert (planned.to_compute, planned.misread, planned.finished) == (1, 1, 11)
    assert "to compute                  1 (0 never computed, 0 whose files changed since, 1 decord misread in the cache, 0 failures retried)" in planned.table()

    first_job = run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 2)), cache_path=cache)  # shards 0 and 2
    assert (first_job.misread, first_job.computed, first_job.skipped) == (0, 0, 8)
    assert cache_arrays(cache)["decoder_rules"].tolist() == [-DECODER_RULES] * 4 + [0] * 4 + [-DECODER_RULES] * 4
    again = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (again.misread, again.changed, again.computed, again.skipped, again.frames) == (1, 0, 1, 11, tiny_config.num_frames)
    assert "computed again (misread)    1 (decord read them, as it did every file it opened before 2026-12-06 (night), and misread them; PyAV reads them now)" in again.table()
    after = cache_arrays(cache)
    expected_rules = np.full(12, -DECODER_RULES)
    expected_rules[stream] = DECODER_RULES
    assert after["decoder_rules"].tolist() == expected_rules.tolist()
    np.testing.assert_allclose(after["light_features"][stream], fresh["light_features"][stream], rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(after["rec_logits"][stream], fresh["rec_logits"][stream], rtol=1e-4, atol=1e-4)
    others = np.arange(12) != stream
    for name, values in old.items():
        np.testing.assert_array_equal(after[name][others], values[others], err_msg=name)
    assert _key(cache) != old_key  # the prototypes and samplers made from the old rows are not taken for this cache's

    assert [r["path"] for r in again.pyav_reads] == [demo_files(tiny_videos)[stream].relative_to(tiny_videos).as_posix()]  # logged read by PyAV

    with monkeypatch.context() as no_looks:
        refuse_looks(no_looks, "stages.features")
        still = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (still.misread, still.computed, still.skipped) == (0, 0, 12)
    shutil.copyfile(demo_files(tiny_videos)[0], demo_files(tiny_videos)[stream])  # an MP4 decord reads, downloaded again under the name
    replaced = run_features("demo", tiny_videos, tiny_config, run_options)
    assert (replaced.changed, replaced.computed, replaced.pyav_reads) == (1, 1, [])  # no longer listed as PyAV's


def test_a_sibling_cache_built_before_the_rules_gives_its_rows_and_the_misread_one_is_computed(tiny_videos, tiny_config, run_options, video_writer, monkeypatch):
    """A label corrected in the list makes another cache, which copies its rows from the one
    built before the rules: the copies are looked into as the cache's own, and the video decord
    misread, failed there (as decord's misreading failed some), is computed again and done, the
    eleven others kept as copied."""
    sibling, stream = _built_before_the_rules(tiny_videos, tiny_config, run_options, video_writer, monkeypatch)
    status = zarr.open_array(str(sibling / "status"), mode="r+")
    status[stream] = FAILED
    lines = (tiny_videos / "manifest.csv").read_text().splitlines()
    path, _, split = lines[3].split(",")
    (tiny_videos / "manifest.csv").write_text("\n".join(lines[:3] + [f"{path},{lines[5].split(',')[1]},{split}"] + lines[4:]) + "\n")
    relabelled = run_features("demo", tiny_videos, tiny_config, run_options)
    assert relabelled.cache != str(sibling) and (relabelled.copied, relabelled.misread, relabelled.computed, relabelled.done, relabelled.failed) == (12, 1, 1, 12, 0)
    mine, theirs = cache_arrays(Path(relabelled.cache)), cache_arrays(sibling)
    assert mine["decoder_rules"].tolist() == [DECODER_RULES if i == stream else -DECODER_RULES for i in range(12)]
    others = np.arange(12) != stream
    assert np.array_equal(mine["light_features"][others], theirs["light_features"][others]) and not np.allclose(mine["light_features"][stream], theirs["light_features"][stream], atol=1e-2)


def test_a_finished_hdf5_cache_whose_videos_were_read_right_records_the_look_in_place(tiny_videos, tiny_config, run_options, monkeypatch):
    """A finished HDF5 cache built before the rules, of files decord reads right: the run
    computes nothing, records in the file that its videos were looked at (a file another reader
    holds open is left as it is, with a warning, and looked at again next time), and the
    content key stays, so the stages after keep their outputs."""
    config = replace(tiny_config, storage="hdf5")
    files = demo_files(tiny_videos)
    files[3].unlink()
    files[3].mkdir()  # a folder without frames where a file was: failed, and never decord's
    cache = Path(run_features("demo", tiny_videos, config, run_options).cache)
    _as_before_the_rules(cache)
    key = _key(cache)
    with FeatureCache(cache), pytest.warns(UserWarning, match=rf"{cache}: the decoder rules of 12 video\(s\) looked at are not recorded \(the file cannot be written now: .*\); the next run looks at them again"):
        held = run_features("demo", tiny_videos, config, run_options)
    assert (held.computed, held.misread) == (0, 0) and "decoder_rules" not in cache_arrays(cache)

    again = run_features("demo", tiny_videos, config, run_options)
    assert (again.computed, again.misread, again.done, again.failed) == (0, 0, 11, 1)
    rules = cache_arrays(cache)["decoder_rules"]
    assert rules.tolist() == [-DECODER_RULES] * 12
    assert _key(cache) == key and cache_arrays(cache)["status"][3] == FAILED
    refuse_looks(monkeypatch, "stages.features")
    assert run_features("demo", tiny_videos, config, run_options).computed == 0


def test_the_content_key_takes_the_rules_videos_were_computed_under_not_looks(tmp_path):
    """Hand-made stores: the decoder rules enter the content key where some video was computed
    under them (> 0); rules recorded by looks alone (< 0) leave it as without the array."""

    def key(name: str, rules: list[int] | None) -> str:
        path = tmp_path / name
        arrays = {"status": ((3,), "int8"), "source_sizes": ((3,), "int64"), **({"decoder_rules": ((3,), "int8")} if rules is not None else {})}
        writer = ZarrWriter(path, "f" * 64, {"videos_per_batch": 2}, arrays, 2)
        writer.write_block(0, {"source_sizes": np.array([10, 20, 30]), **({"decoder_rules": np.array(rules, dtype=np.int8)} if rules is not None else {})}, np.full(3, DONE, dtype=np.int8))
        with FeatureCache(path) as cache:
            return cache.content_fingerprint

    plain = key("a.zarr", None)
    assert key("b.zarr", [-1, -1, 0]) == plain
    computed = key("c.zarr", [1, -1, -1])
    assert computed != plain and computed == key("d.zarr", [1, -1, -1]) and key("e.zarr", [1, 1, -1]) not in (plain, computed)


def test_a_videos_latest_log_line_is_taken_by_time_whichever_jobs_log_holds_it(tiny_videos, tmp_path):
    """``--shard`` jobs write their own logs, and a whole run after them its own, named before
    theirs: the summary takes each video's latest line by its time (video 0 read whole after a
    job read it short, video 1 failed anew for another reason); lines logged before they had
    times come first, in the logs' order (video 2)."""
    from stages.features import _collect_logged

    manifest = get_dataset("demo").load(tiny_videos)
    ids = [v.video_id for v in manifest.videos[:3]]
    final = tmp_path / "features-x.zarr"
    logs = final.with_name(final.name + ".failures.d")
    logs.mkdir()
    lines = {
        "shard-0-of-1.jsonl": [{"video_id": ids[0], "reason": "read", "at": 200.0}, {"video_id": ids[1], "reason": "file not found", "at": 200.0}, {"video_id": ids[2], "reason": "read by PyAV", "pyav": "an ASF file"}],
        "shard-1-of-2.jsonl": [{"video_id": ids[0], "reason": "read short", "frames": 5, "listed": 10, "at": 100.0}, {"video_id": ids[1], "reason": "decoding failed", "at": 100.0}, {"video_id": ids[2], "reason": "read"}],
    }
    for name, records in lines.items():
        (logs / name).write_text("".join(json.dumps({"path": "p", **record}) + "\n" for record in records))
    status = np.full(len(manifest.videos), DONE, dtype=np.int8)
    status[1] = FAILED
    failures, short, pyav = _collect_logged(final, manifest, status)
    assert [f["reason"] for f in failures] == ["file not found"] and short == [] and pyav == []
