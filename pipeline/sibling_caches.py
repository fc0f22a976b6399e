"""Rows a new feature cache takes from its siblings: caches of the same dataset and
configuration made for another manifest.

A cache's fingerprint covers its manifest, so a label corrected in an annotation list, a video
added or dropped, or another official split of the same videos (UCF101's three) makes another
cache. A video's rows depend on its file, the models, T, the seed and the candidates per
segment, not on its labels or its neighbours in the list, so where a sibling holds a video of
the new manifest (the same path and segment, the same class list, the same file size now as
when it was computed or no file now, and, with candidates per segment, the same split) its rows
are copied, not computed. Its logged failure or short read comes along with it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import DONE, FAILED, FILL_VALUES, NOT_RECORDED, CacheError, FeatureCache, changed_sources, final_path, logged_lines, read_rows, shard_size
from pipeline.datasets import Manifest
from pipeline.file_rights import refusal_said

# The names of the features stage's stores: a Zarr cache, an HDF5 one, and the staging store of one.
STORE_NAME = re.compile(r"^features-[0-9a-f]{16}(\.zarr|\.h5|\.h5\.staging\.zarr)$")


def sibling_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A cache's identity without its manifest: what a sibling's must equal."""
    return {k: v for k, v in identity.items() if k != "manifest_sha256"}


def _video_key(video: dict[str, Any]) -> tuple[str, tuple[float, ...] | None]:
    segment = video.get("segment")
    return video["path"], tuple(segment) if segment else None


@dataclass
class Sibling:
    """A sibling cache open for reading, its videos by (path, segment)."""

    path: Path
    cache: FeatureCache
    rows: dict[tuple[str, tuple[float, ...] | None], int]
    splits: list[str]
    status: np.ndarray
    sizes: np.ndarray
    logged: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest log line by video path

    @classmethod
    def of(cls, cache: FeatureCache) -> Sibling:
        """The sibling ``cache`` (open; closed with it), its videos indexed and its log read."""
        videos = cache.attrs["manifest"]["videos"]
        logged = {record["path"]: record for record in logged_lines(final_path(cache.path))}  # the latest of each, as the features summary takes them
        return cls(cache.path, cache, {_video_key(v): i for i, v in enumerate(videos)}, [v["split"] for v in videos],
                   np.asarray(cache["status"][:]), np.asarray(cache["source_sizes"][:]), logged)  # fmt: skip


def find_siblings(folder: Path, identity: dict[str, Any], manifest: Manifest, itself: set[Path]) -> list[Sibling]:
    """The stores in ``folder`` (the dataset's cache folder) other than ``itself`` whose identity
    is ``identity`` but for the manifest, with the same classes and content source, that record
    their videos' file sizes (stores made before 2026-12-05 do not, and are passed over); open:
    close their caches when done."""
    wanted = sibling_identity(identity)
    found = []
    for path in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []:
        if not STORE_NAME.match(path.name) or path in itself:
            continue
        try:
            cache = FeatureCache(path)
        except PermissionError:  # a group member's, kept to themselves: its videos cannot be copied, and may be there
            warnings.warn(f"{path}: a feature cache not readable here ({refusal_said(path)}); what it may hold of this run's videos is computed, not copied from it (its owner can `chmod -R g+rX {path}`)", RuntimeWarning, stacklevel=2)
            continue
        except (CacheError, OSError, KeyError, ValueError):  # a store being written, or damaged: not a sibling
            continue
        attrs = cache.attrs
        try:
            same = (sibling_identity(attrs["identity"]) == wanted and attrs["manifest"]["classes"] == list(manifest.classes)
                    and attrs["manifest"].get("source", "") == manifest.source and "source_sizes" in cache.arrays)  # fmt: skip
        except KeyError:  # attributes of another kind of store
            same = False
        if same:
            try:
                found.append(Sibling.of(cache))
            except CacheError as exc:  # its status or sizes hold a damaged chunk: not a sibling
                warnings.warn(f"{exc}; no rows are copied from it", stacklevel=2)
                cache.close()
        else:
            cache.close()
    return found


