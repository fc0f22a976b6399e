"""Decoding real files and frame folders, and each kind of bad input."""

import re
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from pipeline.demo_data import encode_h264
from pipeline.video import FILE_LOOKS_AT_ONCE, FrameSource, VideoReadError, broken_link, failure_kinds, leftover_videos, looked_at, unfinished_video


@pytest.fixture
def gradient_video(tmp_path: Path) -> tuple[Path, np.ndarray]:
    frames = np.zeros((12, 32, 64, 3), dtype=np.uint8)
    for t in range(12):
        frames[t, :, :, 0] = 20 * t  # red level encodes the frame number
        frames[t, :, :, 1] = 100
    path = tmp_path / "v.mp4"
    encode_h264(frames, path, fps=8)
    return path, frames


def test_decodes_the_requested_frames(gradient_video):
    path, frames = gradient_video
    source = FrameSource(path)
    assert source.num_frames == 12
    got = source.read(np.array([0, 5, 5, 11]))
    assert got.shape == (4, 32, 64, 3) and got.dtype == np.uint8
    red = got[..., 0].reshape(4, -1).mean(axis=1)
    assert np.allclose(red, [0, 100, 100, 220], atol=6)  # lossy H.264, frame identity holds


def test_rawframes_folder(tmp_path: Path):
    folder = tmp_path / "vid"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(folder / f"img_{i + 1:05d}.png")
    source = FrameSource(folder)
    assert source.num_frames == 5
    assert source.read(np.array([4, 0]))[:, 0, 0, 0].tolist() == [160, 0]


def _frame_folder(folder: Path, names: list[str]) -> Path:
    """Images whose red level is 10 * (their place in ``names``)."""
    folder.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(np.full((4, 4, 3), 10 * i, dtype=np.uint8)).save(folder / name)
    return folder


def test_frames_in_folders_go_by_the_numbers_in_their_names(tmp_path: Path):
    unpadded = _frame_folder(tmp_path / "unpadded", [f"v_Archery_g01_c01_{i}.jpg" for i in range(1, 13)])
    source = FrameSource(unpadded)
    assert source.num_frames == 12  # lexical order would put _10 second
    assert source.read(np.arange(12))[:, 0, 0, 0].tolist() == pytest.approx([10 * i for i in range(12)], abs=2)


def test_flow_images_beside_the_frames_are_left_out(tmp_path: Path):
    rgb = [f"img_{i:05d}.jpg" for i in range(1, 6)]
    flow = [f"{d}_{i:05d}.jpg" for d in ("flow_x", "flow_y") for i in range(1, 5)]  # mmaction2's build_rawframes
    source = FrameSource(_frame_folder(tmp_path / "mmaction2", rgb + flow))
    assert source.num_frames == 5 and source.read(np.array([4, 0]))[:, 0, 0, 0].tolist() == pytest.approx([40, 0], abs=2)
    dense = [f"{d}_{i:05d}.jpg" for d in ("x", "y") for i in range(1, 5)]  # denseflow's names
    assert FrameSource(_frame_folder(tmp_path / "denseflow", dense + rgb)).num_frames == 5


APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02" + bytes(64)  # what macOS writes as ._<name>


def test_macos_metadata_files_among_the_frames_are_no_frames(tmp_path: Path):
    """A frame folder copied from a Mac to an exFAT drive or SMB share, or packed by its tar:
    each frame has a hidden ``._`` companion (binary metadata), which is neither a frame nor a
    second name pattern."""
    folder = _frame_folder(tmp_path / "v_x", [f"img_{i:05d}.jpg" for i in range(1, 6)])
    for i in range(1, 6):
        (folder / f"._img_{i:05d}.jpg").write_bytes(APPLE_DOUBLE)
    source = FrameSource(folder)
    assert source.num_frames == 5 and source.read(np.array([4, 0]))[:, 0, 0, 0].tolist() == pytest.approx([40, 0], abs=2)


def test_a_folder_of_two_kinds_of_image_names_the_patterns(tmp_path: Path):
    folder = _frame_folder(tmp_path / "mixed", ["img_00001.jpg", "img_00002.jpg", "cover.jpg"])
    with pytest.raises(VideoReadError, match=r"mixed: frame folder mixes image names of 2 patterns \(cover.jpg, img_N.jpg\)"):
        FrameSource(folder)
    many = _frame_folder(tmp_path / "many", ["img_00001.jpg", "cover.jpg", "thumb.png", "x_1.png", "poster.jpg"])  # x_1.png: denseflow's flow, left out
    with pytest.raises(VideoReadError, match=r"many: frame folder mixes image names of 4 patterns \(cover.jpg, img_N.jpg, poster.jpg and 1 more\);"):
        FrameSource(many)


