"""Where the stages after ``features`` write what they make of a feature cache: beside the cache,
as its name's prefix says (``<cache>.prototypes-*``, ``<cache>.train-*``, ``<cache>.eval-*``),
or, where the cache lies in a folder this process cannot write (a lab's shared features, a
read-only mount), beside a link to it under ``--cache-dir``, made once; what the shared folder
holds finished of the same name is used where it lies (:func:`output_beside`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from pipeline.cache import CacheError, FeatureCache
from pipeline.file_rights import can_write_in


def writable_place(features: Path, cache_dir: Path, dataset: str) -> Path:
    """``features`` where its folder can be written; else a link to it named as it is, in
    ``<cache_dir>/<the cache's dataset>/`` (``dataset`` where the cache names none): made where
    there is none or where one there names a cache no longer there (with a warning saying so),
    taken where it names this cache, a :class:`CacheError` where that name holds another. A
    path that holds nothing is given back as it is (its reader names what is wrong)."""
    if not features.exists() or can_write_in(features.parent):
        return features
    link = cache_dir / _dataset_of(features, dataset) / features.name
    target = features.resolve()
    if link.is_symlink() and not link.exists():
        link.unlink()  # a link to where the cache lay before: the outputs beside it are of the same name, so of this cache
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=target.is_dir())
    except FileExistsError:  # there before, or made by another process now
        if not link.is_symlink() and link.resolve() == target:  # --cache-dir the folder it lies in
            raise CacheError(f"{features}: its folder cannot be written here, and --cache-dir ({cache_dir}) is the one it lies in; give a --cache-dir of yours, where the stages put a link to it and their outputs beside it") from None
        if link.resolve() != target:
            raise CacheError(f"{link}: holds another store than {features}, of the same name, where the outputs of {features} would go (its folder, {features.parent}, cannot be written here); give --features {link} to use that one, or move it away") from None
        return link
    except OSError as exc:  # a file system without links (some FUSE and SMB mounts), or --cache-dir not writable either
        raise CacheError(f"{link}: no link to {features} can be made here ({exc.strerror or exc}), where its outputs would go, its own folder not writable here; give a --cache-dir on a file system that keeps links, or copy the cache into one") from exc
    warnings.warn(f"{features}: its folder cannot be written here, so what this stage makes of it goes beside a link to it, {link} (made now; the later stages take it for either path)", RuntimeWarning, stacklevel=2)
    return link


def _dataset_of(features: Path, dataset: str) -> str:
    """The dataset a feature cache was made from, as its identity records it; ``dataset``
    where it records none."""
    with FeatureCache(features) as cache:
        return str(cache.attrs.get("identity", {}).get("dataset") or dataset)


def linked_cache(features: Path) -> Path | None:
    """The cache a link names (:func:`writable_place`), where ``features`` is a link; else None."""
    return features.resolve() if features.is_symlink() else None


def cache_folders(features: Path) -> tuple[Path, ...]:
    """The folders of a cache: its own as the stage names it and, where that is a link, the
    folder of the cache it names (:func:`linked_cache`), where a checkpoint made in the cache's
    folder is looked for once it moved, and the shared folder's outputs are listed."""
    linked = linked_cache(features)
    return (features.parent,) if linked is None else (features.parent, linked.parent)


def output_beside(features: Path, name: str, finished: Callable[[Path], bool]) -> Path:
    """The output ``name`` of a feature cache: beside the cache as the stage names it; where it
    names it by a link (:func:`writable_place`) and what lies beside the link under that name is
    not ``finished``, the output of the same name beside the cache the link names where that one
    is: the same name, the same inputs (a shared folder's prototypes, sampler runs, evaluations
    and ablations are used where they lie, read, not made again)."""
    own, linked = features.with_name(name), linked_cache(features)
    if linked is not None and not finished(own) and finished(theirs := linked.with_name(name)):
        return theirs
    return own
