"""Decoding of videos (files through decord, PyAV as the fallback, or folders of extracted
frames) into RGB arrays, with the time of each frame."""

from __future__ import annotations

import functools
import os
import re
import stat
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from pipeline.decoders import DecodeError, DecordReader, PyAVReader, decord_installed, first_line, frame_seconds
from pipeline.wording import first_few

if TYPE_CHECKING:
    from pipeline.datasets.manifest import VideoRecord

# The order is the order of preference where one video is kept in two formats.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv", ".ogv", ".m2ts", ".mts", ".f4v", ".vob", ".asf", ".divx", ".rmvb", ".rm")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
DECODERS = {"decord": DecordReader, "pyav": PyAVReader}
# Why PyAV reads a file where decord has no wheel (pipeline.decoders.decord_installed).
DECORD_MISSING = "decord is not installed"
# Optical-flow images that mmaction2's build_rawframes (flow_x_00001.jpg, flow_y_00001.jpg) and
# denseflow (x_00001.jpg, y_00001.jpg) write beside the RGB frames of a video.
_FLOW_NAME = re.compile(r"^(flow_)?[xy]_", re.IGNORECASE)  # not u_/v_: UCF101 and ActivityNet names start with v_
_NUMBER = re.compile(r"\d+")
# Folders that file servers and operating systems keep beside a user's files: Synology's
# thumbnails (a sub-folder of JPEGs per video, which would pass for its frames) and recycle
# bin, Windows' recycle bin and volume data.
SYSTEM_FOLDERS = frozenset({"@eaDir", "#recycle", "$RECYCLE.BIN", "System Volume Information"})


def hidden(name: str) -> bool:
    """A name ``ls`` hides, or a system folder's (:data:`SYSTEM_FOLDERS`): never one of a
    dataset's videos, frames or annotation files. macOS leaves a ``._<name>`` AppleDouble file
    (the original's metadata, binary) beside each file it copies to a drive or share that
    cannot keep its attributes (exFAT, SMB) and in the tar archives it makes; trash and
    version-control folders (``.Trash-1000``, ``.git``) hold copies that are not the data's."""
    return name.startswith(".") or name in SYSTEM_FOLDERS


class VideoReadError(Exception):
    """A video that cannot be read; the message is one line naming the file and the problem.
    ``decodable``: where decoding from the start stopped partway, the frames before that point
    (counted from the source's first frame), which :func:`read_planned` may read instead."""

    def __init__(self, path: Path | str, reason: str, decodable: int | None = None):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.decodable = decodable


class ShortReadWarning(UserWarning):
    """A video read as the shorter video its decodable frames make (:func:`read_planned`)."""


# What yt-dlp leaves of a download it did not finish: the file being written (x.webm.part) and
# its resume state (x.webm.ytdl).
_PARTIAL_SUFFIXES = (".part", ".ytdl")


# yt-dlp fetches a YouTube video's picture and sound as two formats (x.f137.mp4, x.f251.webm)
# and merges them into x.mp4 with FFmpeg; a download stopped before the merge (a crawler's
# timeout) leaves the formats alone. FFmpeg writes the merge (and yt-dlp's later fixes of a
# file) into x.temp.mp4, renamed x.mp4 when done: one stopped then leaves it.
_FORMAT_FILE = re.compile(r"(.+)\.f\d+\.[A-Za-z0-9]+(\.part)?$")
_TEMP_FILE = re.compile(r"(.+)\.temp\.[A-Za-z0-9]+$")
# What the names of those files hold, looked for before any is parsed (in one name, or in a
# folder's names joined by newlines).
_LEFTOVER_MARK = re.compile(r"\.f|\.temp\.|(?:" + "|".join(map(re.escape, _PARTIAL_SUFFIXES)) + ")$", re.MULTILINE)