def test_files_looked_at_in_threads_come_back_in_order():
    """``looked_at`` cuts the paths into parts for its threads and gives each look back where its
    path was, for fewer paths than threads, one more than a multiple of them, and none."""
    for count in (0, 3, 2 * FILE_LOOKS_AT_ONCE + 1):
        paths = [f"v{i}.mp4" for i in range(count)]
        assert looked_at(lambda path: path.upper(), paths) == [path.upper() for path in paths]


def test_first_few_names_a_few_and_counts_the_rest():
    from pipeline.wording import first_few

    assert first_few(["a", "b", "c", "d", "e"], 3) == "a, b, c and 2 more"
    assert first_few(["a", "b", "c"], 3) == "a, b, c" and first_few([], 3) == ""
    assert first_few(["x.mp4: gone", "y.mp4: hung"], 1, sep="; ") == "x.mp4: gone and 1 more"


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p, "file not found"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p: (p.write_text("this is not a video"), p)[1], "not a video file"),
        (lambda p: (p.mkdir(), p)[1], r"empty folder: no JPEG/PNG frames \(nor any video file\)$"),
        (lambda p: (p.mkdir(), (p / "flow_x_00001.jpg").touch(), (p / "sub").mkdir(), (p / "._img_00001.jpg").touch(), p)[-1],
         r"folder holds no JPEG/PNG frames \(nor any video file\): flow_x_00001.jpg, sub/$"),
    ],
    ids=["missing", "empty", "non-video", "empty-folder", "folder-without-frames"],
)
def test_bad_inputs_raise_named_errors(tmp_path: Path, make, reason):
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoReadError, match=reason) as info:
        FrameSource(path).read(np.array([0]))
    assert str(path) in str(info.value)


def test_a_missing_video_names_the_unfinished_download_beside_it(tmp_path: Path):
    """yt-dlp's partial file of the video as named (first), or in another of its containers (a list's
    ``x.mp4`` where ``x.webm`` was being fetched), or its resume state; nothing for other names."""
    (tmp_path / "a.webm.part").write_bytes(b"\x1aE\xdf\xa3 half a download")
    (tmp_path / "b.mp4.ytdl").write_text("{}")
    (tmp_path / "c.mp4.backup").write_text("not yt-dlp's")
    for name, partial in [("a.mp4", "a.webm.part"), ("a.webm", "a.webm.part"), ("b.mp4", "b.mp4.ytdl")]:
        with pytest.raises(VideoReadError, match=f"^{re.escape(str(tmp_path / name))}: unfinished download \\({re.escape(partial)} lies where the video should be\\): finish or redo it$"):
            FrameSource(tmp_path / name)
    (tmp_path / "b.webm.part").write_bytes(b"")
    for name in ("b.mp4", "b.webm"):  # the file as named first
        with pytest.raises(VideoReadError, match=f"{name}: unfinished download \\({'b.mp4.ytdl' if name == 'b.mp4' else 'b.webm.part'} lies"):
            FrameSource(tmp_path / name)
    with pytest.raises(VideoReadError, match=r"/a: unfinished download \(a.webm.part lies"):  # a list's name without extension
        FrameSource(tmp_path / "a")
    (tmp_path / "d.temp.mp4").write_bytes(b"")  # FFmpeg's merge, stopped
    with pytest.raises(VideoReadError, match=r"d.mkv: unfinished download \(d.temp.mp4 lies where the video should be\)"):
        FrameSource(tmp_path / "d.mkv")
    for name in ("c.mp4", "a.avi.mp4", "c"):
        with pytest.raises(VideoReadError, match=r": file not found$"):
            FrameSource(tmp_path / name)


