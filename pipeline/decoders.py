"""The two video-file decoders behind :class:`pipeline.video.FrameSource`: decord (fast random
access, the default) and PyAV (the fallback for files decord cannot open, seek in or decode;
it seeks by the frames' own times where they have them), with one-line descriptions of why a
file cannot be decoded.

Both give frames in display orientation (a rotation in the stream's display matrix, as phones
write it, is applied) as uint8 RGB, and the presentation time of every frame when the file has
usable ones.

decord has Linux wheels for x86-64 alone, where ``pyproject.toml`` installs it;
elsewhere (aarch64: Grace Hopper nodes, AWS Graviton; macOS) the toolkit installs
without it and PyAV reads every file (:func:`decord_installed`).
"""

from __future__ import annotations

import faulthandler
import importlib.util
import itertools
import os
import re
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np

# First bytes of the containers videos come in: a file that starts like one of them but cannot
# be opened is a damaged video, any other is not a video at all.
_SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"OggS"), (0, b"FLV"), (0, b"\x00\x00\x01\xba"), (0, b"\x47"), (4, b"moov"), (4, b"mdat"), (4, b"wide"), (4, b"free"))
# decord prefixes its messages with a clock, its C++ source file and line (several, where an error
# is passed up: ``[03:27:48] .../threaded_decoder.cc:292: [03:27:48] .../threaded_decoder.cc:218:
# Check failed: ...``), and the file name.
_DECORD_PREFIX = re.compile(r"^(\s*(\[[\d:]+\]\s*)?\S+\.(cc|cpp|h):\d+:\s*)+(\[[^\]]*\]\s*)?")
# What decord's C++ code and the FFmpeg inside it write to the standard error, a line each:
# ``[03:27:44] /github/workspace/src/video/video_reader.cc:83: ERROR opening: <file>, <reason>``,
# ``[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55a4cf127940] moov atom not found``; found anywhere in what was
# written, as another thread's text (a progress bar's, no line break after it) may come before.
_DECORD_SAID = re.compile(r"\[[\d:]+\]\s*\S+\.(?:cc|cpp|h):\d+:[^\n]*\n?|\[[^\]\n@]+ @ 0x[0-9a-fA-F]+\]\s*([^\n]*)\n?")
T = TypeVar("T")
# One call of decord's a process takes the standard error at a time (decord is opened in the looks'
# threads); a fork waits for it to give it back, so that no child begins without its standard
# error, or with this lock held for good.
_STDERR_TAKEN = threading.Lock()
os.register_at_fork(before=_STDERR_TAKEN.acquire, after_in_parent=_STDERR_TAKEN.release, after_in_child=_STDERR_TAKEN.release)
# Whether this process's fault handler, turned on by Python at its start, writes to a duplicate of
# the standard error rather than to descriptor 2, which decord's calls take (:func:`_standard_error_taken`).
_FAULT_HANDLER_MOVED = False
# PyAV's: an errno, and the file name at the end, or before FFmpeg's last log line, which some
# releases add ("...: '<file>'; last error log: [matroska,webm] EBML header parsing failed").
_PYAV_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")
_PYAV_FILE = re.compile(r":\s*'[^']*'(?=$|; last error log: )")
MAX_PLAUSIBLE_FPS = 1000.0
# Beyond any real stream's clock (MPEG-TS wraps at 26.5 hours); FFmpeg's "no timestamp" value
# scaled by a time base lands far above it.
MAX_PLAUSIBLE_SECONDS = 1e7
# How many keyframes back PyAV may seek for a frame, the one before it first: MPEG transport
# streams land a group of pictures past the time sought, so the second try lands before it.
SEEK_TRIES = 3
# At most so many packets are looked at for open groups of pictures: beyond any encoder's default
# distance between keyframes (x264's and x265's 250 frames), so several keyframes are among them.
PACKETS_LOOKED = 1024
# The NAL unit types of a keyframe's first slice that open a group of pictures: H.264's non-IDR
# slice (an I-frame with a recovery point, x264's open-gop) and HEVC's BLA and CRA pictures
# (x265's default), whose leading pictures, where the encoder placed some, refer to the group before.
_OPEN_KEYFRAME_NALS = {"h264": frozenset({1}), "hevc": frozenset({16, 17, 18, 21})}
# FFmpeg's names of the containers in which decord returns other frames than those asked for.
_MISREAD_CONTAINERS = {
    "mpegts": "an MPEG transport stream (decord returns its frames a group of pictures or more late)",
    "asf": "an ASF file (Windows Media: decord's seeks in it land on other frames)",
}
# The rules by which files are given to PyAV, not decord, in their version: a feature cache records
# for each video the version its rows were read under (pipeline.cache's ``decoder_rules``) and
# looks again at those read under an older one. 1: decord_misreads (2026-12-06, night); before it,
# decord read every file it opened with usable frame times (misread_before).
DECODER_RULES = 1
# Video files looked into at once for what decord would misread: the looks hold Python's lock for
# most of their time, so more threads slow them (1,200 340×256 files on the 2-core machine: 2.3 s
# with two threads, 2.7-3.4 s with one, 3.0 s with four, 6.0-6.2 s with sixteen).
LOOKED_INTO_AT_ONCE = 2
# Opening a file to look at its packets alone: FFmpeg's probe then decodes no frame (7 ms of a
# 340x256 H.264 file's 8 ms).
_PACKETS_ONLY = {"threads": "1", "skip_frame": "all"}


