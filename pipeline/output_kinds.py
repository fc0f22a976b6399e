"""What a path holds of the toolkit's own outputs, told by the files each stage writes in it, so
that an output given to the wrong option is named as what it is and the option that reads it
(a prototypes folder as ``--features``, a feature cache as ``--run``, a sampler run's heads as
a backbone's weights), as :mod:`pipeline.datasets.kinds` names a dataset's annotation files.
Only the files' names are looked at, and an HDF5 file's first bytes."""

from __future__ import annotations

import os
from collections.abc import Set as AbstractSet
from pathlib import Path

FEATURE_CACHE = "a feature cache (`nsnet features`' output), read by --features"
PROTOTYPES = "a prototypes folder (`nsnet prototypes`' output), read by --prototypes"
SAMPLER_RUN = "a sampler run (`nsnet train`'s output), read by --run"
FINETUNING_RUN = "a fine-tuning run (`nsnet finetune`'s output), whose model.pth is a backbone's weights, read by `nsnet features --recognizer-weights` or --light-weights"
EVALUATION = "an evaluation report (`nsnet evaluate`'s output)"
PREDICTIONS = "predictions (`nsnet predict`'s output)"
CHECKPOINT = "a checkpoint file, a backbone's weights as `nsnet features --recognizer-weights` or --light-weights read them"

# The file each kind of folder holds (a sampler run: its finished heads or the last epoch's
# checkpoint, beside its log; a fine-tuning run the same and the identity of its backbone).
_FOLDERS = (
    (FEATURE_CACHE, ("zarr.json",)),
    (PROTOTYPES, ("guides.npz",)),
    (FINETUNING_RUN, ("identity.json", "log.jsonl")),
    (SAMPLER_RUN, ("model.pth", "log.jsonl")),
    (SAMPLER_RUN, ("last.pth", "log.jsonl")),
    (EVALUATION, ("results.json", "report.md")),
    (PREDICTIONS, ("predictions.jsonl",)),
)
# The first bytes of an HDF5 file (a feature cache written with --storage hdf5).
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# How checkpoint files are named by the code bases whose weights the features stage reads.
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt", ".bin", ".safetensors")


def output_kind(path: Path) -> str | None:
    """What ``path`` is of the toolkit's outputs (one of this module's phrases; a file in one
    of its output folders as ``a file in <folder>, <the folder's kind>``), a feature cache
    written to HDF5, or a checkpoint file by its suffix; None for anything else."""
    path = Path(path)
    if path.is_dir():
        try:
            with os.scandir(path) as entries:
                return folder_kind({entry.name for entry in entries if entry.is_file()})
        except OSError:
            return None
    if not path.is_file():
        return None
    if path.suffix == ".h5" and _starts_with(path, _HDF5_SIGNATURE):
        return FEATURE_CACHE
    if (folder := output_kind(path.parent)) is not None:
        return f"a file in {path.parent}, {folder}"
    return CHECKPOINT if path.name.endswith(_CHECKPOINT_SUFFIXES) else None


def folder_kind(files: AbstractSet[str]) -> str | None:
    """What a folder holding the files named ``files`` is of the toolkit's outputs (one of this
    module's phrases), else None: for a walk, which has its folders' file names at hand."""
    return next((kind for kind, names in _FOLDERS if files.issuperset(names)), None)


def run_folder(path: Path) -> Path:
    """A sampler run as ``--run`` takes it: a file of a sampler run's folder (its ``model.pth``,
    as a checkpoint is often given) as the folder; any other path as it is."""
    path = Path(path)
    return path.parent if path.is_file() and output_kind(path.parent) == SAMPLER_RUN else path


def _starts_with(path: Path, signature: bytes) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(len(signature)) == signature
    except OSError:
        return False


def named(path: Path, expected: str, detail: str, itself: str | None = None) -> str:
    """The message for ``path`` given where ``expected`` (``a feature cache``) belongs: what it
    is where :func:`output_kind` knows (``<path>: a sampler run (...), read by --run; not a
    feature cache``), else, and where it is of the kind ``itself`` that is expected (a
    checkpoint file that cannot be read), ``detail``, the reader's own account of it."""
    kind = output_kind(path)
    return f"{path}: {kind}; not {expected}" if kind not in (None, itself) else f"{path}: {detail}"