def test_a_video_behind_a_symbolic_link_to_nothing_names_the_link(tmp_path: Path):
    """A video that is a link to nothing, or lies in a folder that is (a dataset linked in from
    a disk since unmounted or moved), names the link and its target where it had said "file not
    found"; a link that loops is one to nothing; below a folder that is there, a missing file
    is not found."""
    (tmp_path / "a.mp4").symlink_to(tmp_path / "moved" / "a.mp4")
    (tmp_path / "videos").symlink_to("/mnt/unmounted/videos")
    (tmp_path / "loop.mp4").symlink_to("loop.mp4")
    for path, link, target in [("a.mp4", "a.mp4", tmp_path / "moved" / "a.mp4"), ("videos/train/b.mp4", "videos", "/mnt/unmounted/videos"), ("loop.mp4", "loop.mp4", "loop.mp4")]:
        with pytest.raises(VideoReadError, match=f"^{re.escape(str(tmp_path / path))}: broken symbolic link \\({re.escape(str(tmp_path / link))} links to {re.escape(str(target))}, which is not there\\)$"):
            FrameSource(tmp_path / path)
    assert failure_kinds([f"broken symbolic link ({tmp_path / 'videos'} links to /mnt/x, which is not there)"] * 2) == [("broken symbolic link", 2)]
    (tmp_path / "moved").mkdir()  # the link's folder there now, not its file: still a link to nothing
    assert broken_link(tmp_path / "a.mp4") == f"{tmp_path / 'a.mp4'} links to {tmp_path / 'moved' / 'a.mp4'}, which is not there"
    with pytest.raises(VideoReadError, match=r"c.mp4: file not found$"):
        FrameSource(tmp_path / "moved" / "c.mp4")
    assert broken_link(tmp_path / "moved" / "c.mp4") is None and broken_link(tmp_path) is None


def test_a_web_address_given_as_a_video_is_said_to_be_one(tmp_path: Path, monkeypatch):
    """``nsnet predict https://www.youtube.com/watch?v=x`` had said "https:/www...: file not
    found" (a path makes the "//" one "/"); a Windows drive, or a folder named with a colon,
    is no web address."""
    for address in ("https://www.youtube.com/watch?v=abc", "http://example.org/clip.mp4", "s3://bucket/k400/x.mp4"):
        with pytest.raises(VideoReadError, match=r": a web address, not a file: download the video first \(yt-dlp for YouTube's\)$"):
            FrameSource(Path(address))
    monkeypatch.chdir(tmp_path)
    for path in ("C:/k400/x.mp4", "clips/a:b.mp4"):
        with pytest.raises(VideoReadError, match=r": file not found$"):
            FrameSource(Path(path))


def test_a_missing_video_names_the_formats_yt_dlp_never_merged(tmp_path: Path):
    """A download stopped before FFmpeg merged its picture and sound leaves ``x.f137.mp4`` and
    ``x.f251.webm`` (or one still ``.part``); the message names them, whatever the list's
    extension, and nothing for a name that only begins alike."""
    folder = tmp_path / "train"
    folder.mkdir()
    for name in ("dQw4w9WgXcQ_000010_000020.f137.mp4", "dQw4w9WgXcQ_000010_000020.f251.webm.part", "other.f22.mp4", "dQw4w9WgXcQ.f137.mp4"):
        (folder / name).write_bytes(b"")
    reason = ("unfinished download (dQw4w9WgXcQ_000010_000020.f137.mp4 and dQw4w9WgXcQ_000010_000020.f251.webm.part lie where the video should be, "
              "yt-dlp's separate picture and sound never merged): finish or redo it")
    for name in ("dQw4w9WgXcQ_000010_000020.mp4", "dQw4w9WgXcQ_000010_000020.mkv", "dQw4w9WgXcQ_000010_000020"):
        with pytest.raises(VideoReadError, match=f"^{re.escape(str(folder / name))}: {re.escape(reason)}$"):
            FrameSource(folder / name)
    with pytest.raises(VideoReadError, match=r"dQw4w9WgXcQ_0000: file not found$"):
        FrameSource(folder / "dQw4w9WgXcQ_0000")


@pytest.mark.parametrize("name, video", [
    ("x.webm.part", "x.webm"), ("x.mp4.ytdl", "x.mp4"), ("x.f137.mp4", "x.mp4"), ("x.f251.webm.part", "x.webm"),
    ("Ski trip [ccccccccccc].f137.mp4.part", "Ski trip [ccccccccccc].mp4"), ("x.f4v.part", "x.f4v"), ("x.temp.mp4", "x.mp4"), ("x.temp.mkv", "x.mkv"),
    ("x.temp", None), ("x.temp.txt", None),
    ("x.mp4", None), ("x.f4v", None), ("x.flv", None), ("x.part", None), ("notes.txt.part", None), ("x.f137.txt", None), ("x.mp4.backup", None),
])
def test_the_video_an_unfinished_downloads_file_was_to_become(name: str, video: str | None):
    """yt-dlp's partial file and resume state, its formats never merged and FFmpeg's merge
    stopped (``.temp.``) name the video they were to make; finished videos (``.f4v`` is Flash's container, not a format) and other files none."""
    assert unfinished_video(name) == video


