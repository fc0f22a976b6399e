"""PyAV, the fallback decoder (AV1 and live WebM from YouTube, MPEG streams, and the files decord
opens but misreads: transport streams, ASF, open groups of pictures), seeks to the
keyframe before the frames it is asked for: a clip's segment inside a long video costs a group
of pictures and the segment, not a decode from the start. The frames are the very ones a decode
from the start gives; files whose frames have no times of their own are still read front to back."""

from pathlib import Path

import numpy as np
import pytest

from conftest import frame_numbers, numbered_frames, written_apart
from pipeline.decoders import PyAVReader, first_slice_type, nal_length_size
from pipeline.video import FrameSource, FrameWindow, VideoReadError, segment_frames

FPS, GOP = 8, 10
N, H, W = 120, 32, 64  # 15 s


# name: (container, codec, codec options, container options); a keyframe every GOP frames
LONG = {
    "h264-bframes.mkv": ("matroska", "libx264", {"g": str(GOP), "bf": "2"}, None),
    "h264-bframes.mp4": ("mp4", "libx264", {"g": str(GOP), "bf": "2"}, None),
    "yt-av1.webm": ("webm", "libsvtav1", {"g": str(GOP)}, None),
    "yt-dash-av1.mp4": ("mp4", "libsvtav1", {"g": str(GOP)}, {"movflags": "dash"}),  # fragmented, as YouTube serves it
    "live-vp9.webm": ("webm", "libvpx-vp9", {"g": str(GOP)}, {"live": "1"}),  # no cues
    "h264.ts": ("mpegts", "libx264", {"g": str(GOP)}, None),  # lands a GOP late: sought again
    # open groups of pictures: the frames shown just before a keyframe are decoded after it, from
    # the group before (x265's default; x264 with open-gop). After a seek they lack a reference.
    "hevc-open-gop.mkv": ("matroska", "libx265", {"g": str(GOP), "bf": "3", "x265-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:open-gop=1:log-level=error"}, None),
    "h264-open-gop.mp4": ("mp4", "libx264", {"g": str(GOP), "bf": "3", "x264-params": "open-gop=1:scenecut=0"}, None),
}
# Files decord opens but misreads, read by PyAV with the ones above (not in the seeking tests:
# PyAV's seeks in ASF land anywhere, so it decodes from the start there).
MISREAD_ALSO = {
    "wmv2.asf": ("asf", "wmv2", {"g": str(GOP), "b": "4000000"}, None),
    "mpeg4-bframes.mp4": ("mp4", "mpeg4", {"g": str(GOP), "bf": "2", "b": "4000000"}, None),  # open groups
}


@pytest.fixture(scope="module")
def long_files(tmp_path_factory) -> Path:
    return written_apart(tmp_path_factory.mktemp("long"), {name: (numbered_frames(N, H, W), FPS, container, codec, copts, fopts) for name, (container, codec, copts, fopts) in (LONG | MISREAD_ALSO).items()})


# Why decord would misread each long file it opens (pipeline.decoders.decord_misreads), so that
# PyAV reads it; None: decord reads it (the others it cannot open at all).
MISREAD_BY_DECORD = {
    "h264-bframes.mkv": None,
    "h264-bframes.mp4": None,
    "h264.ts": "an MPEG transport stream",
    "hevc-open-gop.mkv": "open groups of pictures",
    "h264-open-gop.mp4": "open groups of pictures",
    "mpeg4-bframes.mp4": "open groups of pictures",
    "wmv2.asf": r"an ASF file \(Windows Media",
}


@pytest.mark.parametrize("name", sorted(LONG | MISREAD_ALSO))
def test_random_frames_are_those_asked_for(long_files, name):
    """Frames a video is asked for at random, as the features stage and fine-tuning ask. decord
    gave, in silence, frame t + 10 for t from the transport stream (t + 30 from one with a
    longer group of pictures), after its seeks in the open groups of pictures frames up to 7
    before or 2 after those asked (52 and 83 of 160 frames wrong; MPEG-4 with B-frames 157),
    and in ASF frames 0, 0, 0 for 5, 23, 47: those files are PyAV's."""
    rng = np.random.default_rng(1)
    for _ in range(3):
        video = FrameSource(long_files / name)
        wanted = np.sort(rng.choice(N, 16, replace=False))
        np.testing.assert_array_equal(frame_numbers(video.read(wanted)), wanted)
        assert video.decoder == ("decord" if MISREAD_BY_DECORD.get(name, "cannot open") is None else "pyav")


@pytest.mark.parametrize("name", sorted(MISREAD_BY_DECORD))
def test_decord_is_not_given_files_it_would_misread(long_files, name):
    reason = MISREAD_BY_DECORD[name]
    if reason is None:
        assert FrameSource(long_files / name, decoders=("decord",)).decoder == "decord"
    else:
        with pytest.raises(VideoReadError, match=rf"{name}: cannot seek \(decord: {reason}"):
            FrameSource(long_files / name, decoders=("decord",))