def unfinished_video(name: str) -> str | None:
    """The video file that the file ``name``, left by an unfinished download, was to become:
    ``x.webm`` for yt-dlp's partial ``x.webm.part`` or its resume state ``x.webm.ytdl``,
    ``x.mp4`` for a format never merged (``x.f137.mp4``, ``.part`` or not) and for FFmpeg's
    merge stopped (``x.temp.mp4``); None for any other name, a finished video's included (the
    cheap test first: every file of a tree walked for videos comes here)."""
    if not _LEFTOVER_MARK.search(name):
        return None
    partial = name.endswith(_PARTIAL_SUFFIXES)
    video = name[: name.rindex(".")] if partial else name
    extension = os.path.splitext(video)[1]
    if extension.lower() not in VIDEO_EXTENSIONS:
        return None
    merged = _FORMAT_FILE.match(video) or _TEMP_FILE.match(video)
    if merged:
        return merged[1] + extension
    return video if partial else None


def leftover_videos(names: list[str]) -> list[str]:
    """The videos that the files of a folder (``names``) left by unfinished downloads were to
    become (:func:`unfinished_video`), sorted (``x.mp4`` before ``x.webm``, whatever the
    folder's order); the names joined are looked at first, as most folders hold none."""
    if not _LEFTOVER_MARK.search("\n".join(names)):
        return []
    return sorted(video for video in map(unfinished_video, names) if video is not None)