class DecodeError(Exception):
    """A decoder that cannot give the frames of a file: ``kind`` says what is wrong (not a
    video, truncated or corrupt, unsupported codec, ...), ``detail`` the decoder's own words;
    ``decodable``, where decoding from the start stopped partway, how many frames it gave."""

    def __init__(self, kind: str, detail: str, decodable: int | None = None):
        super().__init__(f"{kind} ({detail})" if detail else kind)
        self.kind, self.detail, self.decodable = kind, detail, decodable

    def bare(self) -> DecodeError:
        """The same error without its traceback and causes, to keep: they hold the decoder's
        frames, and in them decord's reader, whose threads a process forked meanwhile would wait
        for for good where it collected the reader itself."""
        return DecodeError(self.kind, self.detail, self.decodable)


def first_line(exc: BaseException | str) -> str:
    """The decoder's message on one line, without decord's clock/source-file prefix."""
    for line in str(exc).strip().splitlines():
        line = _PYAV_FILE.sub("", _PYAV_ERRNO.sub("", _DECORD_PREFIX.sub("", line))).strip()
        if line and not line.lower().startswith("stack trace"):
            return line[:200]
    return type(exc).__name__ if isinstance(exc, BaseException) else "no message"


def decord_said(text: str) -> tuple[list[str], str]:
    """What decord wrote to the standard error during one call (``text``) as its lines, each cut
    to its message (its C++ log's and FFmpeg's with a context, :data:`_DECORD_SAID`, first;
    FFmpeg's without one, ``Truncating packet of size 50 to 46``, after), and the rest, written
    back as it was: text with a carriage return, a progress bar drawn by another thread
    meanwhile. Any other line written in the call's milliseconds is taken for decord's (the
    decoding processes have no other writer)."""
    said = [first_line(match.group(1) if match.group(1) is not None else match.group(0)) for match in _DECORD_SAID.finditer(text)]
    *lines, tail = _DECORD_SAID.sub("", text).split("\n")
    said += [line.strip() for line in lines if line.strip() and "\r" not in line]
    return said, "".join(line + "\n" for line in lines if "\r" in line) + tail


def _scratch_file() -> BinaryIO:
    """An anonymous file: in memory where the system makes them (Linux's ``memfd_create``, 4 µs),
    else a temporary file (8 µs, and a writable temporary folder): on macOS, or where a
    container's system-call filter refuses ``memfd_create``."""
    try:
        return open(os.memfd_create("decord-stderr"), "w+b")
    except (AttributeError, OSError):
        return tempfile.TemporaryFile()


def fault_handler_on_a_copy_of_standard_error() -> None:
    """Python's fault handler, where it is on, enabled again (its signal handlers installed anew:
    torch's DataLoader workers set their own over them) on a duplicate of descriptor 2, the
    standard error as it is now, so that a crash inside a decord call, which takes descriptor 2
    meanwhile (:func:`_standard_error_taken`), still prints its Python stack
    (``Fatal Python error: Segmentation fault``). A process without a standard error keeps the
    handler as it was."""
    if not faulthandler.is_enabled():
        return
    try:
        copy = os.fdopen(os.dup(2), "w")
    except OSError:
        return
    faulthandler.disable()
    faulthandler.enable(copy)  # the handler keeps the file open