@pytest.mark.parametrize(
    "data,codec,length_size,slice_type",
    [
        (b"\x00\x00\x00\x03\x4e\x01\xff" b"\x00\x00\x00\x03\x2a\x01\x80", "hevc", 4, 21),  # prefix SEI (39), then a CRA slice
        (b"\x00\x00\x00\x03\x28\x01\xaf", "hevc", 4, 20),  # IDR_N_LP
        (b"\x00\x00\x00\x01\x06\xff\x00\x00\x01\x65\x88", "h264", None, 5),  # Annex B: SEI, then an IDR slice
        (b"\x00\x02\x41\x9a", "h264", 2, 1),  # two-byte lengths: a non-IDR slice
        (b"\x00\x00\x00\x02\x06\xff", "h264", 4, None),  # no slice
    ],
)
def test_the_first_slice_of_a_packet_is_told_by_its_nal_header(data, codec, length_size, slice_type):
    assert first_slice_type(data, codec, length_size) == slice_type


def test_nal_lengths_come_from_the_avcc_or_hvcc_record():
    assert nal_length_size("h264", bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1])) == 4
    assert nal_length_size("h264", bytes([1, 0x64, 0, 0x1F, 0xFD, 0xE1])) == 2
    assert nal_length_size("hevc", bytes([1] + [0] * 20 + [0xF3])) == 4
    assert nal_length_size("hevc", b"\x00\x00\x00\x01\x40\x01") is None  # start codes
    assert nal_length_size("h264", None) is None and nal_length_size("vp9", bytes([1] * 30)) is None


