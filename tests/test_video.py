"""Decoding real files and frame folders, and each kind of bad input."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.demo_data import encode_h264
from pipeline.video import FrameSource, VideoReadError


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


def test_a_folder_of_two_kinds_of_image_names_the_patterns(tmp_path: Path):
    folder = _frame_folder(tmp_path / "mixed", ["img_00001.jpg", "img_00002.jpg", "cover.jpg"])
    with pytest.raises(VideoReadError, match=r"mixed: frame folder mixes image names of 2 patterns \(cover.jpg, img_N.jpg\)"):
        FrameSource(folder)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p, "file not found"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p: (p.write_text("this is not a video"), p)[1], "not a video file"),
        (lambda p: (p.mkdir(), p)[1], "holds no JPEG/PNG frames"),
    ],
    ids=["missing", "empty", "non-video", "empty-folder"],
)
def test_bad_inputs_raise_named_errors(tmp_path: Path, make, reason):
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoReadError, match=reason) as info:
        FrameSource(path).read(np.array([0]))
    assert str(path) in str(info.value)


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
