"""Row stores filled in shares: each process its shards, the whole run only what they left."""

import numpy as np
import pytest

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
