"""Where decord is not installed: its Linux wheels are for x86-64 alone, so on aarch64 (Grace
Hopper nodes, AWS Graviton) and macOS the project installs without it (``pyproject.toml``'s
marker) and PyAV reads every file, with the frames decord gives, and the stages say why."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from packaging.markers import default_environment
from packaging.requirements import Requirement

from conftest import frame_numbers, numbered_frames, written_apart
from pipeline.datasets import AnnotationFiles
from pipeline.decoders import decord_installed, misread_now_and_then
from pipeline.video import FrameSource
from stages.cli import main
from stages.features import run_features

REPO = Path(__file__).resolve().parent.parent
FPS, N, H, W = 8, 24, 32, 64
# name: (container, codec, codec options); decord reads the first two, PyAV the others
FILES = {
    "h264.mp4": ("mp4", "libx264", {"g": "8"}),
    "vp9.webm": ("webm", "libvpx-vp9", {"g": "8"}),
    "h264.ts": ("mpegts", "libx264", {"g": "8"}),
    "bframes.avi": ("avi", "mpeg4", {"g": "8", "bf": "2", "b": "2000000"}),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return written_apart(tmp_path_factory.mktemp("no_decord"), {name: (numbered_frames(N, H, W), FPS, container, codec, options) for name, (container, codec, options) in FILES.items()})


@pytest.fixture
def without_decord(monkeypatch):
    """This process as one where decord is not installed: importing it fails, and
    :func:`pipeline.decoders.decord_installed` says so."""
    monkeypatch.setitem(sys.modules, "decord", None)
    assert not decord_installed()


def test_pyproject_installs_decord_on_x86_64_linux_alone():
    """Every other dependency has wheels for aarch64 Linux on the registry (checked 2026-12-06:
    torch 2.13.0, torchvision 0.28.0, PyAV, ONNX Runtime, h5py, numpy, scikit-learn, scipy,
    onnx, matplotlib); decord has none there, nor for macOS on Apple silicon."""
    dependencies = [Requirement(text) for text in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    decord = next(r for r in dependencies if r.name == "decord")

    def installed_on(system: str, machine: str) -> bool:
        return decord.marker.evaluate({**default_environment(), "sys_platform": system, "platform_machine": machine})

    assert installed_on("linux", "x86_64")
    assert not installed_on("linux", "aarch64") and not installed_on("darwin", "arm64")
    assert [r.name for r in dependencies if r.marker is not None] == ["decord"]  # all the others everywhere


def test_pyav_reads_every_file_with_the_frames_decord_gives(files, monkeypatch):
    wanted = np.array([0, 5, 11, 23])
    by_decord = {name: FrameSource(files / name, decoders=("decord",)).read(wanted) for name in ("h264.mp4", "vp9.webm")}
    monkeypatch.setitem(sys.modules, "decord", None)
    for name in FILES:
        source = FrameSource(files / name)
        frames = source.read(wanted)
        assert (source.decoder, source.decord_passed_over) == ("pyav", "decord is not installed")
        assert frame_numbers(frames).tolist() == wanted.tolist()
        np.testing.assert_allclose(source.timestamps(wanted), wanted / FPS, atol=1e-6)
        if name in by_decord:
            assert np.abs(frames.astype(int) - by_decord[name].astype(int)).mean() < 2.0  # colour conversion only


def test_the_features_stage_says_why_pyav_read_every_file(files, tmp_path, tiny_config, run_options, without_decord):
    root = tmp_path / "data"
    root.mkdir()
    for name in FILES:
        (root / name).write_bytes((files / name).read_bytes())
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"{name} {i % 2}\n" for i, name in enumerate(FILES)))
    summary = run_features("list", root, tiny_config, run_options, files=AnnotationFiles(train=listing))
    assert summary.computed == len(FILES) and not summary.failed
    assert {r["path"]: r["pyav"] for r in summary.pyav_reads} == dict.fromkeys(FILES, "decord is not installed")
    assert re.search(r"^read by PyAV +4, decord passing over: decord is not installed 4$", summary.table(), re.M)


def test_the_look_at_old_caches_takes_every_file_decord_would_misread_for_one_it_read(files, tmp_path, without_decord):
    """Whether decord opened a file before its rules cannot be told without it: a file it would
    misread is taken to be one it read (a cache built where decord was installed holds its
    frames), so a cache built before computes it again (a needless recompute at worst). The
    check of the files says so."""
    assert misread_now_and_then(files / "h264.mp4") == (None, False)
    assert misread_now_and_then(files / "h264.ts")[1] and misread_now_and_then(files / "bframes.avi")[1]  # the AVI: decord refused it, could it be asked
    (tmp_path / "videos").mkdir()
    for name in FILES:
        (tmp_path / "videos" / name).write_bytes((files / name).read_bytes())
    (tmp_path / "train.txt").write_text("".join(f"videos/{name} 0\n" for name in FILES))
    args = ["data", "--dataset", "list", "--data-root", str(tmp_path), "--train-list", str(tmp_path / "train.txt"), "--list-format", "video", "--no-progress", "--check-decoding"]
    lines = CliRunner().invoke(main, args).output.splitlines()
    assert lines[-3].startswith("decord would misread 2 of 4 video files, which PyAV reads (an MPEG transport stream 1, open groups of pictures 1); decord is not installed here, so which of them it read before 2026-12-06 (night) cannot be told: the next features run on a feature cache built before, where it was, computes them all again; the first:")
    (tmp_path / "train.txt").write_text("videos/h264.mp4 0\n")
    assert CliRunner().invoke(main, args).output.splitlines()[-1] == "decord would read the 1 video file(s) as asked (no transport stream, ASF, edit-list cut or open groups of pictures); it is not installed here: PyAV reads every file"
