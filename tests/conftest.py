"""Shared fixtures: a tiny generated video set and a tiny feature configuration."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cache import FeatureCache
from pipeline.config import FeaturesConfig, ModelSpec, RunOptions
from pipeline.datasets import AnnotationFiles, Manifest, get_dataset
from pipeline.demo_data import DemoSpec, generate_demo

TINY_SPEC = DemoSpec(num_classes=3, train_per_class=3, val_per_class=1, min_frames=4, max_frames=24, size=32, seed=7)
TINY_FEATURES = FeaturesConfig(
    num_frames=6,
    light=ModelSpec("test_efficientnet", weights="none", resolution=32),
    recognizer=ModelSpec("test_resnet", weights="none", resolution=32),
)
# The CLI's options for TINY_FEATURES' models (`nsnet features ... *TINY_MODEL_OPTIONS`).
TINY_MODEL_OPTIONS = [option for role in ("light", "recognizer") for spec in [getattr(TINY_FEATURES, role)]
                      for option in (f"--{role}-model", spec.name, f"--{role}-weights", spec.weights, f"--{role}-resolution", str(spec.resolution))]


def manifest_rows(manifest: Manifest) -> list[tuple]:
    """Each video of a manifest as (video_id, path, labels, split), in the manifest's order."""
    return [(v.video_id, v.path, v.labels, v.split) for v in manifest.videos]


def load_rows(dataset: str, root: Path, **files: Path | str) -> tuple[Manifest, list[tuple]]:
    """The manifest ``dataset`` reads from ``files`` (:class:`AnnotationFiles` fields) under
    ``root``, and its rows (:func:`manifest_rows`)."""
    manifest = get_dataset(dataset).load(root, AnnotationFiles(**files))
    return manifest, manifest_rows(manifest)


def flip_byte(path: Path, at: int, bits: int = 0xFF) -> None:
    """The byte at ``at`` of the file at ``path`` changed (its ``bits`` flipped), as a disk error or a copy would."""
    data = bytearray(path.read_bytes())
    data[at] ^= bits
    path.write_bytes(bytes(data))


def demo_files(root: Path) -> list[Path]:
    """The demo dataset's video files under ``root``, in its manifest's order."""
    return [root / v.path for v in get_dataset("demo").load(root).videos]


def cache_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a feature cache, read whole."""
    with FeatureCache(path) as cache:
        return {name: np.asarray(array[:]) for name, array in cache.arrays.items()}


def numbered_frames(count: int, height: int, width: int) -> np.ndarray:
    """Frame t: red 8 (t mod 30) + 4 and green 60 (t div 30) + 20, so every frame is told apart
    through a lossy codec (:func:`frame_numbers`)."""
    t = np.arange(count)
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = (8 * (t % 30) + 4)[:, None, None]
    frames[..., 1] = (60 * (t // 30) + 20)[:, None, None]
    return frames


def frame_numbers(frames: np.ndarray) -> np.ndarray:
    """The frame numbers that :func:`numbered_frames` painted."""
    red = frames[..., 0].reshape(len(frames), -1).mean(axis=1)
    green = frames[..., 1].reshape(len(frames), -1).mean(axis=1)
    return np.round((green - 20) / 60).astype(int) * 30 + np.round((red - 4) / 8).astype(int)


def write_video(path: Path, frames, fps: int, container: str, codec: str, codec_options: dict | None = None, container_options: dict | None = None, rotation: int | None = None, pix_fmt: str = "yuv420p") -> Path:
    """Encode uint8 RGB ``frames`` [N, H, W, 3] with PyAV in any container, codec and pixel format."""
    import av

    with av.open(str(path), "w", format=container, options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps, options=codec_options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for array in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode())
    return path


def visible_names(folder: Path) -> list[str]:
    """The names in ``folder``, sorted, the hidden ones aside (outputs' locks, ``.<name>.lock``)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def refuse_looks(monkeypatch, stage: str) -> None:
    """Any look at a file's decoding (``misread_before``) by ``stage``'s module fails the test."""

    def refused(path):
        raise AssertionError(f"{path} looked into again")

    monkeypatch.setattr(f"{stage}.misread_before", refused)


def written_apart(root: Path, videos: dict[str, tuple]) -> Path:
    """``videos`` (a file name: :func:`write_video`'s arguments after the path) written under
    ``root`` in a fresh process: decord's wheel bundles an old libvpx whose symbols, once decord
    is loaded, PyAV's VP9 encoder binds to and fails with (decoding, FFmpeg's own VP9 decoder, is
    not affected)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for job in [pool.submit(write_video, root / name, *arguments) for name, arguments in videos.items()]:
            job.result()
    return root


@pytest.fixture
def video_writer():
    """:func:`write_video`, for tests that make files in the formats users have."""
    return write_video


@pytest.fixture
def forked_workers():
    """Decoding workers forked, whatever the Python's default start method (a fork server from
    Python 3.14 on Linux): a test that patches what a worker runs (a decoder that aborts) needs
    the patch inherited, which only a forked worker does."""
    import multiprocessing

    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("fork", force=True)
    yield
    multiprocessing.set_start_method(before, force=True)


def run_on_two_ranks(script: str, folder: Path) -> None:
    """``script`` run by torchrun on two CPU ranks in ``folder`` (one torch thread each, this
    checkout importable), which must end with status 0; the ranks write what they found there."""
    import subprocess
    import sys

    (folder / "ranks.py").write_text(script)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "ranks.py"], cwd=folder, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def default_stop_signals():
    """SIGTERM and SIGUSR1 at their default for the test (a test before it in the process may
    have left them otherwise), and as they were after it."""
    import signal

    from pipeline.stop_signals import STOP_SIGNALS

    before = {signum: signal.signal(signum, signal.SIG_DFL) for signum in STOP_SIGNALS}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.fixture(scope="session")
def tiny_videos_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny_demo")
    generate_demo(root, TINY_SPEC, workers=1, progress=False)
    return root


@pytest.fixture
def tiny_videos(tiny_videos_master: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset, free to be damaged by a test."""
    root = tmp_path / "videos"
    shutil.copytree(tiny_videos_master, root)
    return root


