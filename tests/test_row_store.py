"""Row stores filled in shares: each process its shards, the whole run only what they left."""

import numpy as np
import pytest
import zarr

import pipeline.row_store
from pipeline.cache import CacheError, file_lock
from pipeline.row_store import fill_rows

ARRAYS = {"value": ((5,), "float32"), "status": ((5,), "int8")}


def _filling(asked: list[list[int]]):
    """A computer recording the rows it is asked for, each row's value its index + 0.5."""

    def computer():
        def compute(rows):
            asked.append(list(rows))
            for row in rows:
                yield row, {"value": row + 0.5}

        return compute

    return computer


def test_shares_fill_their_own_shards_and_the_whole_run_computes_what_they_left(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.row_store, "SHARD_VIDEOS", 2)  # 5 rows: shards [0, 1], [2, 3], [4]
    store, asked = tmp_path / "rows.zarr", []
    first = fill_rows(store, "fp", {}, ARRAYS, _filling(asked), progress=False, share=(0, 3))
    assert asked == [[0, 1]] and first.computed == 2 and first.arrays == {} and first.errors == {}
    assert fill_rows(store, "fp", {}, ARRAYS, _filling(asked), progress=False, share=(2, 3)).computed == 1
    assert asked == [[0, 1], [4]]
    whole = fill_rows(store, "fp", {}, ARRAYS, _filling(asked), progress=False)  # share 1 of 3 never ran
    assert asked == [[0, 1], [4], [2, 3]] and whole.computed == 2
    np.testing.assert_array_equal(whole.arrays["value"], np.arange(5) + 0.5)
    again = fill_rows(store, "fp", {}, ARRAYS, _filling(asked), progress=False, share=(0, 3))
    assert again.computed == 0 and len(asked) == 3  # done rows: the computer is not even made


def test_one_process_a_share(tmp_path):
    store = tmp_path / "rows.zarr"
    with file_lock(tmp_path / ".rows.zarr.share-1-of-2.lock"):
        with pytest.raises(CacheError, match=r"share-1-of-2\.lock: another writer holds this lock \(pid \d+ on .+\); it is computing the same share of this store; wait for it or give another --shard"):
            fill_rows(store, "fp", {}, ARRAYS, _filling([]), progress=False, share=(1, 2))
        assert fill_rows(store, "fp", {}, ARRAYS, _filling([]), progress=False, share=(0, 2)).computed == 5  # one shard of 256 rows
    whole = fill_rows(store, "fp", {}, ARRAYS, _filling([]), progress=False)
    assert whole.computed == 0 and (whole.arrays["value"] == np.arange(5) + 0.5).all()


def test_a_store_filled_in_shares_that_would_fall_unevenly_is_made_with_smaller_shards(tmp_path, monkeypatch):
    """10 rows in shards of 8 give 2 shares 8 and 2 (an evaluation split of 20 shards among 32
    torchrun ranks: 12 idle, the run the busiest's 256 videos where an even split is 154): the
    store is made with shards of 5 (the largest whose busiest share is within 1.11 of even), and
    the shards are the store's own from then on, whoever fills it."""
    monkeypatch.setattr(pipeline.row_store, "SHARD_VIDEOS", 8)
    monkeypatch.setattr(pipeline.row_store, "SHARD_STEP", 1)
    rows = {"value": ((10,), "float32"), "status": ((10,), "int8")}
    store, asked = tmp_path / "rows.zarr", []
    assert fill_rows(store, "fp", {}, rows, _filling(asked), progress=False, share=(0, 2)).computed == 5
    assert asked == [[0, 1, 2, 3, 4]]
    assert fill_rows(store, "fp", {}, rows, _filling(asked), progress=False, share=(0, 3)).computed == 0  # 3 shares now: share 0 of 3 holds shard 0 alone
    assert fill_rows(store, "fp", {}, rows, _filling(asked), progress=False, share=(1, 2)).computed == 5
    whole = fill_rows(store, "fp", {}, rows, _filling(asked), progress=False)
    assert asked == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]] and whole.computed == 0
    np.testing.assert_array_equal(whole.arrays["value"], np.arange(10) + 0.5)
    assert zarr.open_group(str(store), mode="r")["value"].shards == (5,)


def test_a_process_filling_the_store_in_another_count_of_shares_now_is_refused(tmp_path):
    """A whole run of evaluate beside its ``--shard`` jobs, or jobs of another count, filled the
    same shards, each computing them (before 2026-12-07)."""
    store = tmp_path / "rows.zarr"
    with file_lock(tmp_path / ".rows.zarr.share-1-of-2.lock"):
        with pytest.raises(CacheError, match=r"\.rows\.zarr\.share-1-of-2\.lock: a job dividing it into 2 shares \(--shard jobs times torchrun ranks\) writes this store now \(pid \d+ on .+\), whose shards and this job's \(the whole store\) overlap; wait for it to finish, or divide the store as it does$"):
            fill_rows(store, "fp", {}, ARRAYS, _filling([]), progress=False)
    with file_lock(tmp_path / ".rows.zarr.lock"):  # a whole run at work
        with pytest.raises(CacheError, match=r"\.rows\.zarr\.lock: a run of the whole store writes this store now .*this job's \(one of 3 shares\) overlap"):
            fill_rows(store, "fp", {}, ARRAYS, _filling([]), progress=False, share=(0, 3))
    assert fill_rows(store, "fp", {}, ARRAYS, _filling([]), progress=False).computed == 5  # none at work
