"""A feature cache with damaged chunks (a copy cut short, a disk error) repaired by the features
stage's ``--verify``: the shards holding them computed again, every other shard kept, where
before the whole cache had to be copied again or computed anew (hours of GPU time at FCVID's
91,000 videos for one bad chunk); and the stores of rows the stages after it keep, which compute
such shards again by themselves."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import pipeline.cache
from conftest import cache_arrays, flip_byte
from pipeline.cache import DONE, NO_CHECKSUMS, PENDING, RECOMPUTE_ROWS, CacheError, Damage, ZarrWriter, chunks_checked, damaged_blocks, export_hdf5, reset_damaged
from pipeline.row_store import fill_rows
from stages.cli import main
from stages.features import run_features


def _shard_file(store: Path, array: str, shard: int) -> Path:
    """The file of ``array``'s shard ``shard`` (Zarr v3's ``c/<i>/0/...`` chunk keys)."""
    folder = store / array / "c" / str(shard)
    return folder if folder.is_file() else next(p for p in sorted(folder.rglob("*")) if p.is_file())


def _bytes(store: Path, shard: int) -> dict[str, bytes]:
    return {array.name: _shard_file(store, array.name, shard).read_bytes() for array in store.iterdir() if (array / "c").is_dir()}


def test_verify_computes_again_the_shards_holding_damaged_chunks_and_keeps_the_others(tiny_videos, tiny_config, run_options):
    """12 videos in shards of 4: a chunk of the second shard's logits and one of the third's
    status damaged. A plain re-run reads the status and stops, naming it and the repair; with
    ``verify`` the 8 videos of those shards are computed again, to the same numbers, and the
    first shard's files are not written."""
    first = run_features("demo", tiny_videos, tiny_config, run_options)
    store = Path(first.cache)
    whole, kept = cache_arrays(store), _bytes(store, 0)
    flip_byte(_shard_file(store, "rec_logits", 1), 20)
    flip_byte(_shard_file(store, "status", 2), 10)
    assert [(d.array, d.start) for d in damaged_blocks(store)] == [("rec_logits", 4), ("status", 8)]
    with pytest.raises(CacheError, match=r"status\[:\] is damaged .*; run the features stage again with the cache's options and --verify"):
        run_features("demo", tiny_videos, tiny_config, run_options)

    repaired = run_features("demo", tiny_videos, tiny_config, replace(run_options, verify=True))
    assert (repaired.damaged, repaired.computed, repaired.skipped, repaired.done) == (8, 8, 4, 12)
    assert "computed again (damaged)    8 (in shards holding a chunk whose checksum did not match" in repaired.table()
    assert damaged_blocks(store) == []
    for name, values in cache_arrays(store).items():
        np.testing.assert_array_equal(values, whole[name], err_msg=name)
    assert _bytes(store, 0) == kept

    again = run_features("demo", tiny_videos, tiny_config, replace(run_options, verify=True))
    assert (again.damaged, again.computed) == (0, 0)
    assert "verified                    every chunk matched its checksum" in again.table()

    # options other than the cache's (T): --verify would have computed a new cache whole
    other = replace(tiny_config, num_frames=4)
    with pytest.raises(CacheError, match=rf"features-[0-9a-f]{{16}}\.zarr: no cache made with these options to verify \(--verify repairs the cache the same command made, and would compute this one whole\); the dataset's caches: {store.name} \(`nsnet outputs` says how each was made\)$"):
        run_features("demo", tiny_videos, other, replace(run_options, verify=True))
    assert sorted(p.name for p in store.parent.glob("features-*.zarr")) == [store.name]