@functools.lru_cache(maxsize=16)
def _leftovers(folder: str, changed_ns: int) -> dict[str, tuple[str, ...]]:
    """What unfinished downloads left in ``folder`` (:func:`unfinished_video`), by the stem of
    the video each was to make (``x`` for ``x.webm.part`` and ``x.f137.mp4``): one listing of the
    folder while it is unchanged (``changed_ns``, its modification time, which a file created,
    renamed or removed in it moves), so that thousands of missing videos in one folder
    (Kinetics' flat ``train/`` of 240k files) cost one listing and a look-up each."""
    found: dict[str, list[str]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                video = unfinished_video(entry.name)
                if video is not None and entry.is_file():
                    found.setdefault(os.path.splitext(video)[0], []).append(entry.name)
    except OSError:
        return {}
    return {stem: tuple(sorted(names)) for stem, names in found.items()}


def _folder_leftovers(folder: str) -> dict[str, tuple[str, ...]]:
    """:func:`_leftovers` of ``folder`` as it is now ({} where it cannot be listed)."""
    try:
        return _leftovers(folder, os.stat(folder).st_mtime_ns)
    except OSError:
        return {}


def _what_is_left(leftovers: dict[str, tuple[str, ...]], name: str) -> str | None:
    """What :func:`unfinished_download` says of the missing file ``name`` in a folder whose
    :func:`_leftovers` are ``leftovers``."""
    stem, extension = os.path.splitext(name)
    left = leftovers.get(stem if extension.lower() in VIDEO_EXTENSIONS else name, ())
    formats = [leftover for leftover in left if _FORMAT_FILE.match(leftover)]
    partials = sorted((leftover for leftover in left if leftover not in formats), key=lambda leftover: unfinished_video(leftover) != name)
    if partials:
        return f"{partials[0]} lies where the video should be"
    if formats:
        return f"{' and '.join(formats)} lie where the video should be, yt-dlp's separate picture and sound never merged"
    return None


def unfinished_download(path: Path | str) -> str | None:
    """What an unfinished download left of the missing ``path``, said for its error: yt-dlp's
    partial file (of the file as named first, else in another container: lists name ``x.mp4``
    where ``x.webm`` was being fetched), else its formats never merged; None where there is
    neither (:func:`_leftovers`)."""
    folder, name = os.path.split(path)
    return _what_is_left(_folder_leftovers(folder or "."), name)


def unfinished_downloads(paths: Sequence[Path | str]) -> list[str | None]:
    """:func:`unfinished_download` of each of ``paths``, each folder listed once, the folders
    in threads (:func:`looked_at`: a listing a folder, not one a thread for the same folder)."""
    split = [os.path.split(path) for path in paths]
    folders = list(dict.fromkeys(folder or "." for folder, _ in split))
    listed = dict(zip(folders, looked_at(_folder_leftovers, folders)))
    return [_what_is_left(listed[folder or "."], name) for folder, name in split]


FAILURE_KINDS_SHOWN = 4


def failure_kinds(reasons: list[str]) -> list[tuple[str, int]]:
    """How many failures of each kind, the most first: a reason (without the file's name) up to
    its first detail (" (", ";" or ": "), numbers as N, so that 20,000 missing Kinetics clips read
    as one line."""
    kinds = Counter(re.split(r" \(|;|: ", re.sub(r"\d+", "N", reason), maxsplit=1)[0] for reason in reasons)
    return sorted(kinds.items(), key=lambda item: (-item[1], item[0]))


def failure_summary(reasons: list[str]) -> str:
    """The most frequent kinds of ``reasons`` on one line (``file not found 19,870, ...``)."""
    kinds = failure_kinds(reasons)
    shown = ", ".join(f"{kind} {count:,}" for kind, count in kinds[:FAILURE_KINDS_SHOWN])
    return shown + (f" (+{len(kinds) - FAILURE_KINDS_SHOWN} more reasons)" if len(kinds) > FAILURE_KINDS_SHOWN else "")


# A web address given as a path: its "//" made one "/" (https:/www.youtube.com/watch?v=x).
_WEB_ADDRESS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def broken_link(path: Path | str) -> str | None:
    """Where ``path`` is not there because it, or a folder above it, is a symbolic link to
    nothing (a dataset linked in from a disk since unmounted or moved): ``<link> links to
    <target>, which is not there``; None otherwise. A ``stat`` or two: the look stops at the
    first folder above that is there."""
    link = os.fspath(path)
    while link and not os.path.exists(link):
        if os.path.islink(link):
            return f"{link} links to {os.readlink(link)}, which is not there"
        link = os.path.dirname(link)
    return None


def _not_found(path: Path) -> str:
    """Why the video at ``path``, which is not there, cannot be read: a web address, a broken
    symbolic link (:func:`broken_link`), an unfinished download (:func:`unfinished_download`),
    or the file not found."""
    if _WEB_ADDRESS.match(str(path)):
        return "a web address, not a file: download the video first (yt-dlp for YouTube's)"
    if broken := broken_link(path):
        return f"broken symbolic link ({broken})"
    left = unfinished_download(path)
    return f"unfinished download ({left}): finish or redo it" if left else "file not found"


class FrameSource:
    """Random access to the frames of one video, a file or an mmaction2 "rawframes" folder.

    A file is opened with decord; when decord cannot open it (broken duration metadata, as in
    many WebMs downloaded from YouTube) or cannot seek in it (no usable frame timestamps, as in
    xvid AVIs; transport streams, edit lists and open groups of pictures, which it misreads),
    or fails while decoding, PyAV decodes it instead, with the same frame indices.
    The error names both decoders only when both fail. ``decoders`` fixes the order tried;
    by default decord then PyAV, PyAV alone where decord is not installed.
    """

    def __init__(self, path: Path | str, decoders: tuple[str, ...] | None = None):
        self.path = Path(path)
        self._frames: list[Path] = []
        self._reader: DecordReader | PyAVReader | None = None
        self._errors: dict[str, DecodeError] = {}
        self._decord_missing = decoders is None and not decord_installed()
        self._untried = list(decoders or (("pyav",) if self._decord_missing else ("decord", "pyav")))
        if not self.path.exists():
            raise VideoReadError(self.path, _not_found(self.path))
        if self.path.is_dir():
            self._frames = frame_files(self.path)
            if not self._frames:
                raise VideoReadError(self.path, _no_frames(self.path))
            self.num_frames = self.listed_frames = len(self._frames)
            return
        if self.path.stat().st_size == 0:
            raise VideoReadError(self.path, "empty file (0 bytes)")
        self._open_next()
        self.num_frames = self._reader.num_frames
        self.listed_frames = self._reader.listed_frames

    @property
    def decoder(self) -> str:
        """Which decoder gives the frames: ``decord``, ``pyav`` or ``folder``."""
        return "folder" if self._reader is None else self._reader.name

    @property
    def fps(self) -> float | None:
        """The average frame rate, None for a frame folder or a file without a usable one."""
        return None if self._reader is None else self._reader.fps

    @property
    def decord_passed_over(self) -> str | None:
        """Why decord does not read a file PyAV reads, in decord's words or ours (``the container
        has no usable frame timestamps``, ``open groups of pictures (...)``, ``decord is not
        installed``); None where decord reads it or was left out by the caller."""
        if self.decoder != "pyav":
            return None
        if self._decord_missing:
            return DECORD_MISSING
        refusal = self._errors.get("decord")
        return None if refusal is None else refusal.detail or refusal.kind

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Return the frames at ``indices`` (repeats allowed) as uint8 [n, H, W, 3] RGB."""
        unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        if unique.size and (unique[0] < 0 or unique[-1] >= self.num_frames):
            raise VideoReadError(self.path, f"frame index out of range 0..{self.num_frames - 1}")
        frames = self._read_unique(unique)
        return frames[inverse]

    def shorten(self, count: int) -> None:
        """Read the video as its first ``count`` frames (fewer than it lists)."""
        if not 0 < count < self.num_frames:
            raise ValueError(f"{self.path}: cannot shorten {self.num_frames} frames to {count}")
        self.num_frames = count

    def timestamps(self, indices: np.ndarray) -> np.ndarray | None:
        """Time in seconds of each frame at ``indices``, from the start of the video: the
        container's presentation times when they are sane, else index / average frame rate;
        None for a frame folder or a file with neither."""
        if self._reader is None:
            return None
        return frame_seconds(indices, self._reader.frame_times, self._reader.fps)

    def _open_next(self) -> None:
        """Open the file with the next decoder not yet tried; VideoReadError once all failed."""
        while self._untried:
            name = self._untried.pop(0)
            try:
                self._reader = DECODERS[name](self.path)
                return
            except DecodeError as exc:
                self._errors[name] = exc.bare()
        raise VideoReadError(self.path, self._failure())

    def _failure(self) -> str:
        """One line: what is wrong (the last decoder's verdict, PyAV's when it was tried, as it
        tells damaged videos from other files), then each decoder's own words."""
        verdict = self._errors[next(reversed(self._errors))].kind
        details = "; ".join(f"{name}: {exc.detail or exc.kind}" for name, exc in self._errors.items())
        return f"{verdict} ({details})"

    def _read_unique(self, indices: np.ndarray) -> np.ndarray:
        if self._reader is None:
            images = [_load_image(self._frames[i]) for i in indices]
            if len({image.shape for image in images}) > 1:
                raise VideoReadError(self.path, "frames of different sizes in one folder")
            return np.stack(images)
        while True:
            try:
                return self._reader.read(indices)
            except DecodeError as exc:
                self._errors[self._reader.name] = exc.bare()
                count = self.num_frames
                try:
                    self._open_next()
                except VideoReadError as failure:
                    failure.decodable = exc.decodable
                    raise
                if self._reader.num_frames != count:  # the next decoder finds fewer frames than listed: those it has may decode
                    self._errors[self._reader.name] = DecodeError("truncated or corrupt video", f"{self._reader.num_frames} frames where {count} were listed")
                    raise VideoReadError(self.path, self._failure(), min(self._reader.num_frames, count)) from exc


# A file longer than its annotated segment by more than this, and holding the segment's end, is
# the whole video the segment was cut from; a cut clip is as long as its segment, or a little
# longer where it was cut at keyframes without re-encoding.
CUT_CLIP_SLACK_S = 1.0


class FrameWindow:
    """The frames of a video between two times, counted from the first of them: a clip's
    segment inside the whole video it was annotated in. Reads as a :class:`FrameSource`;
    timestamps stay those of the whole video."""

    def __init__(self, source: FrameSource, first: int, count: int):
        self.source, self.first, self.num_frames = source, first, count
        self.path, self.listed_frames = source.path, count

    @property
    def decoder(self) -> str:
        return self.source.decoder

    @property
    def fps(self) -> float | None:
        return self.source.fps

    @property
    def decord_passed_over(self) -> str | None:
        return self.source.decord_passed_over

    def read(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_frames):
            raise VideoReadError(self.path, f"frame index out of range 0..{self.num_frames - 1} of the clip's segment")
        try:
            return self.source.read(indices + self.first)
        except VideoReadError as exc:
            exc.decodable = None if exc.decodable is None or exc.decodable <= self.first else exc.decodable - self.first
            raise

    def shorten(self, count: int) -> None:
        """Read the segment as its first ``count`` frames (fewer than it has)."""
        if not 0 < count < self.num_frames:
            raise ValueError(f"{self.path}: cannot shorten the segment's {self.num_frames} frames to {count}")
        self.num_frames = count

    def timestamps(self, indices: np.ndarray) -> np.ndarray | None:
        return self.source.timestamps(np.asarray(indices, dtype=np.int64) + self.first)


# A file whose decoding stops partway is read as the shorter video of its decodable frames where
# they are at least this share of those it lists (a download cut short: an MP4 whose index,
# written first, lists frames its data lacks); one that decodes less stays an error.
SHORT_READ_MIN_SHARE = 0.5


def read_planned(source: FrameSource | FrameWindow, plan: Callable[[int], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The frames at ``plan(source.num_frames)`` (indices of any shape) and those indices. A
    video whose decoding stops partway, after at least :data:`SHORT_READ_MIN_SHARE` of the
    frames it lists, is shortened to the frames that decode and planned again over them, as a
    Matroska or AVI file cut short reads as the shorter video it holds; a
    :class:`ShortReadWarning` says so."""
    while True:  # each failure shortens the video, so this ends
        indices = plan(source.num_frames)
        try:
            return source.read(np.ravel(indices)), indices
        except VideoReadError as exc:
            if not shortened(source, exc):
                raise


def shortened(source: FrameSource | FrameWindow, failure: VideoReadError) -> bool:
    """Whether ``source``, whose read failed with ``failure``, was shortened to the frames that
    decode before the failure (fewer than it has now, and at least
    :data:`SHORT_READ_MIN_SHARE` of those its container lists), with a
    :class:`ShortReadWarning` saying so."""
    listed, decodable = source.listed_frames, failure.decodable
    if decodable is None or not SHORT_READ_MIN_SHARE * listed <= decodable < source.num_frames:
        return False
    source.shorten(decodable)
    warnings.warn(ShortReadWarning(f"{source.path}: decoding stops after frame {decodable} of the {listed} listed: read as a video of its first {decodable} frames"), stacklevel=3)
    return True


def read_short(source: FrameSource | FrameWindow) -> tuple[int, int] | None:
    """(frames read, frames its container lists) where ``source`` reads short, a file cut short
    holding or decoding fewer frames than its index lists; None otherwise."""
    return (source.num_frames, source.listed_frames) if source.num_frames < source.listed_frames else None


def segment_frames(source: FrameSource, start: float, end: float) -> FrameSource | FrameWindow:
    """The frames of ``source`` for a clip annotated at ``start``-``end`` seconds: all of them
    where the file is the clip already (no longer than the segment and :data:`CUT_CLIP_SLACK_S`,
    or shorter than the segment's end, or frames without a frame rate), else the segment's."""
    fps = source.fps
    if fps is None:
        return source
    duration = source.num_frames / fps
    if duration <= (end - start) + CUT_CLIP_SLACK_S or duration < end - CUT_CLIP_SLACK_S:
        return source
    first = min(source.num_frames - 1, max(0, round(start * fps)))
    last = min(source.num_frames, max(first + 1, round(end * fps)))
    return FrameWindow(source, first, last - first)


def open_record(root: Path, record: VideoRecord) -> FrameSource | FrameWindow:
    """The frames of a manifest's video under the data root: the file or folder, cut to the
    record's segment where it is the whole video the clip was annotated in (Kinetics' files
    named by the bare YouTube id, :func:`segment_frames`)."""
    source = FrameSource(Path(root) / record.path)
    return source if record.segment is None else segment_frames(source, *record.segment)


def frame_files(folder: Path) -> list[Path]:
    """The RGB frames of a folder of extracted frames in temporal order: its JPEG/PNG images by
    the numbers in their names (``img_2`` before ``img_10``, as extractors that do not pad write
    them), optical-flow images left out. Images of more than one other name pattern in one
    folder are an error: which of them are the frames is not known. Hidden files (:func:`hidden`:
    macOS's ``._img_00001.jpg``) are no frames."""
    images = [p for p in folder.iterdir() if _frame_image(p.name)]
    patterns = sorted({_NUMBER.sub("N", p.name) for p in images})
    if len(patterns) > 1:
        raise VideoReadError(folder, f"frame folder mixes image names of {len(patterns)} patterns ({first_few(patterns, 3)}); keep one video's frames, named alike, in it")
    return sorted(images, key=lambda p: ([int(n) for n in _NUMBER.findall(p.name)], p.name))


def _no_frames(folder: Path) -> str:
    """Why a folder read as a video's frames gives none, by what it holds (a folder given to
    predict that holds no video was said to be a frame folder, which it never was)."""
    held = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(folder) if not hidden(entry.name))
    if not held:
        return "empty folder: no JPEG/PNG frames (nor any video file)"
    return f"folder holds no JPEG/PNG frames (nor any video file): {first_few(held, 3)}"


def _frame_image(name: str) -> bool:
    """Whether a file of a frame folder is one of its RGB frames (by its name)."""
    return os.path.splitext(name)[1].lower() in FRAME_EXTENSIONS and not _FLOW_NAME.match(name) and not hidden(name)


# What :func:`source_size` gives where no file or folder is there.
NO_SOURCE = -2


def source_size(path: Path | str) -> int:
    """The size of a video's source: a file's bytes, a frame folder's frames (its RGB images,
    as :func:`frame_files` takes them, counted without being ordered or checked), and
    :data:`NO_SOURCE` where nothing is there. The feature cache records it for each video it
    computes, and computes a video again whose source has another size now (a re-download, a
    re-encode, frames extracted anew): the size, not the time, which a copy of the dataset to
    another disk changes for every file."""
    try:
        found = os.stat(path)
        if not stat.S_ISDIR(found.st_mode):
            return found.st_size
        with os.scandir(path) as entries:
            return sum(1 for entry in entries if _frame_image(entry.name))
    except OSError:
        return NO_SOURCE


# Files looked at together: on a network file system each look waits on its server (a few
# milliseconds), and in threads those waits overlap (on a local disk one thread is faster:
# 0.35 against 1.0-1.15 s for 100,000 sizes, 2026-12-05).
FILE_LOOKS_AT_ONCE = 16

Looked = TypeVar("Looked")


def looked_at(look: Callable[[str], Looked], paths: Sequence[str]) -> list[Looked]:
    """``look(path)`` of every path, in order, the paths cut in :data:`FILE_LOOKS_AT_ONCE` parts
    looked at in threads at once (a part a thread: a task a path costs more than a local look)."""
    size = max(1, -(-len(paths) // FILE_LOOKS_AT_ONCE))
    parts = [paths[start : start + size] for start in range(0, len(paths), size)]
    with ThreadPoolExecutor(FILE_LOOKS_AT_ONCE) as pool:
        return list(chain.from_iterable(pool.map(lambda part: [look(path) for path in part], parts)))


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise VideoReadError(path, f"unreadable frame image ({first_line(exc)})") from exc