@pytest.fixture
def tiny_config() -> FeaturesConfig:
    return TINY_FEATURES


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of ONNX exports for the session: exports are keyed by the weights' bytes, so
    the tests' seeded tiny models are exported once, as a user's re-runs would find them."""
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture
def run_options(tmp_path: Path, onnx_exports: Path) -> RunOptions:
    return RunOptions(cache_dir=tmp_path / "cache", device="cpu", workers=0, videos_per_batch=2, videos_per_shard=4, progress=False, exports=onnx_exports)


@pytest.fixture
def tiny_pipeline(tiny_videos: Path, tiny_config: FeaturesConfig, run_options: RunOptions) -> tuple[Path, Path, Path]:
    """A finished tiny feature cache, its prototypes and the videos' ground truth."""
    from pipeline.prototypes import GuidingScorer
    from stages.features import run_features
    from stages.prototypes import run_prototypes

    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    prototypes = Path(run_prototypes(features, GuidingScorer()).path)
    return features, prototypes, tiny_videos / "groundtruth.json"


def modes_bind_prefix() -> list[str]:
    """The command prefix under which file modes bind this process's commands, so that the file
    system itself refuses what they may not write: for root, setpriv's, dropping the capabilities
    that override file modes (the test skipped where root has no setpriv); none for another
    user, whom modes bind already."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root needs setpriv (util-linux) to run a command that file modes bind")
    dropped = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--inh-caps={dropped}", f"--bounding-set={dropped}"]


def recognize_all(decoder, *args, **kwargs) -> tuple[list, dict]:
    """:func:`pipeline.recognition.recognized` collected: every item's logits (None where it
    failed) and the failures' reasons by item."""
    from pipeline.recognition import recognized

    results = dict(recognized(decoder, *args, **kwargs))
    return [None if isinstance(results[i], str) else results[i] for i in range(len(decoder))], {i: r for i, r in results.items() if isinstance(r, str)}


def kill_while_logging(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Patch the ``save_atomic`` of the training runs' resume points
    (:func:`pipeline.models.save_resume_point`) to stop a run as a kill would after epoch
    ``epoch``'s resume point was saved and while its line was written to the log, half of it
    written (``KeyboardInterrupt``)."""
    import pipeline.models

    save = pipeline.models.save_atomic

    def killed(obj: dict, path: Path) -> None:
        save(obj, path)
        if path.name == "last.pth" and obj["epoch"] == epoch - 1:
            with open(path.parent / "log.jsonl", "a") as log:
                log.write(f'{{"epoch": {epoch}, "lo')
            raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.models, "save_atomic", killed)