def test_verify_repairs_a_finished_hdf5_cache(tiny_videos, tiny_config, run_options):
    """An HDF5 cache copied back into its staging store without the shard holding the damaged
    chunk (Fletcher-32's), which is computed again, then exported again."""
    hdf5 = replace(tiny_config, storage="hdf5")
    final = Path(run_features("demo", tiny_videos, hdf5, run_options).cache)
    whole = cache_arrays(final)
    with h5py.File(final, "r") as h5:
        chunk = h5["light_features"].id.get_chunk_info_by_coord((8, 0, 0))
    flip_byte(final, chunk.byte_offset + chunk.size // 2)
    assert [(d.array, d.start) for d in damaged_blocks(final)] == [("light_features", 8)]

    repaired = run_features("demo", tiny_videos, hdf5, replace(run_options, verify=True))
    assert (repaired.damaged, repaired.computed, Path(repaired.cache)) == (4, 4, final)
    assert damaged_blocks(final) == []
    for name, values in cache_arrays(final).items():
        np.testing.assert_array_equal(values, whole[name], err_msg=name)


def test_a_reset_marks_its_shards_pending_before_it_removes_their_rows(tmp_path, monkeypatch):
    """A kill during a reset leaves the damaged shards pending (computed again by the next
    run), never finished videos whose rows were removed (they read as zeros)."""
    store = tmp_path / "s.zarr"
    writer = ZarrWriter(store, "f" * 64, {"videos_per_batch": 2, "videos_per_shard": 2}, {"rows": ((5, 3), "float32"), "status": ((5,), "int8")}, 2)
    for start in (0, 2, 4):
        stop = min(start + 2, 5)
        writer.write_block(start, {"rows": np.full((stop - start, 3), start + 1.0, dtype=np.float32)}, np.full(stop - start, DONE, dtype=np.int8))
    import zarr

    done, real_write = [], zarr.Array.__setitem__

    def recording(self, key, value):
        done.append((self.basename, key.start))
        real_write(self, key, value)

    def killed(store, array, name, start, stop):
        done.append(("remove", [p.relative_to(store).as_posix() for p in real_files(store, array, name, start, stop)]))
        raise KeyboardInterrupt  # killed as the first files go

    real_files = pipeline.cache._chunk_files
    monkeypatch.setattr(zarr.Array, "__setitem__", recording)
    monkeypatch.setattr(pipeline.cache, "_chunk_files", killed)
    with pytest.raises(KeyboardInterrupt):
        reset_damaged(store, [Damage("rows", 4, 5, ""), Damage("rows", 2, 4, "")])
    monkeypatch.undo()
    assert done == [("status", 2), ("status", 4), ("remove", ["rows/c/2/0"])]
    assert zarr.open_group(str(store), mode="r")["status"][:].tolist() == [DONE, DONE, PENDING, PENDING, PENDING]
    assert reset_damaged(store, [Damage("rows", 4, 5, "")]) == 1  # the last shard holds one video
    assert zarr.open_group(str(store), mode="r")["rows"][:, 0].tolist() == [1, 1, 3, 3, 0]


def test_verify_and_dry_run_are_refused_together(tiny_videos, run_options):
    result = CliRunner().invoke(main, ["features", "--dataset", "demo", "--data-root", str(tiny_videos), "--cache-dir", str(run_options.cache_dir), "--verify", "--dry-run", "--no-progress"])
    assert result.exit_code == 2 and "--verify computes damaged shards again and --dry-run writes nothing: `nsnet outputs --verify` says which blocks" in result.output


def test_a_row_store_computes_again_the_shards_holding_damaged_chunks(tmp_path, monkeypatch):
    """The stores of rows the stages after features keep (the all-frames pass's: hours at a
    dataset's size) repair themselves: 5 rows in shards of 2, the second shard's values and the
    third's status damaged; the next run computes those 3 rows again, with one computer, and
    reads the same numbers. Damaged again as soon as written is an error saying to remove it."""
    import pipeline.row_store

    monkeypatch.setattr(pipeline.row_store, "SHARD_VIDEOS", 2)
    store, arrays, asked, made = tmp_path / "rows.zarr", {"value": ((5,), "float32"), "status": ((5,), "int8")}, [], []

    def computer():
        made.append(1)

        def compute(rows):
            asked.append(list(rows))
            return ((row, {"value": row + 0.5}) for row in rows)

        return compute

    fill_rows(store, "fp", {}, arrays, computer, progress=False)
    flip_byte(_shard_file(store, "value", 1), 20)
    flip_byte(_shard_file(store, "status", 2), 10)
    asked.clear(), made.clear()
    with pytest.warns(UserWarning, match=r"rows.zarr: 1 row\(s\) in shards holding damaged chunks .*status\[4:5\] first\) are computed again"):
        with pytest.warns(UserWarning, match=r"rows.zarr: 2 row\(s\) in shards holding damaged chunks .*value\[2:4\] first\) are computed again"):
            repaired = fill_rows(store, "fp", {}, arrays, computer, progress=False)
    assert asked == [[4], [2, 3]] and len(made) == 1 and repaired.computed == 3
    assert repaired.arrays["value"].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert fill_rows(store, "fp", {}, arrays, computer, progress=False).computed == 0

    real = pipeline.row_store.read_block
    monkeypatch.setattr(pipeline.row_store, "read_block", lambda arrays, name, start, stop: Damage(name, start, stop, f"{name}[{start}:{stop}] is damaged; {RECOMPUTE_ROWS}") if (name, start) == ("value", 0) else real(arrays, name, start, stop))
    with pytest.warns(UserWarning), pytest.raises(CacheError, match=rf"value\[0:2\] is damaged; {re.escape(RECOMPUTE_ROWS)}$"):
        fill_rows(store, "fp", {}, arrays, computer, progress=False)


def test_a_cache_without_checksums_is_said_to_have_none_where_it_is_verified(tmp_path, monkeypatch):
    """A cache made before 2026-12-07 has chunks Blosc alone decodes: a changed byte becomes
    other numbers unseen, so "every chunk read whole" would promise what was not checked."""
    import zarr

    from stages.features import FeaturesSummary

    def store(path: Path) -> Path:
        ZarrWriter(path, "f" * 64, {"videos_per_batch": 2}, {"status": ((2,), "int8")}, 2).write_block(0, {}, np.array([DONE, DONE], dtype=np.int8))
        return path

    checked = store(tmp_path / "new.zarr")
    export_hdf5(store(tmp_path / "h5.zarr"), tmp_path / "h5.h5")
    monkeypatch.setattr(pipeline.cache, "_compressors", lambda: (zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"),))
    old = store(tmp_path / "old.zarr")
    assert (chunks_checked(checked), chunks_checked(tmp_path / "h5.h5"), chunks_checked(old)) == (True, True, False)
    assert damaged_blocks(old) == []
    said = FeaturesSummary(cache=str(old), total=2, verified=True, unchecked=True).table()
    assert f"verified                    every chunk decoded; {NO_CHECKSUMS}" in said
    assert NO_CHECKSUMS == "its chunks carry no checksums (made before 2026-12-07), so a byte changed since is not seen: make it anew to have them"