@dataclass(frozen=True)
class Reusable:
    """Where each video of a manifest can be copied from: ``sibling[i]`` (-1: nowhere) and its row there."""

    sibling: np.ndarray  # [N] int
    row: np.ndarray  # [N] int

    def __contains__(self, index: int) -> bool:
        return self.sibling[index] >= 0


def held(siblings: list[Sibling], manifest: Manifest, candidates: np.ndarray) -> np.ndarray:
    """The videos among ``candidates`` that some sibling lists (whose files are worth a look)."""
    return np.array([i for i in candidates if any(_record_key(manifest.videos[i]) in other.rows for other in siblings)], dtype=np.int64)


def _record_key(video: Any) -> tuple[str, tuple[float, ...] | None]:
    return video.path, tuple(video.segment) if video.segment else None


def reusable_rows(siblings: list[Sibling], manifest: Manifest, candidates: np.ndarray, sizes_now: np.ndarray, offsets: int) -> Reusable:
    """For the videos ``candidates`` of ``manifest`` (indices; ``sizes_now`` their files' sizes
    now, in the same order), the first sibling holding each finished (done, or failed) from a
    file it recorded the size of and that has not changed since
    (:func:`~pipeline.cache.changed_sources`: one gone since counts as unchanged, as in its own
    cache, since datasets are moved off once their features are computed); with ``offsets`` > 1
    only in the same split (a training video's rows hold the other candidates)."""
    sibling = np.full(len(manifest.videos), -1, dtype=np.int64)
    row = np.zeros(len(manifest.videos), dtype=np.int64)
    for index, size in zip(candidates, sizes_now):
        video = manifest.videos[index]
        key = _record_key(video)
        for s, other in enumerate(siblings):
            j = other.rows.get(key)
            if j is None or other.status[j] not in (DONE, FAILED) or other.sizes[j] == NOT_RECORDED or changed_sources(other.sizes[j], size):
                continue
            if offsets > 1 and other.splits[j] != video.split:
                continue
            sibling[index], row[index] = s, j
            break
    return Reusable(sibling, row)


def copied_rows(siblings: list[Sibling], reusable: Reusable, members: list[int], row_layout: dict[str, tuple[tuple[int, ...], str]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The rows and status of the videos ``members`` (consecutive) read from their siblings, a
    sibling's rows at a time in its order; those no sibling holds are left zero and pending, as
    are the arrays a sibling lacks (their "not recorded": a sibling's video whose decoder rules
    are not recorded is looked at as the cache's own), and those whose rows a sibling cannot
    give (a damaged chunk: taken out of ``reusable``, with a warning, and computed)."""
    rows = {name: np.full((len(members),) + shape, FILL_VALUES.get(name, 0), dtype=dtype) for name, (shape, dtype) in row_layout.items()}
    status = np.zeros(len(members), dtype=np.int8)
    at = np.asarray(members)
    for s in np.unique(reusable.sibling[at]):
        if s < 0:
            continue
        mine = np.flatnonzero(reusable.sibling[at] == s)
        theirs = reusable.row[at[mine]]
        order = np.argsort(theirs)
        sibling = siblings[s]
        try:  # a sibling made before an array (decoder_rules) leaves it unrecorded; read a shard of it at a time
            taken = {name: read_rows(sibling.cache[name], theirs[order], shard_size(sibling.cache.attrs)) for name in rows.keys() & sibling.cache.arrays.keys()}
        except CacheError as exc:
            warnings.warn(f"{exc}; its {len(mine)} video(s) are computed here instead", stacklevel=2)
            reusable.sibling[at[mine]] = -1
            continue
        for name, value in taken.items():
            rows[name][mine[order]] = value
        status[mine] = sibling.status[theirs]
    return rows, status