def _move_a_started_fault_handler() -> None:
    """:func:`fault_handler_on_a_copy_of_standard_error`, once, where Python turned the fault
    handler on at its start (``-X faulthandler``, ``-X dev``, ``PYTHONFAULTHANDLER``), on the
    standard error: the destination stays the same. One turned on by code (pytest's, on its own
    duplicate; a user's, on a file of theirs) is left where it writes."""
    global _FAULT_HANDLER_MOVED
    if not _FAULT_HANDLER_MOVED:
        _FAULT_HANDLER_MOVED = True
        if sys.flags.dev_mode or "faulthandler" in sys._xoptions or os.environ.get("PYTHONFAULTHANDLER"):
            fault_handler_on_a_copy_of_standard_error()


@contextmanager
def _standard_error_taken() -> Iterator[list[str]]:
    """The process's standard error (its file descriptor, where C code writes, through any progress
    bar) written into a scratch file for the block, one block a process at a time; the list
    yielded holds what was written once the block ends (nothing where the process has none)."""
    written: list[str] = []
    with _STDERR_TAKEN, _scratch_file() as taken:
        _move_a_started_fault_handler()
        if sys.stderr is not None:
            sys.stderr.flush()
        try:
            kept = os.dup(2)
        except OSError:  # closed: nothing to take
            yield written
            return
        os.dup2(taken.fileno(), 2)
        try:
            yield written
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(kept, 2)
            os.close(kept)
            taken.seek(0)
            written.append(taken.read().decode(errors="replace"))


def decord_quietly(call: Callable[[], T], path: Path, failure: str) -> T:
    """``call()``, a call of decord's on ``path``, with the standard error taken from the process
    meanwhile (:func:`_standard_error_taken`), its lines kept back where it gives its result, as
    PyAV keeps FFmpeg's; a progress bar's text goes back (:func:`decord_said`).
    Where the call raises, a :class:`DecodeError` of kind ``failure`` in decord's words: its
    lines, which say why (``moov atom not found``: a download cut short), then its exception's
    where that adds to them."""
    error: Exception | None = None
    with _standard_error_taken() as written:
        try:
            result = call()
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError
            error = exc
    said, others = decord_said("".join(written))
    if others and sys.stderr is not None:
        sys.stderr.write(others)
        sys.stderr.flush()
    if error is None:
        return result
    opening = re.compile(rf"^ERROR opening: {re.escape(str(path))},\s*")
    words = [opening.sub("", line) for line in said]
    if not (words and str(error).startswith("Error reading ")):  # decord's Python line after its log: nothing more
        words.append(first_line(error))
    try:
        raise DecodeError(failure, "; ".join(dict.fromkeys(words))[:200]) from error
    finally:
        del error  # its traceback holds this frame: no cycle to keep the reader of the call's frame alive


