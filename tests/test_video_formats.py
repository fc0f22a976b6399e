"""The files users have: AVI (MPEG-4 part 2, with and without timestamps; MJPEG), VP9 and VP8
WebM, AV1 in WebM and MP4 (what yt-dlp picks first from YouTube), 10-bit HEVC (phones' HDR), MKV,
FLV, MPEG-2 program and transport streams, Ogg, camcorders' M2TS, F4V, DVD's VOB, ASF, RealMedia, WebM without duration metadata (as downloaded from
YouTube), MOV with rotation metadata, a thumbnail track ahead of the video, truncated files, audio-only downloads and
non-video files. Each gives the right frames in display orientation with sane times, or one
clear line naming the file and the problem."""

import gc
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import written_apart
from pipeline.datasets.manifest import video_id
from pipeline.decoders import DecodeError, decord_quietly, decord_said, first_line, frame_seconds, sane_frame_times
from pipeline.video import FrameSource, VideoReadError, read_short
from stages.predict import find_videos

FPS = 8
N, H, W = 12, 32, 64


def _frames() -> np.ndarray:
    """Red level 20*t tells frame t; a blue block marks the top-left corner (orientation)."""
    frames = np.zeros((N, H, W, 3), dtype=np.uint8)
    for t in range(N):
        frames[t, ..., 0] = 20 * t
        frames[t, ..., 1] = 100
    frames[:, : H // 4, : W // 4, 2] = 255
    return frames


# name: (container, codec, codec options, container options, rotation, decoder that reads it)
FORMATS = {
    "xvid.avi": ("avi", "mpeg4", None, None, None, "decord"),
    # B-frames in AVI: the container has no presentation times; decord seeks by them and returns
    # wrong frames (and times of -1e17 s), so PyAV decodes it.
    "bframes.avi": ("avi", "mpeg4", {"bf": "2"}, None, None, "pyav"),
    "vp9.webm": ("webm", "libvpx-vp9", None, None, None, "decord"),
    "h264.mkv": ("matroska", "libx264", None, None, None, "decord"),
    # written live: no duration and no cues; decord refuses it ("broken metadata")
    "live.webm": ("webm", "libvpx-vp9", None, {"live": "1"}, None, "pyav"),
    "phone.mov": ("mov", "libx264", None, None, 90, "decord"),
    # decord's bundled FFmpeg has no AV1 decoder; PyAV's has libdav1d
    "yt-av1.webm": ("webm", "libsvtav1", None, None, None, "pyav"),
    "av1.mp4": ("mp4", "libsvtav1", None, None, None, "pyav"),
    "phone-cw.mov": ("mov", "libx264", None, None, -90, "decord"),
    "hevc10.mp4": ("mp4", "libx265", None, None, None, "decord"),
    "vp8.webm": ("webm", "libvpx", None, None, None, "decord"),
    "h264.flv": ("flv", "libx264", None, None, None, "decord"),
    "mjpeg.avi": ("avi", "mjpeg", None, None, None, "decord"),
    # MPEG program and transport streams: decord cannot seek in the first and fails at the end
    # of the second ("Unable to handle EOF"); PyAV reads both
    "mpeg2.mpg": ("mpeg", "mpeg2video", None, None, None, "pyav"),
    "h264.ts": ("mpegts", "libx264", None, None, None, "pyav"),
    # older and rarer files of web and camera collections, each through the decoder that reads it
    "vp8.ogv": ("ogg", "libvpx", None, None, None, "pyav"),
    "camcorder.m2ts": ("mpegts", "libx264", None, {"mpegts_m2ts_mode": "1"}, None, "pyav"),
    "flash.f4v": ("f4v", "libx264", None, None, None, "decord"),
    "dvd.vob": ("vob", "mpeg2video", None, None, None, "pyav"),
    "wmv2.asf": ("asf", "wmv2", None, None, None, "pyav"),  # decord opens it, and its seeks in ASF land on other frames
    "real.rmvb": ("rm", "rv20", None, None, None, "decord"),
}
PIXEL_FORMATS = {"hevc10.mp4": "yuv420p10le", "mjpeg.avi": "yuvj420p"}  # the others 8-bit 4:2:0


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    videos = {name: (_frames(), FPS, container, codec, copts, fopts, rotation, PIXEL_FORMATS.get(name, "yuv420p")) for name, (container, codec, copts, fopts, rotation, _) in FORMATS.items()}
    return written_apart(tmp_path_factory.mktemp("formats"), videos)


def _display(rotation: int | None) -> np.ndarray:
    """The frames as a player shows them (the display matrix turns counter-clockwise)."""
    frames = _frames()
    return frames if rotation is None else np.rot90(frames, k=rotation // 90, axes=(1, 2))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_gives_the_right_frames_and_times(files, name):
    *_, rotation, decoder = FORMATS[name]
    source = FrameSource(files / name)
    assert source.num_frames == N
    wanted = np.array([9, 0, 5, 5, 11])
    frames = source.read(wanted)
    assert source.decoder == decoder  # after the read: decord may open a file it fails to decode
    expected = _display(rotation)[wanted]
    assert frames.shape == expected.shape  # display orientation: 64x32 for the phone videos
    red = frames[..., 0].reshape(len(wanted), -1).mean(axis=1)
    np.testing.assert_allclose(red, 20 * wanted, atol=6)  # lossy codecs; frame identity holds
    blue = frames[..., 2] > 128
    assert (blue == (expected[..., 2] > 128)).mean() > 0.97  # the marker where a player shows it
    np.testing.assert_allclose(source.timestamps(wanted), wanted / FPS, atol=1e-6)


def test_every_format_is_taken_for_a_video(files):
    """By the extension: what a folder of videos offers ``nsnet predict``, and what a list's
    path without its extension resolves to."""
    assert sorted(p.name for p in find_videos([files])) == sorted(FORMATS)
    assert {video_id(f"x/{name}") for name in FORMATS} == {f"x/{name.rsplit('.', 1)[0]}" for name in FORMATS}


@pytest.mark.parametrize("name", ["xvid.avi", "vp9.webm", "h264.mkv", "phone.mov", "hevc10.mp4"])
def test_pyav_gives_the_frames_decord_gives(files, name):
    wanted = np.array([0, 3, 7, 11])
    by_decord = FrameSource(files / name, decoders=("decord",)).read(wanted)
    by_pyav = FrameSource(files / name, decoders=("pyav",)).read(wanted)
    assert by_pyav.shape == by_decord.shape
    assert np.abs(by_pyav.astype(int) - by_decord.astype(int)).mean() < 2.0  # colour conversion only


@pytest.mark.parametrize("name", ["vp9.webm", "h264.mkv", "xvid.avi", "phone.mov", "av1.mp4"])
def test_truncated_files_give_one_clear_line(files, tmp_path, name, capfd):
    data = (files / name).read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(VideoReadError) as info:
        FrameSource(cut).read(np.arange(N))
    message = str(info.value)
    assert message.startswith(f"{cut}: truncated or corrupt video (decord: ")
    assert "\n" not in message and ".cc:" not in message and "Errno" not in message and "Error reading" not in message
    # what decord and its FFmpeg wrote to the standard error are its words in the line, not printed
    assert capfd.readouterr().err == ""
    if name.endswith((".mov", ".mp4")):  # MP4 writers put the index last: a download cut short has none
        assert f"{cut}: truncated or corrupt video (decord: moov atom not found; Invalid data found when processing input; pyav: " in message


def _thread_count() -> int:
    """This process's threads, native ones included (a decoder's)."""
    return len(os.listdir("/proc/self/task"))


def _thread_count_settled(at: int) -> int:
    """:func:`_thread_count` once it is ``at`` or a second has passed: a decoder's thread told
    to end may take some milliseconds to (a damaged RealMedia file's, 26 times in 200 reads)."""
    deadline = time.monotonic() + 1.0
    while (count := _thread_count()) != at and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads counted through Linux's /proc")
def test_files_of_every_format_whole_cut_or_damaged_print_nothing_and_leave_no_decoder_behind(files, tmp_path, capfd):
    """What decord and its FFmpeg say of a damaged file is in the failure's line, or kept back
    where the frames come (each format whole, cut at half, and with bytes changed at random);
    and once the source is dropped, no decoder's thread is left, without the garbage collector:
    a decord reader kept in a reference cycle (a refused file's error, kept with its traceback,
    until 2026-12-07) hung for good a process forked before the collector ran, at its own."""
    rng = np.random.default_rng(0)
    gc.collect()
    gc.disable()
    try:
        threads = _thread_count()
        for name in sorted(FORMATS):
            data = np.frombuffer((files / name).read_bytes(), dtype=np.uint8)
            damaged = data.copy()
            damaged[rng.integers(len(data) // 5, len(data), 20)] = rng.integers(0, 256, 20)
            for kind, content in (("whole", data), ("cut", data[: len(data) // 2]), ("damaged", damaged)):
                path = tmp_path / f"{kind}-{name}"
                path.write_bytes(content.tobytes())
                try:
                    source = FrameSource(path)
                    source.read(np.arange(source.num_frames))
                    del source
                except VideoReadError as error:
                    assert "\n" not in str(error) and ".cc:" not in str(error)
                assert capfd.readouterr().err == "", path.name
                assert _thread_count_settled(at=threads) == threads, path.name
    finally:
        gc.enable()


def test_a_process_forked_after_a_refused_file_collects_its_garbage_and_ends(files):
    """decord opens an ASF file, then is refused it (its seeks land on other frames): PyAV reads
    it. A child forked after that source is dropped, before the collector ran, ends."""
    gc.collect()
    gc.disable()
    try:
        source = FrameSource(files / "wmv2.asf")
        assert source.decord_passed_over.startswith("an ASF file")
        del source
        child = os.fork()
        if child == 0:
            gc.collect()
            os._exit(0)
    finally:
        gc.enable()
    assert _exit_status(child) == 0


def _exit_status(child: int, timeout: float = 30.0) -> int | None:
    """A forked child's exit status (``os.waitpid``'s), or None where it has not ended within
    ``timeout`` seconds (then killed): a hung child fails the test, not the suite."""
    deadline = time.monotonic() + timeout
    while (ended := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if ended[0] == 0:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        return None
    return ended[1]


@pytest.mark.parametrize("name", ["vp9.webm", "h264.mkv", "xvid.avi"])
def test_streamable_files_cut_near_the_end_give_the_frames_they_hold(files, tmp_path, name):
    """Matroska and AVI are read front to back: a file cut short is a shorter video, whose last
    (partly written) frame may be damaged or unreadable."""
    data = (files / name).read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    source = FrameSource(cut)
    assert 0 < source.num_frames < N
    every = np.arange(source.num_frames - 1)
    np.testing.assert_allclose(source.read(every)[..., 0].reshape(len(every), -1).mean(axis=1), 20 * every, atol=6)


def test_a_thumbnail_track_before_the_video_is_passed_over(tmp_path):
    """A one-picture JPEG track written ahead of the video (thumbnails embedded in MKVs): both
    decoders take the video stream, as FFmpeg's choice of the best stream does."""
    import av

    path = tmp_path / "thumbnail.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        thumbnail = out.add_stream("mjpeg", rate=1)
        thumbnail.width, thumbnail.height, thumbnail.pix_fmt = W, H, "yuvj420p"
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for packet in thumbnail.encode(av.VideoFrame.from_ndarray(np.full((H, W, 3), 255, np.uint8), format="rgb24")):
            out.mux(packet)
        out.mux(thumbnail.encode())
        for array in _frames():
            out.mux(video.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(video.encode())
    wanted = np.array([0, 5, 11])
    for decoder in ("decord", "pyav"):
        source = FrameSource(path, decoders=(decoder,))
        assert source.num_frames == N
        red = source.read(wanted)[..., 0].reshape(len(wanted), -1).mean(axis=1)
        np.testing.assert_allclose(red, 20 * wanted, atol=6)


def test_variable_frame_rate_gives_each_frame_with_its_own_time(tmp_path):
    """A phone's or screen recorder's video: frames 33 or 100 ms apart and a half-second stall.
    Frame t is the t-th frame shown, and its time the container's, not t over the average rate."""
    import fractions

    import av

    millis = np.cumsum([0] + [33 if t % 3 else 100 for t in range(1, N)])
    millis[8:] += 500
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for pts, array in zip(millis, _frames()):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = int(pts), fractions.Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    wanted = np.array([0, 7, 8, 11])
    for decoder in ("decord", "pyav"):
        source = FrameSource(path, decoders=(decoder,))
        assert source.num_frames == N
        red = source.read(wanted)[..., 0].reshape(len(wanted), -1).mean(axis=1)
        np.testing.assert_allclose(red, 20 * wanted, atol=6)
        np.testing.assert_allclose(source.timestamps(wanted), [0.0, 0.365, 0.898, 1.064], atol=1e-6)


def _cut_without_reencoding(source: Path, path: Path, first: int) -> Path:
    """What ``ffmpeg -ss <first frame's time> -i source -c copy path`` writes: the packets from
    the keyframe before ``first`` on, timed so that ``first`` is shown at 0; the MP4 muxer's edit
    list hides the lead-in before it."""
    import av

    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = src.streams.video[0]
        packets = [packet for packet in src.demux(stream) if packet.dts is not None]
        step = packets[1].duration or int(1 / (FPS * stream.time_base))
        shift = first * step
        keyframe = max(packet.pts for packet in packets if packet.is_keyframe and packet.pts <= shift)
        start_dts = next(packet.dts for packet in packets if packet.pts == keyframe)
        copy = out.add_stream_from_template(stream)
        for packet in packets:
            if packet.dts >= start_dts:
                packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, copy
                out.mux(packet)
    return path


def test_a_cut_made_without_reencoding_gives_the_frames_a_player_shows(tmp_path, video_writer):
    """``ffmpeg -ss 9 -i in.mp4 -c copy out.mp4`` (and phones' edit lists): the MP4 keeps the
    frames from the keyframe before the cut, hidden by its edit list. decord counted them (18
    frames for 15) and gave, for 8 uniform frames, the cut's frames 0, 2, 5, 7, 10, 9, 12, 14
    (out of order) and its last frame for the 3 it lacks; PyAV, as FFmpeg does, gives the frames
    after the cut alone."""
    frames = np.zeros((24, H, W, 3), dtype=np.uint8)
    frames[..., 0] = (10 * np.arange(24))[:, None, None]
    source = video_writer(tmp_path / "whole.mp4", frames, FPS, "mp4", "libx264", {"x264-params": "keyint=6:min-keyint=6:scenecut=0", "bf": "2"})
    cut = _cut_without_reencoding(source, tmp_path / "cut.mp4", first=9)  # keyframes 0, 6, 12, 18: frames 6-8 hidden
    with pytest.raises(VideoReadError, match=r"cut.mp4: cannot seek \(decord: an edit list hiding the frames before the file's start \(a cut made without re-encoding"):
        FrameSource(cut, decoders=("decord",))
    video = FrameSource(cut)
    assert video.num_frames == 15 and read_short(video) is None  # frames 9-23, none missing
    wanted = np.array([0, 4, 5, 9, 14])
    red = video.read(wanted)[..., 0].reshape(len(wanted), -1).mean(axis=1)
    assert video.decoder == "pyav"
    np.testing.assert_allclose(red, 10 * (9 + wanted), atol=4)
    np.testing.assert_allclose(video.timestamps(wanted), wanted / FPS, atol=1e-6)
    assert FrameSource(source).decoder == "decord"  # the whole file, whose edit list hides nothing


def test_non_video_files_are_named_as_such(tmp_path):
    text = tmp_path / "notes.webm"
    text.write_text("# these are my notes, not a video\n" * 20)
    # PyAV 14 adds FFmpeg's last log line after the file name, which is left out of the message
    with pytest.raises(VideoReadError, match=r"notes.webm: not a video file \(decord: .*; pyav: Invalid data found when processing input(; last error log: \[matroska,webm\] EBML header parsing failed)?\)$"):
        FrameSource(text)
    assert first_line("[Errno 1094995529] Invalid data found when processing input: '/d/notes.webm'; last error log: [matroska,webm] EBML header parsing failed") == "Invalid data found when processing input; last error log: [matroska,webm] EBML header parsing failed"
    header_only = tmp_path / "stub.mp4"
    header_only.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 40)
    with pytest.raises(VideoReadError, match="stub.mp4: truncated or corrupt video"):
        FrameSource(header_only)


def test_an_audio_only_download_is_named_as_such(tmp_path):
    """yt-dlp's audio format alone (``-f bestaudio``, or the audio half of an unmerged download
    renamed): a WebM holding one Opus stream is named as a file without a video stream."""
    import av

    path = tmp_path / "yt-audio.webm"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), dtype=np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, 960 * i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(VideoReadError, match=r"yt-audio.webm: no video stream \(decord: .*; pyav: the file holds 1 audio stream\(s\) only\)$"):
        FrameSource(path)


def test_decord_trace_is_cut_to_its_message():
    trace = ("[16:04:34] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: "
             "Check failed: avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 (-1094995529 vs. 0) ERROR\n"
             "Stack trace:\n  [bt] (0) libdecord.so(+0x1a6e9f) [0x7f]")
    assert first_line(trace) == "Check failed: avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 (-1094995529 vs. 0) ERROR"
    assert first_line("[17:00:12] /github/workspace/src/video/video_reader.cc:270: [clip.webm] Failed to measure duration/frame-count due to broken metadata.") == "Failed to measure duration/frame-count due to broken metadata."
    assert first_line("/github/workspace/src/video/ffmpeg/threaded_decoder.cc:218: Check failed: x >= 0 (-1 vs. 0) Thread worker: Error sending packet.") == "Check failed: x >= 0 (-1 vs. 0) Thread worker: Error sending packet."
    assert first_line("[Errno 1094995529] Invalid data found when processing input: 'a/b.mp4'") == "Invalid data found when processing input"


def test_what_decord_writes_to_the_standard_error_is_told_from_other_text():
    text = ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55a4cf127940] moov atom not found\n"
            "Truncating packet of size 50 to 46\n"  # FFmpeg's line without a context
            "\rlooking into the video files:  10%|#  | 1/10"  # a progress bar drawn by another thread
            "[03:27:44] /github/workspace/src/video/video_reader.cc:83: ERROR opening: a.mp4, Invalid data found when processing input\n"
            "\rlooking into the video files:  20%|## | 2/10")
    assert decord_said(text) == (
        ["moov atom not found", "ERROR opening: a.mp4, Invalid data found when processing input", "Truncating packet of size 50 to 46"],
        "\rlooking into the video files:  10%|#  | 1/10\rlooking into the video files:  20%|## | 2/10")


def test_decords_calls_keep_their_lines_from_the_standard_error_and_pass_on_the_rest(tmp_path, capfd, monkeypatch):
    """Each call's lines are its own, from two threads at once (the looks open decord so), and
    the standard error is the one it was after them."""
    before = os.fstat(2).st_ino

    def refused(name: str) -> None:
        for _ in range(50):
            os.write(2, f"[{name} @ 0x1f] moov atom not found\n".encode())
            time.sleep(0.001)
        raise RuntimeError(f"Error reading {name}...")

    def errors(name: str) -> str:
        with pytest.raises(DecodeError) as info:
            decord_quietly(lambda: refused(name), tmp_path / name, "cannot open")
        return str(info.value)

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(errors, ["a.mp4", "b.mp4"])) == ["cannot open (moov atom not found)"] * 2
    assert os.fstat(2).st_ino == before and capfd.readouterr().err == ""

    def warns_and_reads() -> str:
        os.write(2, b"[00:00:01] src/video/video_reader.cc:1: a warning of decord's\nTruncating packet of size 50 to 46\n")
        print("\rlooking into the video files:  20%|## | 2/10", end="", file=sys.stderr)  # another thread's bar
        return "frames"

    assert decord_quietly(warns_and_reads, tmp_path / "c.mp4", "decoding failed") == "frames"
    assert capfd.readouterr().err == "\rlooking into the video files:  20%|## | 2/10"
    def refuses_memfd(name: str) -> int:  # a container's system-call filter
        raise PermissionError(1, "Operation not permitted")

    for memfd_create in (None, refuses_memfd):  # none (macOS), or refused: the standard error taken into a temporary file
        with monkeypatch.context() as patched:
            if memfd_create is None:
                patched.delattr(os, "memfd_create", raising=False)
            else:
                patched.setattr(os, "memfd_create", memfd_create, raising=False)
            assert decord_quietly(warns_and_reads, tmp_path / "c.mp4", "decoding failed") == "frames"
        assert capfd.readouterr().err == "\rlooking into the video files:  20%|## | 2/10"
    def fails() -> None:
        raise RuntimeError("[00:00:02] src/a.cc:9: [00:00:02] src/b.cc:3: Check failed: x >= 0")

    with pytest.raises(DecodeError, match=r"^decoding failed \(Check failed: x >= 0\)$"):  # no line: the exception's
        decord_quietly(fails, tmp_path / "d.mp4", "decoding failed")
    kept = os.dup(2)
    os.close(2)  # a process started without a standard error: nothing to take, the same error
    try:
        with pytest.raises(DecodeError, match=r"^decoding failed \(Check failed: x >= 0\)$"):
            decord_quietly(fails, tmp_path / "d.mp4", "decoding failed")
        assert decord_quietly(lambda: "frames", tmp_path / "d.mp4", "decoding failed") == "frames"
    finally:
        os.dup2(kept, 2)
        os.close(kept)


def test_a_process_forked_during_a_decord_call_begins_with_its_standard_error(tmp_path):
    """A thread forking while another is in decord's call waits for the call to end: the child
    writes where its parent did, and can take the standard error itself."""
    before = os.fstat(2).st_ino
    inside = threading.Event()

    def slow() -> str:
        inside.set()
        time.sleep(0.3)
        return "frames"

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(decord_quietly, slow, tmp_path / "a.mp4", "cannot open")
        inside.wait(10)
        started = time.monotonic()
        child = os.fork()
        if child == 0:  # the child: its standard error and the lock as they are outside any call
            os._exit(0 if os.fstat(2).st_ino == before and decord_quietly(lambda: 1, tmp_path / "b.mp4", "cannot open") == 1 else 1)
        waited = time.monotonic() - started
        assert call.result() == "frames"
    assert _exit_status(child) == 0 and waited > 0.1


def test_frame_times_fall_back_to_the_frame_rate():
    idx = np.array([0, 2, 5])
    # what decord gives for an xvid AVI: FFmpeg's "no timestamp" scaled by 1/25
    garbage = np.full(6, -368934873227853824.0)
    np.testing.assert_allclose(frame_seconds(idx, garbage, 25.0), [0.0, 0.08, 0.2])
    np.testing.assert_allclose(frame_seconds(idx, np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]), 25.0), [0.0, 0.2, 0.5])  # from the first frame
    assert not sane_frame_times(np.array([0.0, 0.1, 0.1, 0.2]))  # repeats
    assert not sane_frame_times(np.array([0.0, 0.2, 0.1]))  # going back
    assert not sane_frame_times(np.array([np.nan, 0.1]))
    np.testing.assert_allclose(frame_seconds(idx, np.array([0.0, 0.1, 0.1, 0.2, 0.3, 0.4]), 10.0), [0.0, 0.2, 0.5])
    assert frame_seconds(idx, None, None) is None and frame_seconds(idx, garbage, 0.0) is None and frame_seconds(idx, None, 1e9) is None


def test_features_stage_on_a_list_of_every_format(files, tmp_path, tiny_config, run_options):
    """Through the list adapter and the features stage: every readable format is cached, the
    truncated and non-video files are recorded with one line each, and nothing else is lost."""
    import json

    from pipeline.cache import DONE, FAILED, FeatureCache
    from pipeline.datasets import AnnotationFiles
    from stages.features import run_features

    root = tmp_path / "data"
    root.mkdir()
    for name in FORMATS:
        (root / name).write_bytes((files / name).read_bytes())
    data = (files / "phone.mov").read_bytes()
    (root / "cut.mov").write_bytes(data[: len(data) // 3])
    (root / "notes.webm").write_text("not a video\n" * 30)
    names = sorted(FORMATS) + ["cut.mov", "notes.webm"]
    listing = tmp_path / "train_list_videos.txt"
    listing.write_text("".join(f"{Path(n).stem if n.endswith('.webm') and n != 'notes.webm' else n} {i % 2}\n" for i, n in enumerate(names)))
    summary = run_features("list", root, tiny_config, run_options, files=AnnotationFiles(train=listing))
    with FeatureCache(Path(summary.cache)) as cache:
        status = cache["status"][:]
        manifest = cache.attrs["manifest"]
        counts = cache["num_frames"][:]
    paths = [v["path"] for v in manifest["videos"]]
    assert paths == names  # the WebM files listed without extension, resolved on disk
    assert [int(s) for s in status] == [DONE] * len(FORMATS) + [FAILED, FAILED]
    assert counts[: len(FORMATS)].tolist() == [N] * len(FORMATS)
    reasons = {r["path"]: r["reason"] for r in map(json.loads, Path(summary.failures_file).read_text().splitlines())}
    assert reasons["cut.mov"].startswith("truncated or corrupt video (") and reasons["notes.webm"].startswith("not a video file (")
    assert all("\n" not in r and ".cc:" not in r for r in reasons.values())
    # the videos PyAV read, with decord's reason to pass them over, in the summary and again on a run with nothing to do
    pyav = {r["path"]: r["pyav"] for r in summary.pyav_reads}
    assert sorted(pyav) == sorted(name for name, spec in FORMATS.items() if spec[-1] == "pyav")
    assert pyav["bframes.avi"] == "the container has no usable frame timestamps" and pyav["h264.ts"].startswith("an MPEG transport stream (decord returns")
    assert re.search(r"^read by PyAV +10, decord passing over: the container has no usable frame timestamps 3, ", summary.table(), re.M)
    again = run_features("list", root, tiny_config, run_options, files=AnnotationFiles(train=listing))
    assert again.computed == 0 and again.pyav_reads == summary.pyav_reads
