"""A cache's attributes read once a process: the manifest they hold is 61 MiB of JSON at
Kinetics-400's size, and the stages after features open a cache several times a command (the
option checks, the stage, the reports). A store read again wherever its metadata file changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import pipeline.cache
from pipeline.cache import READ_ONCE_STORES, SETTLED_NS, CacheError, FeatureCache, ZarrWriter, export_hdf5, read_once

LONG_AGO_NS = time.time_ns() - 10 * SETTLED_NS


@pytest.fixture(autouse=True)
def nothing_held(monkeypatch):
    monkeypatch.setattr(pipeline.cache, "_READ_ONCE", {})


def _store(path: Path, classes: list[str]) -> Path:
    writer = ZarrWriter(path, "f" * 64, {"videos_per_batch": 2, "manifest": {"classes": classes, "videos": []}}, {"status": ((2,), "int8")}, 2)
    writer.write_block(0, {}, np.array([1, 2], dtype=np.int8))
    return path


def _settle(path: Path, ns: int = LONG_AGO_NS) -> None:
    os.utime(path, ns=(ns, ns))


def _counting_opens(monkeypatch) -> list[str]:
    opened = []
    real = zarr.open_group

    def counted(store, **kwargs):
        opened.append(store)
        return real(store, **kwargs)

    monkeypatch.setattr(zarr, "open_group", counted)
    return opened


def test_a_settled_zarr_cache_is_opened_once_and_again_once_its_metadata_changes(tmp_path, monkeypatch):
    path = _store(tmp_path / "c.zarr", ["a", "b"])
    _settle(path / "zarr.json")
    opened = _counting_opens(monkeypatch)
    first, second, third = (FeatureCache(path) for _ in range(3))
    assert len(opened) == 1
    assert first.attrs == second.attrs == third.attrs and first.attrs["manifest"]["classes"] == ["a", "b"]
    assert second["status"][:].tolist() == [1, 2]  # the arrays themselves are read afresh
    first.attrs["extra"] = 1  # each handle has its own dictionary
    assert "extra" not in FeatureCache(path).attrs

    zarr.open_group(str(path), mode="r+").attrs.update({"manifest": {"classes": ["c", "d"], "videos": []}})  # as long as before
    _settle(path / "zarr.json", LONG_AGO_NS + 1)
    assert FeatureCache(path).attrs["manifest"]["classes"] == ["c", "d"]
    assert len(opened) == 3  # the update's own open, then the changed file's

    replacement = _store(tmp_path / "other.zarr", ["e", "f"])
    os.replace(replacement / "zarr.json", path / "zarr.json")  # the same size, the same stamp: another file
    _settle(path / "zarr.json", LONG_AGO_NS + 1)
    assert FeatureCache(path).attrs["manifest"]["classes"] == ["e", "f"]


def test_a_cache_written_a_moment_ago_is_read_at_every_open(tmp_path, monkeypatch):
    """A change within one tick of the file system's clock could keep the stamp: a file that
    changed in the last SETTLED_NS is never held."""
    path = _store(tmp_path / "c.zarr", ["a", "b"])
    _settle(path / "zarr.json", time.time_ns())
    opened = _counting_opens(monkeypatch)
    FeatureCache(path), FeatureCache(path)
    assert len(opened) == 2


def test_an_hdf5_caches_attributes_are_parsed_once(tmp_path, monkeypatch):
    final = tmp_path / "c.h5"
    export_hdf5(_store(tmp_path / "c.zarr", ["a", "b"]), final)
    _settle(final)
    parsed = []
    real = pipeline.cache.json.loads
    monkeypatch.setattr(pipeline.cache.json, "loads", lambda text, **kw: parsed.append(len(text)) or real(text, **kw))
    caches = [FeatureCache(final) for _ in range(3)]
    assert len(parsed) == 1 and all(c.attrs["manifest"]["classes"] == ["a", "b"] for c in caches)
    assert caches[2]["status"][:].tolist() == [1, 2]
    for cache in caches:
        cache.close()


def test_the_reads_held_are_the_last_stores_read(tmp_path):
    reads = []
    files = []
    for i in range(READ_ONCE_STORES + 1):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(str(i))
        _settle(files[-1])
    read = lambda f: read_once(f, lambda: reads.append(f.name) or f.read_text())  # noqa: E731
    assert [read(f) for f in files] == [str(i) for i in range(READ_ONCE_STORES + 1)]
    assert read(files[-1]) == str(READ_ONCE_STORES) and len(reads) == READ_ONCE_STORES + 1
    assert read(files[0]) == "0" and len(reads) == READ_ONCE_STORES + 2  # the first, put out by the last


def test_what_is_no_cache_is_still_named_as_such(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CacheError, match="no Zarr group here"):
        FeatureCache(tmp_path / "empty")
    (tmp_path / "model.pth").write_bytes(b"x")
    with pytest.raises(CacheError, match="model.pth"):
        FeatureCache(tmp_path / "model.pth")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["x"] = 1
    _settle(tmp_path / "other.zarr" / "zarr.json")
    for _ in range(2):
        with pytest.raises(CacheError, match="without a feature cache's attributes"):
            FeatureCache(tmp_path / "other.zarr")