def test_what_a_folders_unfinished_downloads_were_to_become():
    """Sorted, whatever the folder's order (of two formats, ``x.mp4`` before ``x.webm``);
    nothing for a folder of finished videos and other files."""
    assert leftover_videos(["b.f251.webm.part", "a.mp4", "Title [c].mkv.ytdl", "b.f137.mp4", "notes.txt", "d.temp.mp4"]) == ["Title [c].mkv", "b.mp4", "b.webm", "d.mp4"]
    assert leftover_videos(["a.mp4", "b.flv", "c.f4v", "d.txt"]) == []


def test_truncated_video(gradient_video, tmp_path: Path):
    path, _ = gradient_video
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoReadError, match="cut.mp4: truncated or corrupt video") as info:
        FrameSource(cut).read(np.arange(12))
    assert "\n" not in str(info.value) and ".cc:" not in str(info.value)


def test_corrupt_frame_in_folder(tmp_path: Path):
    folder = tmp_path / "vid"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "img_00001.jpg")
    (folder / "img_00002.jpg").write_bytes(b"\xff\xd8 garbage")
    source = FrameSource(folder)
    with pytest.raises(VideoReadError, match="img_00002.jpg: unreadable frame image"):
        source.read(np.array([0, 1]))


def _counting_video(path: Path, frames: int, fps: int) -> Path:
    """An H.264 video whose red level is 5 * the frame number."""
    video = np.zeros((frames, 16, 32, 3), dtype=np.uint8)
    video[..., 0] = (5 * np.arange(frames))[:, None, None]
    encode_h264(video, path, fps=fps)
    return path


def test_a_record_with_a_segment_reads_it_from_the_whole_video_only(tmp_path: Path):
    """A Kinetics clip annotated at 3-6 s: from the 10 s video it was cut from, frames 12-23
    (4 fps), counted from the segment's start; a file as long as the clip (3.5 s), or shorter
    than the segment's end (a 5 s clip cut at keyframes, annotated at 30-33 s), is the clip."""
    from pipeline.datasets.manifest import VideoRecord
    from pipeline.extract import decode_video
    from pipeline.video import FrameWindow, open_record

    _counting_video(tmp_path / "whole.mp4", 40, 4)
    _counting_video(tmp_path / "cut.mp4", 14, 4)
    _counting_video(tmp_path / "keyframes.mp4", 20, 4)
    window = open_record(tmp_path, VideoRecord("a", "whole.mp4", (0,), "train", (3.0, 6.0)))
    assert isinstance(window, FrameWindow) and (window.first, window.num_frames) == (12, 12)
    assert window.read(np.array([0, 11]))[..., 0].reshape(2, -1).mean(axis=1) == pytest.approx([60, 115], abs=4)
    assert window.timestamps(np.array([0]))[0] == pytest.approx(3.0)  # the whole video's clock
    with pytest.raises(VideoReadError, match=r"whole.mp4: frame index out of range 0..11 of the clip's segment"):
        window.read(np.array([12]))
    frames, indices, count = decode_video(tmp_path, VideoRecord("a", "whole.mp4", (0,), "train", (3.0, 6.0)), 4)
    assert count == 12 and indices.tolist() == [1, 4, 7, 10]
    assert frames[..., 0].reshape(4, -1).mean(axis=1) == pytest.approx([65, 80, 95, 110], abs=4)
    for name, segment, frames_in in (("cut.mp4", (3.0, 6.0), 14), ("keyframes.mp4", (30.0, 33.0), 20), ("whole.mp4", None, 40)):
        source = open_record(tmp_path, VideoRecord("a", name, (0,), "train", segment))
        assert isinstance(source, FrameSource) and source.num_frames == frames_in
    # evaluate's decoded row reads the cached frame indices of the segment, as the features stage did
    from pipeline.extract import model_frames
    from pipeline.recognition import ChosenFrameDecoder

    transform = lambda frames: frames  # noqa: E731  (the decoded frames themselves)
    chosen = ChosenFrameDecoder(tmp_path, [VideoRecord("a", "whole.mp4", (0,), "train", (3.0, 6.0))], [np.array([1, 7])], transform)[0]
    assert chosen.error == "" and torch.equal(chosen.frames.model_input(torch.device("cpu")), model_frames(window.read(np.array([1, 7])), transform).model_input(torch.device("cpu")))