@pytest.mark.parametrize("name,types", [("hevc-open-gop.mkv", [20, 21, 21]), ("h264-open-gop.mp4", [5, 1, 1]), ("h264-bframes.mp4", [5, 5, 5]), ("h264.ts", [5, 5, 5])])
def test_the_keyframes_of_real_files_begin_with_their_slice_types(long_files, name, types):
    """x265's default opens its groups with CRA pictures after the first IDR; x264's open-gop
    with non-IDR I-slices; its closed groups, in MP4 (lengths) or a transport stream (start
    codes), each with an IDR slice."""
    import av

    with av.open(str(long_files / name)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        length_size = nal_length_size(codec.name, codec.extradata)
        keyframes = [bytes(packet) for packet in container.demux(stream) if packet.size and packet.is_keyframe][: len(types)]
    assert [first_slice_type(data, codec.name, length_size) for data in keyframes] == types


def test_a_file_pyav_cannot_look_into_is_left_to_decord(long_files, monkeypatch):
    import av

    def refused(*args, **kwargs):
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(av, "open", refused)
    video = FrameSource(long_files / "h264-bframes.mp4")
    assert video.decoder == "decord" and frame_numbers(video.read(np.array([3, 77]))).tolist() == [3, 77]


@pytest.mark.parametrize("name", sorted(LONG))
def test_a_segment_deep_in_the_video_is_read_after_a_seek(long_files, name):
    reader = PyAVReader(long_files / name)
    assert reader.num_frames == N
    segment = np.arange(97, 113, 3)  # 97 .. 112: the keyframes before them are 90 and 110
    frames = reader.read(segment)
    seeking = reader.frames_decoded
    assert seeking <= 2 * GOP + len(segment) + 4 < segment[-1]  # from 90 on, not from 0
    np.testing.assert_array_equal(frame_numbers(frames), segment)
    decoded = reader.frames_decoded
    np.testing.assert_array_equal(frames, reader._read_from_start(segment))  # the same pixels
    assert reader.frames_decoded - decoded == segment[-1] + 1


@pytest.mark.parametrize("name", sorted(LONG))
def test_uniform_frames_over_the_whole_video_are_those_of_a_decode_from_the_start(long_files, name):
    reader = PyAVReader(long_files / name)
    wanted = np.unique(np.linspace(0, N - 1, 16).round().astype(int))
    frames = reader.read(wanted)
    assert reader.frames_decoded < N  # a keyframe ahead of the decoder is sought, not decoded to
    np.testing.assert_array_equal(frame_numbers(frames), wanted)
    np.testing.assert_array_equal(frames, reader._read_from_start(wanted))


@pytest.mark.parametrize("name", sorted(LONG))
def test_chunks_read_one_after_another_go_on_from_where_the_last_stopped(long_files, name):
    """The all-frames pass reads a video 64 frames at a time. The container stays open between
    reads, so the second chunk decodes its own frames only, not again from the keyframe before
    it (60); a read behind the decoder seeks back."""
    reader = PyAVReader(long_files / name)
    first, second, back = np.arange(64), np.arange(64, N), np.array([31, 35])
    np.testing.assert_array_equal(frame_numbers(reader.read(first)), first)
    assert reader.frames_decoded == 64
    frames = reader.read(second)
    assert reader.frames_decoded == N - 64
    np.testing.assert_array_equal(frame_numbers(frames), second)
    np.testing.assert_array_equal(frames, reader._read_from_start(second))
    frames = reader.read(back)
    assert reader.frames_decoded <= 2 * GOP + 6 < 36  # from keyframe 30 (20 for MPEG-TS), not from 0
    np.testing.assert_array_equal(frame_numbers(frames), back)
    np.testing.assert_array_equal(frames, reader._read_from_start(back))


def test_a_dropped_reader_closes_its_file_at_once(long_files):
    """The container a read leaves open is closed when its reader is dropped, not at the next
    garbage collection (PyAV's containers sit in reference cycles): a worker decoding video
    after video holds one file and one decoder at a time."""
    import gc
    import os

    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            reader = PyAVReader(long_files / "yt-av1.webm")
            np.testing.assert_array_equal(frame_numbers(reader.read(np.array([97]))), [97])
            assert len(os.listdir("/proc/self/fd")) == before + 1  # this reader's file, left open for its next read
        del reader
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


def test_a_read_that_gives_up_seeking_leaves_no_file_open(long_files, monkeypatch):
    """A frame of unknown time sends the read back to a decode from the start; the container
    the seeking read opened is dropped, which closes it."""
    import gc
    import os

    reader = PyAVReader(long_files / "yt-av1.webm")
    monkeypatch.setattr(reader, "_index_of", lambda pts: None)
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        np.testing.assert_array_equal(frame_numbers(reader.read(np.array([97]))), [97])
        assert reader._decoding is None and len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


def test_a_kinetics_segment_in_a_whole_av1_video_reads_only_around_it(long_files):
    """What ``open_record`` does with a file named by the bare YouTube id: decord cannot decode
    AV1, PyAV reads the segment's window."""
    source = FrameSource(long_files / "yt-av1.webm")
    window = segment_frames(source, 11.0, 13.0)
    assert isinstance(window, FrameWindow) and (window.first, window.num_frames) == (88, 16)
    frames = window.read(np.arange(0, 16, 5))
    assert source.decoder == "pyav" and source._reader.frames_decoded <= GOP + 16
    np.testing.assert_array_equal(frame_numbers(frames), 88 + np.arange(0, 16, 5))
    np.testing.assert_allclose(window.timestamps(np.array([0, 15])), [11.0, 12.875])


def test_frames_without_times_are_read_front_to_back(tmp_path):
    """A raw H.264 stream has no presentation times: its frames are counted from the start."""
    from conftest import write_video

    path = write_video(tmp_path / "raw.h264", numbered_frames(N, H, W)[:40], FPS, "h264", "libx264", {"g": str(GOP)})
    reader = PyAVReader(path)
    assert reader.frame_times is None and reader.num_frames == 40
    wanted = np.array([31, 35])
    np.testing.assert_array_equal(frame_numbers(reader.read(wanted)), wanted)
    assert reader.frames_decoded == 36


def test_a_stream_that_cannot_be_set_up_leaves_no_file_open(long_files, monkeypatch):
    """The seeking read opens the file again; if setting up its stream fails there, the
    container, which nothing holds yet, is closed at once and the read decodes from the start."""
    import gc
    import os

    from pipeline import decoders

    reader = PyAVReader(long_files / "yt-av1.webm")
    calls = []
    setup = decoders._decoding_stream

    def failing_once(container):
        calls.append(container)
        if len(calls) == 1:
            raise RuntimeError("no decoder for this stream")
        return setup(container)

    monkeypatch.setattr(decoders, "_decoding_stream", failing_once)
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        np.testing.assert_array_equal(frame_numbers(reader.read(np.array([97]))), [97])
        assert len(calls) == 2 and reader._decoding is None  # the seeking read, then the read from the start
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


class _Unflagged:
    """A decoded frame that the decoder does not call a keyframe."""

    key_frame = False

    def __init__(self, frame):
        self._frame = frame

    def __getattr__(self, name):
        return getattr(self._frame, name)


class _IndexOnlyKeyframe:
    """An open container whose decoder does not call the frame shown at ``pts`` a keyframe,
    though the container lists its packet as one (a recovery point that is no clean start)."""

    def __init__(self, container, pts: int):
        self._container, self._pts = container, pts

    def __getattr__(self, name):
        return getattr(self._container, name)

    def decode(self, stream):
        for frame in self._container.decode(stream):
            yield _Unflagged(frame) if frame.pts == self._pts else frame


def test_a_seek_lands_only_on_a_frame_the_decoder_calls_a_keyframe(long_files, monkeypatch):
    """The container's index says where keyframes are; the decoder says whether the frame it
    gives there is one. A listed keyframe the decoder does not call one may lack references, so
    the read passes over it and seeks to the keyframe before: the same frame 97, decoded from
    frame 80 rather than 90."""
    import av

    path = long_files / "h264-bframes.mkv"
    trusted = PyAVReader(path)
    np.testing.assert_array_equal(frame_numbers(trusted.read(np.array([97]))), [97])
    assert trusted.frames_decoded == 8  # 90 to 97
    reader = PyAVReader(path)
    assert {80, 90} <= set(reader._keyframes.tolist())
    opened = av.open
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: _IndexOnlyKeyframe(opened(*args, **kwargs), int(reader._pts[90])))
    frames = reader.read(np.array([97]))
    np.testing.assert_array_equal(frame_numbers(frames), [97])
    assert reader.frames_decoded == 1 + 18  # frame 90 passed over, then 80 to 97
    np.testing.assert_array_equal(frames, trusted.read(np.array([97])))
