"""The files the stages read back, checked as they are read. Zip archives are read whole and
checked against the CRC-32 each member carries: torch.save's checkpoints and numpy's ``.npz``
files. ``torch.load`` does not check them, so a byte flipped on disk loaded as another weight
without a word (tried: one float of a saved tensor changed); numpy checks them as it reads, and a
damaged member came out as a traceback (``zipfile.BadZipFile: Bad CRC-32 for file 'g.npy'``). The
check reads the file once more: 0.04-0.10 s for ResNet-50's 98 MiB of weights, which
``torch.load`` read in 0.09-0.15 s beside it. A stage's JSON record that does not parse is said
with its file (:func:`checked_json`)."""

from __future__ import annotations

import json
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.cache import CacheError

DAMAGED = "a copy cut short, or a disk error"


def made_again(output: Path, command: str) -> str:
    """What to do where a stage's output is damaged: remove it and run ``nsnet <command>``, which
    made it, again."""
    return f"remove {output} and run `nsnet {command}` again"


ZIP_START = b"PK\x03\x04"  # a zip archive's first member's header


def damaged_member(path: Path) -> str | None:
    """What is damaged of the zip archive at ``path``: its first member whose bytes do not match
    their CRC-32, or its directory, at its end, where that cannot be read (a file cut short);
    None where every member matches, and for a file that is no zip archive (torch's legacy
    pickles; what is no checkpoint at all is said by its reader)."""
    with open(path, "rb") as file:
        if file.read(len(ZIP_START)) != ZIP_START:
            return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        return f"the directory at its end does not read: {exc}"
    return None if bad is None else f"{bad}, whose CRC-32 does not match what was written"


def checked_torch_load(path: Path, remedy: str, error: type[Exception] = CacheError, **load: Any) -> Any:
    """``torch.load(path, **load)`` of a file whose members all match their CRC-32; else
    ``error`` naming the file, what is damaged and ``remedy``."""
    import torch

    bad = damaged_member(path)
    if bad is not None:
        raise error(f"{path}: damaged ({bad}: {DAMAGED}); {remedy}")
    return torch.load(path, **load)


def resume_point(path: Path, **load: Any) -> dict[str, Any]:
    """A training run's ``last.pth``, the state it resumes from, checked before it is loaded."""
    return checked_torch_load(path, "remove it to train from the first epoch", **load)


def checked_npz(path: Path, remedy: str, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the ``.npz`` file at ``path`` that it holds (None: every one),
    read now (numpy checks each member's CRC-32 as it reads it); a damaged one is a
    :class:`~pipeline.cache.CacheError` naming the file and ``remedy``."""
    try:
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files if names is None or name in names}
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise CacheError(f"{path}: damaged ({exc}: {DAMAGED}); {remedy}") from None


def checked_json(path: Path, remedy: str) -> Any:
    """The JSON value of the file at ``path``; one that does not parse is a
    :class:`~pipeline.cache.CacheError` naming the file, JSON's words and ``remedy`` (JSON's
    error alone named no file: "Expecting value: line 1 column 1 (char 0)")."""
    try:
        return json.loads(path.read_bytes())
    except ValueError as exc:  # JSONDecodeError, and a damaged byte's UnicodeDecodeError
        raise CacheError(f"{path}: damaged, not JSON ({exc}: {DAMAGED}); {remedy}") from None


# What a training run's damaged metrics.json costs when the run is read back (run_record).
HISTORY_NOT_SHOWN = "the run's history is not shown; its model.pth is used as it is"


def run_record(path: Path, empty: dict[str, Any], instead: str) -> dict[str, Any]:
    """A record beside what a stage made that the product stands without (a training run's
    ``metrics.json``, fine-tuning's ``left_out.json``, a generator's salient frames):
    ``empty`` where there is none, and where it is damaged (not JSON, or an object without
    ``empty``'s keys), with a warning naming it and what is done ``instead`` (the remedy said
    before, removing a training run, threw its training away for a record)."""
    if not path.is_file():
        return empty
    try:
        record = json.loads(path.read_bytes())
    except ValueError as exc:  # JSON's errors and a damaged byte's UnicodeDecodeError
        why = f"not JSON ({exc}: {DAMAGED})"
    else:
        if isinstance(record, dict) and set(empty) <= set(record):
            return record
        why = "JSON of another shape"
    warnings.warn(f"{path}: damaged, {why}: {instead}", RuntimeWarning, stacklevel=3)
    return empty
