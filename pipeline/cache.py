"""The feature cache: one chunked store per (dataset, config fingerprint).

Layout (Zarr v3 group, or an HDF5 file with the same names):

======================  ===========  ========  =========================================
array                   shape        dtype     content
======================  ===========  ========  =========================================
``light_features``      [N, T, D_l]  float16   pooled light-backbone features
``rec_features``        [N, T, D_r]  float16   recognizer pre-logits features
``rec_logits``          [N, T, C]    float32   recognizer logits
``frame_indices``       [N, T]       int32     source frame of each of the T samples
``num_frames``          [N]          int32     frames in the source video
``status``              [N]          int8      0 pending, 1 done, 2 failed
``source_sizes``        [N]          int64     size of the video's source when computed
``decoder_rules``       [N]          int8      the decoder rules the video's rows were read under
======================  ===========  ========  =========================================

``source_sizes`` holds :func:`pipeline.video.source_size` of each video's file or frame folder,
taken before it was decoded (done or failed; -1 where not recorded: a store made before
2026-12-05 gets the array, so filled, when it is next written). A video whose source has
another size now is computed again (:func:`changed_sources`), and the stages after this one
key their outputs by :meth:`FeatureCache.content_fingerprint`, which sees such rows change.

``decoder_rules`` holds, for each finished video, the version of the rules that give a file to
decord or PyAV (:data:`pipeline.decoders.DECODER_RULES`) that its frames were read under: the
version itself where the video was computed under it, its negative where the rows are older and
a look under it (:func:`pipeline.decoders.misread_before`) found them read as it reads them; 0
where not known (a store made before the array gets it, so filled, when it is next written,
:func:`record_looked`). The features stage looks at the finished videos of a store
under older rules and computes again those they misread.

A cache built with ``offsets`` S > 1 (candidate frames per segment, for the temporal random
shift of sampler training) also holds, for the *training* videos (other rows stay zero), the
S-1 other candidates of every segment (:func:`pipeline.sampling.candidate_frame_indices`):
``shift_light_features`` [N, S-1, T, D_l], ``shift_rec_features`` [N, S-1, T, D_r],
``shift_rec_logits`` [N, S-1, T, C] and ``shift_frame_indices`` [N, S-1, T]. The arrays above
always hold the segment centres, so every stage that does not train reads such a cache as if
it had none.

Every array is stored by *shard* of consecutive videos (``videos_per_shard``, 256 by default),
one file each (Zarr v3 sharding), so a store holds about N/256 files per array, not one per
video; inside a shard the rows are compressed (Blosc/zstd) in chunks of up to
``CHUNK_VIDEOS`` videos. Stores made before 2026-12-02 have a chunk per video inside their
shards and are read and completed as they are: the same rows, but zarr spends its per-chunk
overhead on every video (reading 2,560 ResNet-50 rows whole took 1.89 s that way against
0.36 s in chunks of 32, side by side).
A shard is written whole, in one call, by the one writer that owns it (shards are the unit
that ``--shard`` and torchrun ranks divide), and Zarr's local store writes each file atomically
(temp file + rename). A video's ``status`` is set only after all its arrays are written, so a
killed run leaves at worst pending videos, never a half-written one marked done. The group
attributes hold the fingerprint, the full config and the manifest.

Stores written before sharding (one file per video per array, ``videos_per_shard`` absent from
the attributes) are read as they are and completed in their own layout.

HDF5 files cannot be appended to safely by several processes or across a kill, so the HDF5
format is produced by running the same Zarr store as a staging area and, once every video is
finished, copying it into ``<name>.h5`` through a temporary file and an atomic rename.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import glob
import hashlib
import json
import math
import os
import re
import shutil
import time
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from pipeline.file_rights import first_unwritable, not_writable_said, owner_said, warn_if_kept_from_the_group
from pipeline.output_kinds import named
from pipeline.wording import first_few

PENDING, DONE, FAILED = 0, 1, 2
SHARD_VIDEOS = 256  # default videos per shard file of a new store
CHUNK_VIDEOS = 32  # at most this many videos per compressed chunk inside a shard (see above)
EXPORT_VIDEOS = 256  # videos copied at a time into an HDF5 export
# Free space an HDF5 export asks for, as a multiple of the finished Zarr store's size: its gzip
# copy of the demo's cache took 1.067 times the store's Blosc/zstd bytes (16.72 against 15.67 MiB).
HDF5_EXPORT_ROOM = 1.1
ARRAY_NAMES = ("light_features", "rec_features", "rec_logits", "frame_indices", "num_frames", "status", "source_sizes", "decoder_rules")
NOT_RECORDED = -1  # a video's source size where none was recorded (see above)
# What a video was computed from, written after its other rows and before its status.
MARKERS = ("source_sizes", "decoder_rules")
FILL_VALUES = {"source_sizes": NOT_RECORDED}  # 0 for the other arrays
# The arrays of one number a video, and their dtypes.
PER_VIDEO = {"num_frames": "int32", "status": "int8", "source_sizes": "int64", "decoder_rules": "int8"}
SHIFT_PREFIX = "shift_"
SHIFT_ARRAY_NAMES = tuple(SHIFT_PREFIX + name for name in ("light_features", "rec_features", "rec_logits", "frame_indices"))


def left_out(status: np.ndarray, in_split: np.ndarray) -> dict[str, int]:
    """How many videos of a split (``in_split``, a mask over the cache's videos) its later stages
    neither score nor train on, by why: ``failed`` in the features stage (a missing, corrupt or
    unreadable video), ``pending`` (a cache not finished)."""
    return {"failed": int((in_split & (status == FAILED)).sum()), "pending": int((in_split & (status == PENDING)).sum())}


class CacheError(Exception):
    """A cache that cannot be used as asked; the message names the store and the reason."""


@dataclass(frozen=True)
class Layout:
    num_videos: int
    num_frames: int  # T
    light_dim: int
    rec_dim: int
    num_classes: int
    shard_videos: int | None = None  # videos per shard file; None: one file per video (old layout)
    offsets: int = 1  # candidate frames per segment (S); S > 1 adds the shift_* arrays

    def rows(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per-video row shape and dtype of every data array (all but ``status``)."""
        return {name: (shape[1:], dtype) for name, (shape, dtype) in self.arrays().items() if name != "status"}

    def video_bytes(self) -> int:
        """Bytes of one video's rows in every array (``status`` included), before compression."""
        return sum(math.prod(shape[1:]) * np.dtype(dtype).itemsize for shape, dtype in self.arrays().values())

    def arrays(self) -> dict[str, tuple[tuple[int, ...], str]]:
        n, t = self.num_videos, self.num_frames
        views = {
            "light_features": ((t, self.light_dim), "float16"),
            "rec_features": ((t, self.rec_dim), "float16"),
            "rec_logits": ((t, self.num_classes), "float32"),
            "frame_indices": ((t,), "int32"),
        }
        arrays = {name: ((n,) + shape, dtype) for name, (shape, dtype) in views.items()}
        if self.offsets > 1:
            arrays.update({SHIFT_PREFIX + name: ((n, self.offsets - 1) + shape, dtype) for name, (shape, dtype) in views.items()})
        return {**arrays, **{name: ((n,), dtype) for name, dtype in PER_VIDEO.items()}}


def fingerprint(identity: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines a cache's content."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def store_path(cache_dir: Path, dataset: str, fp: str, storage: str) -> Path:
    """Where the cache of a dataset and fingerprint lives: a new directory per config."""
    suffix = ".zarr" if storage == "zarr" else ".h5"
    return Path(cache_dir) / dataset / f"features-{fp[:16]}{suffix}"


def staging_path(final: Path) -> Path:
    """The Zarr store a cache is computed in: the cache itself for Zarr, a staging store for HDF5."""
    return final if final.suffix == ".zarr" else final.with_name(final.name + ".staging.zarr")


def final_path(store: Path) -> Path:
    """The cache a store is computed for (:func:`staging_path`'s inverse): the HDF5 file of a
    staging store, else the store itself."""
    name = store.name.removesuffix(".staging.zarr")
    return store.with_name(name) if name != store.name and name.endswith(".h5") else store


def found_beside(recorded: Path, folder: Path) -> Path:
    """``recorded``, a path that a pointer or an output wrote down, where it is there; else the
    path under ``folder`` that ends as ``recorded`` does, by the longest such tail that is there
    (an output's name beside its pointer; ``finetune/<run>/model.pth``, a checkpoint fine-tuned
    into the cache folder): a cache folder moved or copied elsewhere, or mounted at another path
    on another node, keeps what it holds in place, while the paths written in it are the old
    place's; else ``recorded`` (which the error that follows names)."""
    recorded = Path(recorded)
    if recorded.exists():
        return recorded
    parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
    for start in range(len(parts)):
        here = Path(folder).joinpath(*parts[start:])
        if here.exists():
            return here
    return recorded


def read_pointer(pointer: Path) -> Path:
    """The output a ``latest-*.txt`` pointer names (:func:`found_beside` the pointer); a pointer
    that names none (empty, or a byte that is no UTF-8 or a NUL: a copy cut short, a disk error)
    is a :class:`CacheError` naming it, where its bytes had been a bare ``UnicodeDecodeError``."""
    try:
        named = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        named, why = "", str(exc)
    else:
        why = "empty" if not named else "a NUL byte" if "\0" in named else ""
    if why:
        raise CacheError(f"{pointer}: damaged, names no output ({why}); remove it and pass the output it named (`nsnet outputs` lists them), or run the stage that wrote it again")
    return found_beside(Path(named), pointer.parent)


def partial_path(output: Path) -> Path:
    """Where this process writes ``output`` before renaming it into place: ``<output>.<pid>.tmp``
    (:func:`replacing`, :func:`written_whole`; told by :func:`is_partial`)."""
    return output.with_name(f"{output.name}.{os.getpid()}.tmp")


@contextmanager
def replacing(path: Path, kept: str = "the file there before, if any, is unchanged: free space and run the same command again") -> Iterator[Path]:
    """A temporary file of this process beside ``path`` to write, renamed over ``path`` once
    written, so that neither a kill nor a second writer leaves half a file; on an error the
    temporary file goes, and a full disk is a :class:`CacheError` saying what was ``kept``
    (see :func:`clear_out_of_space`)."""
    path = Path(path)
    tmp = partial_path(path)
    with clear_out_of_space(path, kept):
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all (:func:`replacing`)."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_text_changed(path: Path, text: str) -> None:
    """:func:`write_text_atomic` where ``path`` does not hold ``text`` already: a record written
    again as it was is not touched (a finished output stays as it is, on a read-only disk too)."""
    if not path.is_file() or path.read_bytes() != text.encode():
        write_text_atomic(path, text)


@contextmanager
def writing_alone(path: Path, lock: Path | None = None) -> Iterator[None]:
    """The block as ``path``'s one writer: holding its lock (``lock``, else
    :func:`output_lock_path` of ``path``; waited for), with what killed writers of it left
    (:func:`clear_partials`) removed first."""
    with file_lock(lock or output_lock_path(path)):
        clear_partials(path)
        yield


def write_text_alone(path: Path, text: str) -> None:
    """``text`` into ``path`` whole (:func:`write_text_atomic`) as its one writer
    (:func:`writing_alone`: each holds the lock for a moment): for the small files that several
    runs write, each whole (a feature cache's summary and failures list, the ``latest``
    pointers), whose killed writers' partials nothing else clears."""
    with writing_alone(Path(path)):
        write_text_atomic(path, text)


def restart_log(path: Path, entries: Sequence[dict[str, Any]]) -> None:
    """A training run's JSON-lines log at ``path`` made to hold ``entries`` alone (its resume
    point's history), whole or not at all: what a killed run left after them (half a line) goes
    before the run appends (:func:`append_log`)."""
    write_text_atomic(path, "".join(json.dumps(entry) + "\n" for entry in entries))


def append_log(path: Path, entry: dict[str, Any]) -> None:
    """An epoch's line at the end of a training run's log (:func:`restart_log`), written after
    the epoch's resume point is saved, so that the log lists saved epochs alone."""
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def _opened_to_lock(path: Path, mode: str) -> Any:
    """``path`` opened to ``flock`` it (``mode`` "a+" makes it, "r+" does not): for writing, as
    Linux's NFS client takes an exclusive ``flock`` as a lock of the whole file, which a file
    opened for reading alone cannot have (``EBADF``); made group-writable where it is this
    process's, so that the other members of a group's shared folder can lock it too (a umask of
    022 left it its maker's alone, and their commands stopped at it: ``Permission denied``).
    Another user's file that cannot be written here is opened for reading (``flock`` takes it on
    a local disk and Lustre; NFS refuses, said by :func:`file_lock`)."""
    try:
        handle = open(path, mode)
    except PermissionError:
        if not path.is_file():
            raise
        return open(path)
    found = os.fstat(handle.fileno())
    if found.st_uid == os.geteuid() and not found.st_mode & 0o020:
        try:
            os.fchmod(handle.fileno(), (found.st_mode & 0o7777) | 0o060)
        except OSError:  # a file system without modes (some FUSE and SMB mounts): as it is
            pass
    return handle


@contextmanager
def file_lock(path: Path, blocking: bool = True, hint: str = "wait for it or pick another shard") -> Iterator[None]:
    """An exclusive ``flock`` on ``path``; non-blocking raises :class:`CacheError` when held
    (naming the holder, then ``hint``). The holder is written into the file where it can be
    written (:func:`_opened_to_lock`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _opened_to_lock(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise CacheError(f"{path}: another writer holds this lock ({holder}); {hint}{slurm_tasks_hint()}") from None
        except OSError as exc:  # ENOLCK, ENOSYS, EOPNOTSUPP: a file system without flock
            if not handle.writable():
                raise CacheError(f"{path}: another user's lock file, which this process may read but not write, and this file system locks only files open for writing (NFS); ask its owner to `chmod g+w` it, or remove it while no command runs") from exc
            raise CacheError(f"{path}: this file system cannot lock files ({exc.strerror}); put the cache where flock works (a local disk, NFSv4, Lustre mounted with -o flock)") from exc
        if handle.writable():
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {os.uname().nodename}")
            handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def slurm_tasks_hint() -> str:
    """Where SLURM started this process as one of several tasks of a step (``srun
    --ntasks=8 nsnet ...``) and torchrun did not (no ``WORLD_SIZE``): a sentence saying that each
    task runs the whole command unless given its share, the likely cause of a lock held by a
    process of the same command; else ""."""
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or ""
    if not tasks.isdigit() or int(tasks) < 2 or "WORLD_SIZE" in os.environ:
        return ""
    return f" (SLURM started {tasks} tasks of this step, each running the whole command: give each its share, `--shard $SLURM_PROCID/{tasks}` inside `bash -c '...'`, or start them with torchrun)"


def lock_holder(path: Path) -> str | None:
    """Who holds the :func:`file_lock` at ``path`` now (what it wrote there: ``pid N on host``),
    else None (no such file, or no holder: it is taken and let go at once to know); opened as
    :func:`file_lock` opens it (:func:`_opened_to_lock`)."""
    try:
        handle = _opened_to_lock(path, "r+")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


@contextmanager
def share_writer_lock(lock: Path, count: int, dividing: Path, count_of: Callable[[str], int | None], hint: str) -> Iterator[None]:
    """A writer's lock of its share of a store's shards, one of ``count`` (:func:`file_lock`,
    not blocking: ``hint`` where another writer holds it), taken where no writer dividing the
    store into another count of shares holds its own now: the locks in ``lock``'s folder whose
    names ``count_of`` gives a count (1: a writer of the whole store). Such a writer is refused,
    naming the other: their shards overlap, and both would compute them. Writers take their lock
    and look at the others' one at a time, under ``dividing``."""
    with ExitStack() as held:
        with file_lock(dividing):
            held.enter_context(file_lock(lock, blocking=False, hint=hint))
            for other in sorted(lock.parent.iterdir()):
                theirs = count_of(other.name)
                if theirs is not None and theirs != count and (holder := lock_holder(other)) is not None:
                    divided = "a run of the whole store" if theirs == 1 else f"a job dividing it into {theirs} shares (--shard jobs times torchrun ranks)"
                    mine = "the whole store" if count == 1 else f"one of {count} shares"
                    raise CacheError(f"{other}: {divided} writes this store now ({holder}), whose shards and this job's ({mine}) overlap; wait for it to finish, or divide the store as it does")
        yield


def creation_lock_path(store: Path) -> Path:
    """The lock beside a store (``<store>.create.lock``) under which it is made, reopened,
    exported, and its decoder rules recorded."""
    return store.with_name(store.name + ".create.lock")


def summary_path(store: Path) -> Path:
    """Where the features stage's command writes its summary of a store (``<store>.summary.json``,
    ``stages.features.write_summary``): of the HDF5 file once finished, of its staging store
    before."""
    return store.with_name(store.name + ".summary.json")


def failures_dir(final: Path) -> Path:
    """Where the features stage's jobs log the videos of the cache ``final``, a file a share:
    why one failed, how one was read (``<cache>.failures.d``)."""
    return final.with_name(final.name + ".failures.d")


def logged_lines(final: Path) -> list[dict[str, Any]]:
    """Every line logged in :func:`failures_dir`, oldest first by its time (``at``: each share
    writes its own log, and a whole run after ``--shard`` jobs writes its lines in a log named
    before theirs); lines logged before 2026-12-06 (late) have no time and come first, in the
    logs' order. A dict of them by video keeps each video's latest."""
    folder = failures_dir(final)
    lines: list[dict[str, Any]] = []
    for log in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        lines += _whole_lines(log)
    return sorted(lines, key=lambda line: line.get("at", 0.0))


# What every line of a features log holds (stages.features._log_video).
LOGGED_KEYS = ("video_id", "path", "reason")


def json_object(data: bytes, keys: Sequence[str] = ()) -> dict[str, Any] | None:
    """The JSON object ``data`` holds, with every one of ``keys``; None where it is damaged (not
    JSON, a byte that is no UTF-8, or JSON of another shape): the one test of a record or a
    log's line the toolkit wrote and reads back."""
    try:
        value = json.loads(data)
    except ValueError:  # JSON's errors and a damaged byte's UnicodeDecodeError
        return None
    return value if isinstance(value, dict) and all(key in value for key in keys) else None


def _whole_lines(log: Path) -> list[dict[str, Any]]:
    """The lines of a features log that are whole; a line cut short (its job killed in the
    middle of a write, or the disk full) or otherwise damaged is passed over with a warning
    naming the log and the line (that video's earlier line, if any, is taken instead)."""
    whole, damaged = [], []
    for number, raw in enumerate(log.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        if (line := json_object(raw, LOGGED_KEYS)) is not None:
            whole.append(line)
        else:
            damaged.append(number)
    if damaged:
        warnings.warn(f"{log}: line{'s' if len(damaged) > 1 else ''} {first_few([str(n) for n in damaged], 3)} not whole (a job killed while writing, or a full disk): passed over", RuntimeWarning, stacklevel=3)
    return whole


def output_lock_path(output: Path) -> Path:
    """The lock file of a stage's output: ``.<output>.lock`` beside it, hidden, so that it
    matches no pattern of the outputs (``<cache>.train-*``)."""
    return output.with_name(f".{output.name}.lock")


def output_lock(output: Path, hint: str = "it is computing the same output; run again when it has finished to use its result") -> AbstractContextManager[None]:
    """The lock of a stage's output (:func:`output_lock_path`), held while it is computed: a
    second process set to compute the same output stops at once, naming the first (then ``hint``)."""
    return file_lock(output_lock_path(output), blocking=False, hint=hint)


@contextmanager
def sole_writer(output: Path, finished: Callable[[], bool], resumable: bool = False) -> Iterator[bool]:
    """Whether this process is to compute ``output``: False where it is ``finished`` (read it
    as it is, without a lock); else True, holding :func:`output_lock` with what killed writers
    left cleared (beside it, and in a folder written file by file), unless another process
    finished it before the lock was taken (False). An unfinished output this process cannot
    write is refused (:func:`require_writable`); one written file by file that a later run goes
    on with (``resumable``: a training run) begun where its group could not go on with it is
    warned of (:func:`~pipeline.file_rights.warn_if_kept_from_the_group`)."""
    if finished():
        yield False
        return
    with output_lock(output):
        if finished():
            yield False
        else:
            require_writable(output)
            if resumable:
                warn_if_kept_from_the_group(output.parent)
            clear_partials(output)
            clear_partials_within(output)
            yield True


def require_writable(*outputs: Path) -> None:
    """A :class:`CacheError` where this process cannot write a file or folder of ``outputs``,
    unfinished outputs it is to go on with (another member of a group began them, under a umask
    that left them theirs alone), naming the first and what to do; before any work, which the
    first write would have lost."""
    if (entry := first_unwritable(outputs)) is not None:
        raise CacheError(not_writable_said(entry, outputs))


@contextmanager
def written_whole(output: Path) -> Iterator[Path]:
    """A folder to write ``output``'s files into: ``<output>.<pid>.tmp``, renamed to ``output``
    when the block ends without an error, so that ``output`` appears whole or not at all (an
    error removes it, a full disk is a :class:`CacheError`; what a killed writer leaves,
    :func:`clear_partials` removes)."""
    tmp = partial_path(output)
    tmp.mkdir(parents=True)
    with clear_out_of_space(output, "nothing of it is kept: free space and run the same command again"):
        try:
            yield tmp
            os.replace(tmp, output)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _output_of_partial(name: str) -> str | None:
    """The output name a :func:`partial_path` named ``name`` is renamed to, or None where
    ``name`` is none (``<output>.<pid>.tmp``)."""
    output, _, pid = name.removesuffix(".tmp").rpartition(".")
    return output if name.endswith(".tmp") and output and pid.isdigit() else None


def is_partial(path: Path) -> bool:
    """Whether ``path`` is a writer's unfinished :func:`partial_path` of some output: one at
    work now, or one a killed writer left."""
    return _output_of_partial(path.name) is not None


def settled_path(path: Path) -> Path:
    """``path`` with each writer's :func:`partial_path` in it named as the output it is renamed
    to (``<out>.<pid>.tmp/a.png`` -> ``<out>/a.png``): how messages name what is being written."""
    return Path(*(_output_of_partial(part) or part for part in Path(path).parts))


def clear_partials(output: Path) -> None:
    """Remove what killed writers of ``output`` left behind (``<output>.<pid>.tmp``, files or
    folders); call it holding :func:`output_lock` of ``output``, the only writer then. Those of
    files named after it (``<output>.summary.json.<pid>.tmp``) are other outputs', perhaps
    being written: they stay."""
    for partial in output.parent.glob(glob.escape(output.name) + ".*.tmp"):
        if _output_of_partial(partial.name) == output.name:
            _remove_partial(partial)


def clear_partials_within(folder: Path) -> None:
    """Remove what killed writers left in ``folder``, an output written file by file (a training
    run's ``last.pth``, ``metrics.json``, ...: ``last.pth.<pid>.tmp``, a checkpoint's size each,
    one a kill while it was saved, or a preemption's SIGTERM); call it holding the folder's
    :func:`output_lock`, the only writer in it then."""
    for entry in folder.iterdir() if folder.is_dir() else ():
        if is_partial(entry):
            _remove_partial(entry)


def remove_path(path: Path) -> None:
    """A file, or a folder with all it holds, removed."""
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _remove_partial(partial: Path) -> None:
    """What a killed writer left removed, or left with a warning where it is another user's that
    this process cannot remove (a group's shared folder): it is in no one's way, its name a pid's."""
    try:
        remove_path(partial)
    except PermissionError:
        warnings.warn(f"{partial}: what a killed writer left ({owner_said(partial)}), which this process cannot remove, is left there for its owner to remove", RuntimeWarning, stacklevel=3)


# A full disk, or the user's quota used up: what writing a store stops at on a cluster's shared
# file system, hours into a features run.
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
RESUMABLE = "the videos finished before are kept: free space and run the same command again to resume"


def size_text(size: float) -> str:
    """Bytes to three figures, in MiB below a GiB and in GiB above."""
    return f"{size / 2**30:.3g} GiB" if size >= 2**30 else f"{size / 2**20:.3g} MiB"


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def warn_if_short_of_space(path: Path, needed: int, what: str) -> None:
    """A RuntimeWarning, before hours of work, where the file system of ``path`` has less free
    space than ``needed`` bytes (an estimate before compression, which saves a little)."""
    free = free_bytes(path)
    if free < needed:
        warnings.warn(f"{path}: {what} up to {size_text(needed)} before compression, and {size_text(free)} is free there; "
                      "the run may stop when the disk is full (what it finished by then is kept: free space and run it again to resume)", RuntimeWarning, stacklevel=2)


def out_of_space(exc: BaseException) -> int | None:
    """The errno of a full disk or quota that ``exc`` is, or was raised from (a library may
    wrap the OSError), else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in OUT_OF_SPACE:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def clear_out_of_space(path: Path, kept: str) -> Iterator[None]:
    """A full disk or quota while writing ``path`` as a :class:`CacheError` that says how much
    is free and what was ``kept``, and so a write torch's checkpoint writer failed, which keeps
    no errno (a full disk gave a training run "unexpected pos 91136 vs 91024" alone); other
    errors pass as they are."""
    try:
        yield
    except Exception as exc:
        code = out_of_space(exc)
        if code is not None:
            raise CacheError(f"{path}: {os.strerror(code).lower()} while writing ({size_text(free_bytes(path))} free); {kept}") from exc
        if isinstance(exc, RuntimeError) and _STREAM_WRITE_FAILED.search(str(exc)):
            raise CacheError(f"{path}: torch could not write it ({str(exc).strip().splitlines()[0]}); {size_text(free_bytes(path))} free on its disk: a full disk or quota, or a disk error; {kept}") from exc
        raise


# What torch.save's zip writer says where the file system refused a write (it keeps no errno):
# on a full disk, "[enforce fail at inline_container.cc:672] . unexpected pos 91136 vs 91024",
# after "basic_ios::clear: iostream error".
_STREAM_WRITE_FAILED = re.compile(r"unexpected pos \d+ vs \d+|iostream error|PytorchStreamWriter failed writing")


def _compressors() -> tuple[Any, ...]:
    """A store's chunk codecs after the bytes: Blosc's zstd, then a CRC-32C of the compressed
    chunk (a chunk damaged after it was written, by a copy cut short or a disk, is an error
    when read: :class:`CheckedArray`; Blosc decoded such a chunk into other numbers without a
    word, or failed on it as "error during blosc decompression: -1", by where the damage lay).
    Stores made before 2026-12-07 (the fifty-fourth session) have none and read as they were."""
    import zarr

    return zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"), zarr.codecs.Crc32cCodec()


# What Zarr's CRC-32C codec and HDF5's Fletcher-32 filter say of a chunk whose bytes changed
# after it was written (h5py's filter failure: the checksum's, the one filter that fails so),
# and Blosc where such a chunk of a store without checksums does not decode.
_DAMAGED = re.compile(r"Stored and computed checksum do not match|Fletcher32|filter returned failure|error during blosc decompression")


# What a damaged chunk's message tells to do, for a feature cache (the features stage's --verify:
# stages/features.py) and for the stores of rows the stages after it keep (pipeline.row_store,
# which computes such shards again itself: said where one is damaged again as soon as written).
REPAIR_FEATURES = "run the features stage again with the cache's options and --verify (it computes the videos of the damaged shards again, the others kept), or copy the cache again from where it was made"
RECOMPUTE_ROWS = "remove it and run the same command again (its rows are computed anew)"


class CheckedArray:
    """An array of a feature cache (Zarr's or h5py's) whose reads say which cache, array and
    rows hold a damaged chunk (:func:`_compressors`, :func:`_h5_dataset`), where the library
    says only that a checksum does not match; everything else is the array's own."""

    def __init__(self, array: Any, path: Path, name: str, remedy: str = REPAIR_FEATURES):
        self._array, self._path, self._name, self._remedy = array, path, name, remedy

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._array[key]
        except (ValueError, OSError, RuntimeError) as exc:
            if not _DAMAGED.search(str(exc)):
                raise
            raise CacheError(f"{self._path}: {self._name}[{_rows_said(key)}] is damaged (a chunk's checksum does not match what was written: a copy cut short, or a disk error); {self._remedy}") from exc

    def __setitem__(self, key: Any, value: Any) -> None:
        self._array[key] = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._array, name)

    def __len__(self) -> int:
        return len(self._array)


def _rows_said(key: Any) -> str:
    """The rows of an array's index as a message says them (``32:64``, ``5``)."""
    first = key[0] if isinstance(key, tuple) and key else key
    if isinstance(first, slice):
        return f"{'' if first.start is None else first.start}:{'' if first.stop is None else first.stop}"
    return str(first)


class ZarrWriter:
    """Write access to a Zarr store of per-video rows, created on first use with its
    fingerprint: ``arrays`` maps each array's name to its (shape, dtype), the videos first;
    ``shard_videos`` videos share a file (None: a file per video, the old layout)."""

    def __init__(self, path: Path, fp: str, attrs: dict[str, Any], arrays: dict[str, tuple[tuple[int, ...], str]], shard_videos: int | None, remedy: str = REPAIR_FEATURES):
        import zarr

        self.path = Path(path)
        with file_lock(creation_lock_path(self.path)):
            if (self.path / "zarr.json").exists():
                group = zarr.open_group(str(self.path), mode="r+")
                check_fingerprint(self.path, dict(group.attrs), fp)
                _add_markers(group, arrays)
            else:
                if self.path.exists() and any(self.path.iterdir()):
                    raise CacheError(f"{self.path}: exists but is not a feature store; remove it or pick another --cache")
                group = zarr.open_group(str(self.path), mode="w")
                for name, (shape, dtype) in arrays.items():
                    shards = (min(shard_videos, shape[0]),) + shape[1:] if shard_videos else None
                    chunks = (math.gcd(shards[0], CHUNK_VIDEOS) if shards else 1,) + shape[1:]  # a chunk divides its shard
                    group.create_array(name, shape=shape, chunks=chunks, shards=shards, dtype=dtype, compressors=_compressors(), fill_value=FILL_VALUES.get(name, 0))
                group.attrs.update({**attrs, "fingerprint": fp})
        self.group = group
        self.attrs = dict(group.attrs)
        self.arrays = {name: CheckedArray(group[name], self.path, name, remedy) for name in arrays}
        for name, (shape, _) in arrays.items():
            if self.arrays[name].shape != shape:
                raise CacheError(f"{self.path}: array {name} has shape {self.arrays[name].shape}, this run's is {shape}")

    def status(self) -> np.ndarray:
        return self.arrays["status"][:]

    def rows(self, start: int, stop: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The rows and status of the videos ``start..stop-1`` as the store holds them."""
        return {name: np.asarray(array[start:stop]) for name, array in self.arrays.items() if name != "status"}, np.asarray(self.arrays["status"][start:stop])

    def write_block(self, start: int, rows: dict[str, np.ndarray], status: np.ndarray) -> None:
        """Write the rows of consecutive videos ``start, start+1, ..`` (whole shards), then
        their :data:`MARKERS` and ``status`` (DONE or FAILED): the markers go last, so that a
        kill between the files leaves each video's rows either whole and marked, or marked as
        before: a video computed again for a changed file whose new size is not written yet, or
        for a misread one whose decoder rules are not, is taken again by the next run."""
        stop = start + len(status)
        for name in sorted(rows, key=lambda name: name in MARKERS):  # the markers after the other rows
            self.arrays[name][start:stop] = rows[name]
        self.arrays["status"][start:stop] = status


def _add_markers(group: Any, arrays: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """The arrays of ``arrays`` a Zarr store made before them lacks (:data:`MARKERS`), added in
    the store's layout, filled with what says "not recorded"."""
    status = group["status"]
    for name, (shape, dtype) in arrays.items():
        if name not in group:
            group.create_array(name, shape=shape, chunks=status.chunks, shards=status.shards, dtype=dtype, compressors=_compressors(), fill_value=FILL_VALUES.get(name, 0))


def record_looked(path: Path, videos: np.ndarray, rules: int) -> None:
    """Record in the store at ``path`` (a Zarr store, or a finished HDF5 file, in place) that the
    rows of ``videos`` (indices in the shards of one writer), computed under older decoder rules,
    are read as the rules ``rules`` read them: ``decoder_rules`` -``rules`` (the array added
    where the store has none), so that no later run looks at them again. Under the store's
    creation lock, a shard at a time (each shard has one writer). An HDF5 file another process
    holds open is left as it is, with a warning: the next run looks again."""
    videos = np.sort(np.asarray(videos, dtype=np.int64))
    if not len(videos):
        return
    path = Path(path)
    with file_lock(creation_lock_path(path)):
        if path.suffix == ".h5":
            _record_looked_hdf5(path, videos, rules)
            return
        import zarr

        group = zarr.open_group(str(path), mode="r+")
        num_videos = group["status"].shape[0]
        _add_markers(group, {"decoder_rules": ((num_videos,), PER_VIDEO["decoder_rules"])})
        marks, step = group["decoder_rules"], shard_size(dict(group.attrs))
        for first in np.unique(videos // step) * step:
            values = np.asarray(marks[first : first + step])
            values[videos[(videos >= first) & (videos < first + step)] - first] = -rules
            marks[first : first + step] = values


def _record_looked_hdf5(path: Path, videos: np.ndarray, rules: int) -> None:
    import h5py

    try:
        h5 = h5py.File(path, "r+")
    except OSError as exc:
        warnings.warn(f"{path}: the decoder rules of {len(videos)} video(s) looked at are not recorded (the file cannot be written now: {str(exc).splitlines()[0]}); the next run looks at them again", stacklevel=3)
        return
    with h5:
        if "decoder_rules" not in h5:
            _h5_dataset(h5, "decoder_rules", h5["status"].shape, PER_VIDEO["decoder_rules"])
        values = h5["decoder_rules"][:]
        values[videos] = -rules
        h5["decoder_rules"][:] = values


def _h5_dataset(h5: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """An array of an HDF5 cache: a chunk a video, gzip-compressed, each chunk with its Fletcher-32
    checksum (since 2026-12-07, the fifty-fourth session; :class:`CheckedArray`)."""
    return h5.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) + tuple(shape[1:]), compression="gzip", shuffle=True, fletcher32=True)


class ShardAssembler:
    """Collects the rows of a shard's videos, block by block, until the whole shard is there: a
    shard file is written once, whole (rewriting it block by block would cost its size each
    time). ``coming`` [N] marks the videos this run computes; the other videos of a shard it
    computes some of (a shard written before, some of whose videos are computed again) keep
    their rows, read from the store with ``written(start, stop)`` when the shard is begun."""

    def __init__(self, num_videos: int, shard_videos: int, rows: dict[str, tuple[tuple[int, ...], str]], coming: np.ndarray, written: Callable[[int, int], tuple[dict[str, np.ndarray], np.ndarray]]):
        self.num_videos, self.shard_videos, self.row_layout = num_videos, shard_videos, rows
        self.coming, self.written = coming, written
        self._start: int | None = None
        self._rows: dict[str, np.ndarray] = {}
        self._status = np.zeros(0, dtype=np.int8)
        self._filled = 0

    def add(self, members: Sequence[int], rows: dict[str, np.ndarray], status: np.ndarray) -> tuple[int, dict[str, np.ndarray], np.ndarray] | None:
        """Add the rows of the videos ``members`` (of one shard, in order); returns (shard start,
        rows, status) when they complete their shard, else None. Blocks must come shard by shard."""
        shard_start = members[0] - members[0] % self.shard_videos
        if self._start is None:
            self._begin(shard_start)
        if shard_start != self._start or members[-1] >= self._start + len(self._status):
            raise ValueError(f"rows of videos {members[0]}..{members[-1]} arrived while the shard at {self._start} is incomplete")
        at = np.asarray(members) - shard_start
        for name, value in rows.items():
            self._rows[name][at] = value
        self._status[at] = status
        self._filled += len(at)
        if self._filled < len(self._status):
            return None
        complete = (self._start, self._rows, self._status)
        self._start = None
        return complete

    def _begin(self, start: int) -> None:
        stop = min(start + self.shard_videos, self.num_videos)
        self._start = start
        self._rows = {name: np.zeros((stop - start,) + shape, dtype=dtype) for name, (shape, dtype) in self.row_layout.items()}
        self._status = np.zeros(stop - start, dtype=np.int8)
        kept = ~self.coming[start:stop]
        if kept.any():
            rows, status = self.written(start, stop)
            for name in self._rows:
                self._rows[name][kept] = rows[name][kept]
            self._status[kept] = status[kept]
        self._filled = int(kept.sum())


class BackgroundWriter:
    """Runs a store's writes on one background thread, in submission order, so that chunk
    compression and file I/O overlap with model compute. At most ``max_pending`` writes wait;
    the first error is raised by :meth:`submit` or :meth:`close`."""

    def __init__(self, max_pending: int = 64):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-writer")
        self._pending: deque[Future] = deque()
        self._max = max_pending

    def submit(self, fn, *args) -> None:
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > self._max or (self._pending and self._pending[0].done()):
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_fingerprint(path: Path, attrs: dict[str, Any], fp: str) -> None:
    found = attrs.get("fingerprint")
    if found != fp:
        raise CacheError(
            f"{path}: this cache was built with another configuration (fingerprint {str(found)[:16]}, "
            f"this run {fp[:16]}); it is never mixed with a different one. Use the default cache location "
            "(one directory per configuration) or another --cache path."
        )


_T = TypeVar("_T")
# What the stores' attribute reads gave, by store: its stamp (inode, size, modification time) and
# the value. The attributes hold the manifest, 61 MiB of JSON at Kinetics-400's 240,000 videos,
# 0.66-0.92 s a parse on the machines this was written on, and evaluate opened one cache ten times.
_READ_ONCE: dict[str, tuple[tuple[int, int, int], Any]] = {}
READ_ONCE_STORES = 4  # the stores whose reads are held at a time (a cache, its all-frames cache, ...)
# A file changed this recently is read again every time: a file system stamps times coarsely
# (4 ms on this kernel, 2 s on FAT), so a change within one tick could keep the same stamp.
SETTLED_NS = 2_000_000_000


def read_once(path: Path, read: Callable[[], _T]) -> _T:
    """What ``read()`` gives of the file ``path``, read once a process while the file stays the
    same (by its stamp, and only once it has been the same for :data:`SETTLED_NS`, as git does
    with its index); any change, a rename over it included, reads it again."""
    key = str(path.resolve())
    found = path.stat()
    stamp = (found.st_ino, found.st_size, found.st_mtime_ns)
    held = _READ_ONCE.get(key)
    if held is not None and held[0] == stamp:
        return held[1]
    value = read()
    _READ_ONCE.pop(key, None)
    if time.time_ns() - found.st_mtime_ns > SETTLED_NS:
        _READ_ONCE[key] = (stamp, value)
        while len(_READ_ONCE) > READ_ONCE_STORES:
            del _READ_ONCE[next(iter(_READ_ONCE))]
    return value


class FeatureCache:
    """Read access to a finished or partial cache, Zarr or HDF5, through one interface."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise CacheError(f"{self.path}: no feature cache here")
        if self.path.suffix == ".h5":
            import h5py

            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise CacheError(f"{self.path}: not a feature cache (not an HDF5 file h5py can read: {str(exc).splitlines()[0]})") from exc
            if "nsnet" not in self._h5.attrs:
                raise CacheError(f"{self.path}: an HDF5 file without a feature cache's attributes (another program's): remove it or pick another --cache")
            self.attrs = dict(read_once(self.path, lambda: json.loads(self._h5.attrs["nsnet"])))
            self.arrays = {name: CheckedArray(self._h5[name], self.path, name) for name in ARRAY_NAMES + SHIFT_ARRAY_NAMES if name in self._h5}
        else:
            import zarr

            self._h5 = None
            metadata = self.path / "zarr.json"  # absent from a Zarr v2 group, read without the memo

            def opened() -> tuple[Any, dict[str, Any]]:
                group = zarr.open_group(str(self.path), mode="r")
                return group, dict(group.attrs)

            try:
                group, attrs = read_once(metadata, opened) if metadata.is_file() else opened()
            except FileNotFoundError:  # zarr's "no group found", a FileNotFoundError
                raise CacheError(named(self.path, "a feature cache", "not a feature cache (no Zarr group here; the features stage writes <cache-dir>/<dataset>/features-<fingerprint>.zarr, or .h5 with --storage hdf5)")) from None
            if "fingerprint" not in attrs:
                raise CacheError(f"{self.path}: a Zarr group without a feature cache's attributes (another program's, or one whose making was cut short): remove it or pick another --cache")
            self.attrs = dict(attrs)
            self.arrays = {name: CheckedArray(group[name], self.path, name) for name in ARRAY_NAMES + SHIFT_ARRAY_NAMES if name in group}

    def __getitem__(self, name: str):
        return self.arrays[name]

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the configuration (:func:`fingerprint`): the store's name."""
        return self.attrs["fingerprint"]

    @functools.cached_property
    def content_fingerprint(self) -> str:
        """What the stages after this one key their outputs by: the fingerprint, with, where the
        store records its videos' sources, which videos are finished and from which source
        sizes, and, where any video was computed under the decoder rules it records, under
        which, so that videos computed again (a changed file, a failure retried, a file decord
        misread) give their outputs new keys. A store made before it recorded them keeps its
        fingerprint, and the outputs computed from it keep theirs, as do those of a store whose
        looks under new rules found every video read right."""
        if "source_sizes" not in self.arrays:
            return self.fingerprint
        digest = hashlib.sha256(self.fingerprint.encode())
        for name in ("status", "source_sizes"):
            digest.update(np.ascontiguousarray(self.arrays[name][:]).tobytes())
        if "decoder_rules" in self.arrays:
            computed_under = np.maximum(np.asarray(self.arrays["decoder_rules"][:]), 0)
            if computed_under.any():
                digest.update(computed_under.astype(np.int8).tobytes())
        return digest.hexdigest()

    @property
    def offsets(self) -> int:
        """Candidate frames per segment of the training videos (1: the centres alone)."""
        return 1 + (self.arrays["shift_frame_indices"].shape[1] if "shift_frame_indices" in self.arrays else 0)

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()

    def __enter__(self) -> "FeatureCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def changed_sources(recorded: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Which videos' sources changed since the store recorded them (``recorded``, its
    ``source_sizes``) by their sizes ``now`` (:func:`pipeline.video.source_size`): another size,
    where one was recorded and a source is there now. A source gone since keeps its video's
    rows (the videos of a dataset whose features are computed are often moved or deleted), and
    one that was missing and is there now is changed."""
    from pipeline.video import NO_SOURCE

    return (recorded != NOT_RECORDED) & (now != NO_SOURCE) & (now != recorded)


def read_rows(array: Any, rows: np.ndarray, block: int = EXPORT_VIDEOS, threads: int = 1) -> np.ndarray:
    """``array[rows]`` for sorted row indices, read a block of consecutive videos at a time
    (a shard), so that only the selected rows are held, not the whole array; ``threads`` blocks
    at once (Zarr decodes a call's chunks concurrently, so this pays where a block is one chunk)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows),) + tuple(array.shape[1:]), dtype=array.dtype)
    if not len(rows):
        return out
    blocks, first = np.unique(rows // block, return_index=True)  # only the blocks holding rows
    ends = np.r_[first[1:], len(rows)]

    def take_block(i: int) -> None:
        start = int(blocks[i]) * block
        out[first[i] : ends[i]] = np.asarray(array[start : start + block])[rows[first[i] : ends[i]] - start]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(take_block, range(len(blocks))):  # in order; a block's error raised here
            pass
    return out


@dataclass(frozen=True)
class Damage:
    """A block of a store's array, a shard's videos ``start:stop``, holding a damaged chunk."""

    array: str
    start: int
    stop: int
    said: str  # what CheckedArray says of it


def read_block(arrays: dict[str, Any], name: str, start: int, stop: int) -> np.ndarray | Damage:
    """The rows ``start:stop`` of a store's array (a :class:`CheckedArray`), or what is damaged there."""
    try:
        return np.asarray(arrays[name][start:stop])
    except CacheError as exc:
        return Damage(name, start, stop, str(exc))


def damaged_blocks(path: Path, progress: bool = False, owned: Callable[[int], bool] = lambda shard: True) -> list[Damage]:
    """Every array of the cache at ``path`` read whole, a shard at a time (those shards ``owned``
    takes, by index), and each shard's block holding a damaged chunk ([] where none does): a
    cache copied to another node checked before hours of training read it. A store made before
    its chunks carried checksums is read as well, its Blosc failures said alone."""
    from tqdm import tqdm

    with FeatureCache(path) as cache:
        block, videos = shard_size(cache.attrs), cache["status"].shape[0]
        starts = [start for shard, start in enumerate(range(0, videos, block)) if owned(shard)]
        blocks = [(name, start) for name in cache.arrays for start in starts]
        read = (read_block(cache.arrays, name, start, min(start + block, videos)) for name, start in tqdm(blocks, desc=f"verify {Path(path).name}", unit="block", disable=not progress))
        return [found for found in read if isinstance(found, Damage)]


NO_CHECKSUMS = "its chunks carry no checksums (made before 2026-12-07), so a byte changed since is not seen: make it anew to have them"


def chunks_checked(path: Path) -> bool:
    """Whether the chunks of the cache at ``path`` carry checksums (:func:`_compressors`,
    :func:`_h5_dataset`; since 2026-12-07): those of an older one are only decoded, and a byte
    changed since decodes into other numbers unseen."""
    import zarr

    with FeatureCache(path) as cache:
        status = cache["status"]
        return bool(status.fletcher32) if cache.path.suffix == ".h5" else any(isinstance(codec, zarr.codecs.Crc32cCodec) for codec in status.compressors)


def reset_damaged(store: Path, damaged: Sequence[Damage]) -> int:
    """The shards of a Zarr store holding ``damaged`` blocks made pending, to compute again, and
    the files of those blocks removed (a block then reads as its fill values: a damaged one
    cannot be written over, zarr reading the part of a shard a write does not cover, as the
    last shard's, short, is read); returns the videos reset. Their status goes first: a kill
    between leaves pending videos, never finished ones without their rows."""
    import zarr

    group = zarr.open_group(str(store), mode="r+")
    shards = sorted({(d.start, d.stop) for d in damaged})
    unread = {(d.start, d.stop) for d in damaged if d.array == "status"}
    for start, stop in shards:
        if (start, stop) not in unread:
            group["status"][start:stop] = PENDING
    for d in sorted(damaged, key=lambda d: d.array != "status"):  # a damaged status's files first
        for path in _chunk_files(store, group[d.array], d.array, d.start, d.stop):
            path.unlink(missing_ok=True)
    return sum(stop - start for start, stop in shards)


def _chunk_files(store: Path, array: Any, name: str, start: int, stop: int) -> list[Path]:
    """The files of a Zarr store's array holding its rows ``start:stop``: its shards (its
    chunks in a store from before sharding)."""
    rows, tail = (array.shards or array.chunks)[0], (0,) * (array.ndim - 1)
    return [Path(store, name, array.metadata.encode_chunk_key((i, *tail))) for i in range(start // rows, (stop - 1) // rows + 1)]


def export_hdf5(staging: Path, final: Path) -> None:
    """Copy a finished Zarr store into an HDF5 file with the same schema, atomically. Called under
    the store's creation lock, the one exporter: the part-written copy a killed export left
    (``<final>.<pid>.tmp``, up to the cache's size) goes first, before the free space is counted.
    The staging store goes after, with the summary a job that finished before wrote of it (its
    pending videos are finished now)."""
    import h5py

    kept = f"the finished Zarr store {staging.name} is kept: free space and run the same command again to export it"
    clear_partials(final)
    needed, free = int(directory_size(staging) * HDF5_EXPORT_ROOM), free_bytes(final)
    if free < needed:  # checked first: the HDF5 library, out of space, fails over and over and may crash at exit
        raise CacheError(f"{final}: the HDF5 export needs about {size_text(needed)} (the store's size and a tenth) and {size_text(free)} is free; {kept}")
    source = FeatureCache(staging)
    step = int(source.attrs.get("videos_per_shard", EXPORT_VIDEOS))
    with replacing(final, kept) as tmp:  # a part-written copy goes: it would hold the space a re-run needs
        with h5py.File(tmp, "w") as h5:
            for name, array in source.arrays.items():
                _copy_rows(array, _h5_dataset(h5, name, array.shape, array.dtype), step)
            h5.attrs["nsnet"] = json.dumps(source.attrs)
    shutil.rmtree(staging)
    summary_path(staging).unlink(missing_ok=True)


def _copy_rows(source: Any, target: Any, step: int) -> None:
    """One store's array into another's, ``step`` videos (a shard) at a time: memory stays flat."""
    for start in range(0, source.shape[0], step):
        target[start : start + step] = source[start : start + step]


def reopen_hdf5(final: Path, staging: Path) -> int:
    """A finished HDF5 cache copied back into its Zarr staging store, there to compute videos
    again; :func:`export_hdf5` replaces the file once they are finished. The copy is made
    beside the store and renamed to it whole (a killed copy must not leave a store whose
    uncopied videos look pending: they would be computed again from their videos), in the
    layout the store was made in, a shard at a time; a shard holding a damaged chunk is not
    copied, its videos left pending. Under the store's creation lock: a writer that finds the
    store there (another one reopened it) leaves it as it is. Returns the videos left pending
    for damage."""
    damaged = 0
    with file_lock(creation_lock_path(final)):
        if staging.exists():
            return damaged
        clear_partials(staging)
        with FeatureCache(final) as source, written_whole(staging) as tmp:  # a full disk: the HDF5 file as it was
            attrs = {k: v for k, v in source.attrs.items() if k != "fingerprint"}
            step = shard_size(source.attrs)
            arrays = {name: (array.shape, str(array.dtype)) for name, array in source.arrays.items()}
            writer = ZarrWriter(tmp, source.fingerprint, attrs, arrays, step)
            videos = source["status"].shape[0]
            for start in range(0, videos, step):
                stop = min(start + step, videos)
                rows = {name: read_block(source.arrays, name, start, stop) for name in source.arrays}
                if any(isinstance(value, Damage) for value in rows.values()):  # the shard left pending (the fill), computed again
                    damaged += stop - start
                    continue
                for name, value in rows.items():
                    writer.arrays[name][start:stop] = value
        creation_lock_path(tmp).unlink()
    return damaged


def shard_size(attrs: dict[str, Any]) -> int:
    """Videos per shard file of a store; a store from before sharding has a file per video and
    is divided among writers by blocks of ``videos_per_batch``."""
    return int(attrs.get("videos_per_shard", attrs["videos_per_batch"]))


def store_sizes(attrs: dict[str, Any]) -> dict[str, int]:
    """A store's videos a model batch and a shard (:func:`shard_size`), fixed when it was made."""
    return {"videos_per_batch": int(attrs["videos_per_batch"]), "videos_per_shard": shard_size(attrs)}


def store_files(path: Path) -> dict[str, int]:
    """Files of a store, per array (and ``metadata`` for the rest): 1 for an HDF5 file."""
    path = Path(path)
    if path.is_file():
        return {"total": 1}
    counts: dict[str, int] = {}
    for p in path.rglob("*"):
        if p.is_file():
            top = p.relative_to(path).parts[0]
            key = top if top in ARRAY_NAMES + SHIFT_ARRAY_NAMES and p.name != "zarr.json" else "metadata"
            counts[key] = counts.get(key, 0) + 1
    return {**counts, "total": sum(counts.values())}


def directory_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