def looks_like_video(path: Path) -> bool:
    """Whether the file starts like a video container (MP4/MOV, Matroska/WebM, AVI, ...)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    return any(head[at : at + len(magic)] == magic for at, magic in _SIGNATURES)


def unreadable_kind(path: Path) -> str:
    """What a file that no decoder could open is: a damaged video or not a video at all."""
    return "truncated or corrupt video" if looks_like_video(path) else "not a video file"


def plausible_fps(fps: float | None) -> float | None:
    """``fps`` when it is a usable frame rate, else None."""
    if fps is None:
        return None
    fps = float(fps)
    return fps if np.isfinite(fps) and 0 < fps <= MAX_PLAUSIBLE_FPS else None


def sane_frame_times(times: np.ndarray | None) -> bool:
    """Per-frame presentation times that can be trusted: present, finite, of a plausible size and
    strictly increasing. Broken containers give none, repeats, or FFmpeg's "no timestamp" value
    scaled to about -1e17 s (or +4e17 s for a file that is no video at all)."""
    if times is None or len(times) == 0:
        return False
    times = np.asarray(times, dtype=np.float64)
    return bool(np.all(np.isfinite(times)) and np.all(np.abs(times) < MAX_PLAUSIBLE_SECONDS) and np.all(np.diff(times) > 0))


def decord_misreads(path: Path) -> str | None:
    """Why decord, though it opens ``path``, would give other frames than those asked for, by a
    look at the container and its first packets (PyAV, no decoding): what the file is, then in
    parentheses what decord does with it; None where it reads the file right. decord returns
    wrong frames, in silence, from

    * the containers of :data:`_MISREAD_CONTAINERS`: an MPEG transport stream (``.ts``,
      camcorders' ``.m2ts``), every frame a group of pictures or more late; ASF (``.wmv``,
      ``.asf``), whose seeks land on other frames;
    * an MP4 or MOV whose edit list hides its first frames (a cut made without re-encoding,
      ``ffmpeg -ss 10 -i in.mp4 -c copy``, keeps the frames from the keyframe before the cut,
      placed before 0; phones' files): it counts them and returns frames shifted by them, some
      twice, the last ones never; FFmpeg decodes them for reference and drops them;
    * open groups of pictures (x265's default, x264's ``open-gop``, MPEG-2 and MPEG-4 part 2 with
      B-frames): after a seek, frames shifted by those shown before the keyframe. Told, among
      the first :data:`PACKETS_LOOKED` packets, by a keyframe after the first whose first slice
      is of a type of :data:`_OPEN_KEYFRAME_NALS` (H.264, HEVC), or by a packet decoded after
      a keyframe, not the first, and shown before it.

    A file PyAV cannot open or demux is left to decord (None)."""
    import av

    try:
        with av.open(str(path), options=_PACKETS_ONLY) as container:
            return _misread_in(container)
    except av.error.FFmpegError:
        return None


Look = TypeVar("Look")


def looked_into(paths: Sequence[str], look: Callable[[Path], Look], progress: bool = True) -> list[Look]:
    """``look`` (:func:`misread_before`, :func:`misread_now_and_then`) of each video file of
    ``paths``, in order, :data:`LOOKED_INTO_AT_ONCE` at once in threads, with a progress bar."""
    from tqdm import tqdm

    with ThreadPoolExecutor(LOOKED_INTO_AT_ONCE) as pool:
        looks = pool.map(lambda path: look(Path(path)), paths)
        return list(tqdm(looks, total=len(paths), desc="looking into the video files", unit="file", disable=not progress or not paths))


def _misread_in(container) -> str | None:
    """:func:`decord_misreads` of an open container."""
    for name in container.format.name.split(","):
        if name in _MISREAD_CONTAINERS:
            return _MISREAD_CONTAINERS[name]
    stream = container.streams.best("video")
    if stream is None:
        return None
    open_nals = _OPEN_KEYFRAME_NALS.get(stream.codec_context.name)
    length_size = nal_length_size(stream.codec_context.name, stream.codec_context.extradata)
    keyframes, keyframe_pts = 0, 0
    for looked, packet in enumerate(container.demux(stream)):
        if packet.is_discard:
            return "an edit list hiding the frames before the file's start (a cut made without re-encoding: decord counts them and returns them in place of others)"
        if looked >= PACKETS_LOOKED:
            return None
        if packet.pts is None or packet.size == 0:
            continue
        if packet.is_keyframe:
            keyframes, keyframe_pts = keyframes + 1, packet.pts
            opens = keyframes > 1 and open_nals is not None and first_slice_type(bytes(packet), stream.codec_context.name, length_size) in open_nals
        else:
            opens = keyframes > 1 and packet.pts < keyframe_pts
        if opens:
            return "open groups of pictures (frames shown before a keyframe are decoded after it: decord returns frames shifted after a seek)"
    return None


def nal_length_size(codec: str, extradata: bytes | None) -> int | None:
    """The bytes of the length before each NAL unit of an H.264 or HEVC packet, as the stream's
    avcC or hvcC record gives it (MP4, Matroska); None for start codes (Annex B)."""
    offset = {"h264": 4, "hevc": 21}.get(codec)
    if offset is None or not extradata or extradata[0] != 1 or len(extradata) <= offset:
        return None
    return (extradata[offset] & 3) + 1


def first_slice_type(data: bytes, codec: str, length_size: int | None) -> int | None:
    """The NAL unit type of the first slice (coded picture data) in an H.264 or HEVC packet."""
    if length_size is None:
        starts = [match.end() for match in re.finditer(b"\x00\x00\x01", data)]
    else:
        starts, position = [], 0
        while position + length_size < len(data):
            starts.append(position + length_size)
            position += length_size + int.from_bytes(data[position : position + length_size], "big")
    for start in starts:
        if start < len(data):
            nal = data[start] & 0x1F if codec == "h264" else (data[start] >> 1) & 0x3F
            if (1 <= nal <= 5) if codec == "h264" else nal < 32:
                return nal
    return None


def frame_seconds(indices: np.ndarray, times: np.ndarray | None, fps: float | None) -> np.ndarray | None:
    """Seconds from the start of the video of the frames at ``indices``: from the container's
    per-frame ``times`` when they are sane, else index / ``fps``, else None (no clock)."""
    indices = np.asarray(indices, dtype=np.int64)
    if sane_frame_times(times):
        times = np.asarray(times, dtype=np.float64)
        return times[indices] - times[0]
    return indices / fps if plausible_fps(fps) is not None else None


def _rotate(frame: np.ndarray, degrees: float) -> np.ndarray:
    """A frame turned by the display matrix's counter-clockwise ``degrees`` (multiples of 90)."""
    turns = int(round(degrees / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(frame, k=turns)) if turns else frame


def _opened_by_decord(path: Path) -> tuple[Any, np.ndarray]:
    """decord's reader of ``path`` and its frames' times, or DecodeError where it cannot open the
    file, finds no frame or finds no usable frame times (it seeks by them, and then returns
    wrong frames: AVIs without timestamps, as written by xvid)."""
    import decord

    def opened() -> tuple[Any, int, np.ndarray | None]:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        count = len(reader)
        return reader, count, reader.get_frame_timestamp(list(range(count)))[:, 0] if count else None

    reader, count, times = decord_quietly(opened, path, "cannot open")
    if not count:
        raise DecodeError(unreadable_kind(path), "no frame in the file")
    if not sane_frame_times(times):
        raise DecodeError("cannot seek", "the container has no usable frame timestamps")
    return reader, np.asarray(times, dtype=np.float64)


def decord_installed() -> bool:
    """Whether decord can be imported here (:mod:`pipeline.decoders`' docstring says where it is
    not installed)."""
    return importlib.util.find_spec("decord") is not None


def misread_before(path: Path) -> str | None:
    """Why decord misread ``path`` under the rules before :data:`DECODER_RULES` 1, which gave it
    every file it opened with usable frame times (:func:`decord_misreads` of such a file); None
    where it read the file right or PyAV read it then too (decord opened only for the files
    the look names)."""
    misread, then = misread_now_and_then(path)
    return misread if then else None


def misread_now_and_then(path: Path) -> tuple[str | None, bool]:
    """Why decord would misread ``path`` (:func:`decord_misreads`), and whether the rules before
    :data:`DECODER_RULES` 1 gave it to decord all the same (a file decord opens with usable frame
    times; False where it would not misread it). An MPEG-4 part 2 AVI with B-frames, as xvid
    writes them, is one decord would misread and refused then too: PyAV read it before as now.
    Where decord is not installed, whether it opened the file cannot be told: it is taken to
    have (a cache built on a machine with decord), which costs a needless recompute at worst."""
    misread = decord_misreads(path)
    if misread is None:
        return None, False
    if not decord_installed():
        return misread, True
    try:
        _opened_by_decord(path)
    except DecodeError:
        return misread, False
    return misread, True


class DecordReader:
    """decord's VideoReader: frame-accurate seeking through the container's index. It refuses
    (``DecodeError``) files it cannot open or whose frame times are unusable
    (:func:`_opened_by_decord`), and files whose frames it would misread (:func:`decord_misreads`)."""

    name = "decord"

    def __init__(self, path: Path):
        self.path = path
        self._reader, times = _opened_by_decord(path)
        self.num_frames = self.listed_frames = len(times)  # its index's count
        misread = decord_misreads(path)
        if misread:
            raise DecodeError("cannot seek", misread)
        self.frame_times = times
        self.fps = plausible_fps(self._reader.get_avg_fps())

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Frames at the sorted, distinct ``indices`` as uint8 [n, H, W, 3]."""
        frames = decord_quietly(lambda: self._reader.get_batch(indices.tolist()).asnumpy(), self.path, "decoding failed")
        if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DecodeError("decoding failed", f"decoder returned frames of shape {frames.shape}")
        return frames


class PyAVReader:
    """PyAV (FFmpeg) decoding: it needs neither a duration nor an index in the container (live
    WebM from YouTube) nor per-frame timestamps (AVI). Frames are counted by demuxing the stream
    (no decoding). The stream is the one FFmpeg picks as best, as decord's, not the first: a
    Matroska file may hold a one-picture thumbnail track before the video.

    Where every frame has its own presentation time, a read seeks to the keyframe before a
    wanted frame whenever that keyframe lies ahead of the decoder, and tells frames by their
    times: a Kinetics clip's ten seconds inside the whole YouTube video cost a group of pictures
    and the segment, not a decode of the video up to them. The container stays open between
    reads, so a read goes on from where the last one stopped. Otherwise (no frame times: raw
    streams), or where no seek lands on a keyframe before the frame, it decodes from the start
    of the file and counts the frames."""

    name = "pyav"

    def __init__(self, path: Path):
        import av

        self.path = path
        self.frames_decoded = 0  # by the last read, both ways together (benchmarks, tests)
        try:
            with av.open(str(path)) as container:
                stream = container.streams.best("video")
                if stream is None:
                    held = ", ".join(f"{n} {kind}" for kind, n in Counter(s.type for s in container.streams).items())
                    raise DecodeError("no video stream", f"the file holds {held} stream(s) only" if held else "the file holds no stream")
                if stream.codec_context is None:
                    raise DecodeError("unsupported codec", f"no decoder for {stream.codec_tag or 'this stream'}")
                self.fps = plausible_fps(stream.average_rate or stream.guessed_rate)
                stated = stream.frames  # the container's count where it has one (an MP4's index), else 0
                packets, hidden = [], 0  # (pts, keyframe) of the frames shown; an edit list's hidden lead-in
                for packet in container.demux(stream):  # (decoded for reference, never shown: FFmpeg drops it)
                    if packet.size > 0 and packet.is_discard:
                        hidden += 1
                    elif packet.size > 0:
                        packets.append((packet.pts, packet.is_keyframe))
                stated -= hidden if stated else 0
                time_base = float(stream.time_base) if stream.time_base else None
        except DecodeError:
            raise
        except av.error.DecoderNotFoundError as exc:
            raise DecodeError("unsupported codec", first_line(exc)) from exc
        except Exception as exc:  # av.error.FFmpegError and its kin
            raise DecodeError(unreadable_kind(path), first_line(exc)) from exc
        self.num_frames = len(packets)
        if self.num_frames == 0:
            raise DecodeError(unreadable_kind(path), "no complete frame in the file")
        self.listed_frames = max(self.num_frames, stated)  # an index may list frames whose data a cut file lacks
        has_times = time_base is not None and all(pts is not None for pts, _ in packets)
        self._pts = np.sort(np.array([pts for pts, _ in packets], dtype=np.int64)) if has_times else None
        self.frame_times = self._pts * time_base if has_times else None
        # The keyframes' display indices, where frames can be told by their (distinct) times.
        self._keyframes: np.ndarray | None = None
        self._decoding: _Decoding | None = None  # the container the last read left open
        if has_times and sane_frame_times(self.frame_times):
            self._keyframes = np.sort(np.searchsorted(self._pts, [pts for pts, key in packets if key]))

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Frames at the sorted, distinct ``indices`` as uint8 [n, H, W, 3] (see the class)."""
        self.frames_decoded = 0
        frames = None if self._keyframes is None else self._read_seeking(indices)
        return self._read_from_start(indices) if frames is None else frames

    def _read_from_start(self, indices: np.ndarray) -> np.ndarray:
        """Decoding the stream from its start up to the last of ``indices``, counting frames."""
        import av

        wanted = {int(i): j for j, i in enumerate(indices)}
        out: list[np.ndarray | None] = [None] * len(indices)
        last = int(indices[-1])
        decoded = 0
        try:
            with av.open(str(self.path)) as container:
                stream, size = _decoding_stream(container)
                for frame in container.decode(stream):
                    if decoded in wanted:
                        out[wanted[decoded]] = _rgb(frame, size)
                    decoded += 1
                    if decoded > last:
                        break
        except av.error.DecoderNotFoundError as exc:
            raise DecodeError("unsupported codec", first_line(exc)) from exc
        except Exception as exc:
            raise DecodeError("truncated or corrupt video", f"decoding stopped after frame {decoded}: {first_line(exc)}", decoded) from exc
        finally:
            self.frames_decoded += decoded
        if decoded <= last:
            raise DecodeError("truncated or corrupt video", f"{decoded} frames decoded of the {self.num_frames} the container lists", decoded)
        return np.stack(out)

    def _read_seeking(self, indices: np.ndarray) -> np.ndarray | None:
        """The frames at ``indices``, told by their times, seeking (:meth:`_seek`) whenever the
        keyframe before the next one lies ahead of the decoder, or the decoder is past it. The
        container stays open after a read, so that the next read goes on where this one stopped
        (the all-frames pass reads a video chunk after chunk). None where this cannot be trusted
        (a frame of unknown time or missing, no keyframe to land on, an error): the caller then
        decodes from the start, which gives the frames or the error. A read that gives up drops
        its container, which closes it (:class:`_Decoding`)."""
        wanted = {int(i) for i in indices}
        out: dict[int, np.ndarray] = {}
        decoding, self._decoding = self._decoding, None  # kept again only after a read that went through
        try:
            if decoding is None:
                decoding = _Decoding.open(self.path)
            for target in sorted(wanted):
                before = self._keyframes[: np.searchsorted(self._keyframes, target, side="right")]
                keyframe = int(before[-1]) if len(before) else 0
                if decoding.frames is None and keyframe == 0:
                    decoding.frames = decoding.container.decode(decoding.stream)
                elif decoding.frames is None or keyframe > decoding.position or target < decoding.position:
                    decoding.frames = self._seek(decoding.container, decoding.stream, before)
                    if decoding.frames is None:
                        return None
                for frame in decoding.frames:
                    self.frames_decoded += 1
                    index = self._index_of(frame.pts)
                    if index is None:
                        return None
                    decoding.position = index + 1
                    if index in wanted and index not in out:
                        out[index] = _rgb(frame, decoding.size)
                    if index >= target:
                        break
                if target not in out:
                    return None
        except Exception:  # said again from the start, with the frame where decoding stopped
            return None
        self._decoding = decoding
        return np.stack([out[int(i)] for i in indices])

    def _seek(self, container, stream, keyframes: np.ndarray) -> Iterator | None:
        """Decoded frames from a keyframe on, after seeking to the last of ``keyframes`` (those
        at or before the frame wanted next). FFmpeg seeks by time and may land past it (MPEG
        transport streams land a group of pictures late): then the keyframe before is sought,
        :data:`SEEK_TRIES` in all. Frames before the first true keyframe (one the decoder calls
        so, at a keyframe's time) are passed over: they may lack their references. None where
        no seek lands at or before the last of ``keyframes``."""
        last = int(keyframes[-1])
        for keyframe in keyframes[::-1][:SEEK_TRIES]:
            container.seek(int(self._pts[keyframe]), stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
            for frame in frames:
                index = self._index_of(frame.pts)
                if index is None or index > last:
                    break
                if frame.key_frame and index in keyframes:
                    return itertools.chain([frame], frames)
                self.frames_decoded += 1
        return None

    def _index_of(self, pts: int | None) -> int | None:
        """The display index of the frame presented at ``pts``; None for a time no frame has."""
        if pts is None:
            return None
        index = int(np.searchsorted(self._pts, pts))
        return index if index < len(self._pts) and self._pts[index] == pts else None


@dataclass
class _Decoding:
    """An open container and where its decoder stands: ``frames`` the decoded frames from there
    on (None before the first), ``position`` the display index after the last frame taken. It
    closes the container when dropped: PyAV's containers sit in reference cycles, so the garbage
    collector alone would leave dozens of files and decoders open between its passes."""

    container: Any
    stream: Any
    size: tuple[int, int]
    frames: Iterator | None = None
    position: int = 0

    @classmethod
    def open(cls, path: Path) -> _Decoding:
        """``path`` opened at its best video stream; the container is closed again at once if
        the stream cannot be set up, since no :class:`_Decoding` holds it yet."""
        import av

        container = av.open(str(path))
        try:
            return cls(container, *_decoding_stream(container))
        except BaseException:
            container.close()
            raise

    def close(self) -> None:
        self.frames = None
        self.container.close()

    __del__ = close


def _decoding_stream(container):
    """The best video stream of an open container, decoded in one thread, and its frame size."""
    stream = container.streams.best("video")
    stream.codec_context.thread_count = 1
    return stream, (stream.codec_context.width, stream.codec_context.height)


def _rgb(frame, size: tuple[int, int]) -> np.ndarray:
    """A decoded frame as uint8 RGB [H, W, 3] of the stream's size, in display orientation."""
    array = frame.to_ndarray(format="rgb24", width=size[0] or frame.width, height=size[1] or frame.height)
    return _rotate(array, frame.rotation or 0)
