"""The features stage end to end on tiny generated videos: schema, values, idempotency,
fingerprint refusal, HDF5, shards, interrupted runs, bad inputs, concurrent writers."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import demo_files
from pipeline.cache import ARRAY_NAMES, DONE, FAILED, CacheError, FeatureCache, Layout, file_lock
from pipeline.datasets import get_dataset
from pipeline.extract import BlockDecoder, BlockInference, crops_alike, decode_candidates, decode_video, decoding_loader, to_model_input
from pipeline.models import FrameEncoder, create_model, data_config, frame_transform, frame_transforms
from pipeline.video import failure_kinds
from stages.features import plan_features, run_features

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "stages.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _tiny_args(root: Path, cache_dir: Path, onnx_dir: Path, *extra: str) -> list[str]:
    return [
        "features", "--dataset", "demo", "--data-root", str(root), "--cache-dir", str(cache_dir), "--onnx-dir", str(onnx_dir),
        "--frames", "6", "--light-model", "test_efficientnet", "--light-weights", "none", "--light-resolution", "32",
        "--recognizer-model", "test_resnet", "--recognizer-weights", "none", "--recognizer-resolution", "32",
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def test_cache_schema_and_values(tiny_videos, tiny_config, run_options):
    summary = run_features("demo", tiny_videos, tiny_config, run_options)
    manifest = get_dataset("demo").load(tiny_videos)
    n, t = len(manifest.videos), tiny_config.num_frames
    assert summary.complete and summary.done == n == 12 and summary.computed == n and summary.failed == 0
    assert Path(summary.cache).parent == run_options.cache_dir / "demo" and summary.cache.endswith(".zarr")
    with FeatureCache(Path(summary.cache)) as cache:
        assert set(cache.arrays) == set(ARRAY_NAMES)
        light, rec, logits = cache["light_features"], cache["rec_features"], cache["rec_logits"]
        assert light.shape == (n, t, 256) and light.dtype == np.float16 and light.chunks == (4, t, 256)
        assert light.shards == (4, t, 256) and cache.attrs["videos_per_shard"] == 4
        assert rec.shape == (n, t, 96) and rec.dtype == np.float16
        assert logits.shape == (n, t, 3) and logits.dtype == np.float32
        assert cache["frame_indices"].shape == (n, t) and cache["status"][:].tolist() == [DONE] * n
        assert cache.attrs["manifest"]["classes"] == list(manifest.classes)
        assert cache.attrs["config"]["num_frames"] == t and len(cache.fingerprint) == 64
        # the stored rows are what the models give for the pre-sampled frames of that video
        i = 5
        frames, indices, count = decode_video(tiny_videos, manifest.videos[i], t)
        assert cache["frame_indices"][i].tolist() == indices.tolist() and cache["num_frames"][i] == count
        rec_model = create_model(tiny_config.recognizer, 3, seed=tiny_config.seed + 1)
        x = to_model_input(frames, frame_transform(data_config(rec_model, tiny_config.recognizer)))
        with torch.inference_mode():
            feats, expected = FrameEncoder(rec_model)(x)
        np.testing.assert_allclose(logits[i], expected.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(rec[i].astype(np.float32), feats.numpy(), rtol=2e-3, atol=2e-3)


def test_a_recognizer_checkpoint_trained_on_frames_normalised_otherwise_sees_frames_normalised_so(tiny_videos, tiny_config, run_options, tmp_path):
    """A timm train.py checkpoint of the recognizer trained with ``--mean 0.4 0.4 0.4 --std
    0.25`` (timm's test_resnet normalises with 0.5 and 0.5): the cached logits are its outputs on
    frames normalised so, the cache is another than that of the same weights recording nothing
    (normalised as timm's model is), and the summary says where the figures came from."""
    import argparse

    rec = tiny_config.recognizer
    model = create_model(rec, 3, seed=7)
    own = data_config(model, rec)
    assert (own["mean"], own["std"]) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    args = argparse.Namespace(model=rec.name, mean=[0.4, 0.4, 0.4], std=[0.25], interpolation="", input_size=None, img_size=None)
    torch.save({"arch": rec.name, "state_dict": model.state_dict(), "args": args, "epoch": 9}, tmp_path / "other.pth.tar")
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    other = run_features("demo", tiny_videos, replace(tiny_config, recognizer=replace(rec, weights=str(tmp_path / "other.pth.tar"))), run_options)
    plain = run_features("demo", tiny_videos, replace(tiny_config, recognizer=replace(rec, weights=str(tmp_path / "plain.pth"))), run_options)
    assert other.cache != plain.cache and other.done == plain.done == 12
    assert other.checkpoints == {"recognizer": {"preprocessing": {"mean": [0.4, 0.4, 0.4], "std": [0.25, 0.25, 0.25]}}} and plain.checkpoints == {}
    assert re.search(r"\nrecognizer preprocessing +mean 0\.4/0\.4/0\.4, std 0\.25/0\.25/0\.25, as its checkpoint was trained \(not timm's for the model\)$", other.table(), re.M)
    assert "preprocessing" not in plain.table()
    frames = decode_video(tiny_videos, get_dataset("demo").load(tiny_videos).videos[5], tiny_config.num_frames)[0]
    for summary, mean, std in ((other, 0.4, 0.25), (plain, 0.5, 0.5)):
        with FeatureCache(Path(summary.cache)) as cache:
            stored = cache.attrs["data_configs"]["recognizer"]
            logits = cache["rec_logits"][5]
        assert (stored["mean"], stored["std"]) == ([mean] * 3, [std] * 3)
        x = to_model_input(frames, frame_transform({**own, "mean": (mean,) * 3, "std": (std,) * 3}))
        with torch.inference_mode():
            np.testing.assert_allclose(logits, FrameEncoder(model)(x)[1].numpy(), rtol=1e-4, atol=1e-4)
    with FeatureCache(Path(other.cache)) as a, FeatureCache(Path(plain.cache)) as b:
        assert np.abs(a["rec_logits"][:] - b["rec_logits"][:]).max() > 100 * 1e-4  # far beyond the tolerance above: other inputs' outputs



def test_the_cache_records_where_its_checkpoints_and_videos_are_for_the_later_stages_run_from_any_folder(tiny_videos, tiny_config, run_options, tmp_path, monkeypatch):
    """``--recognizer-weights ckpt/r.pth`` is relative to where the features stage ran; the cache
    records the file's absolute path beside it, so evaluate and predict run from another folder
    build the same model (a cache without that record, made before 2026-12-05, names the folder
    to run from). It records its data root too: the later stages read the videos there without
    --data-root; --data-root (or DATA_ROOT) wins, and a folder gone since gives the dataset's
    default."""
    from stages.cli import cache_dataset
    from stages.features import cached_model

    rec = tiny_config.recognizer
    model = create_model(rec, 3, seed=4)
    (tmp_path / "job" / "ckpt").mkdir(parents=True)
    torch.save(model.state_dict(), tmp_path / "job" / "ckpt" / "r.pth")
    monkeypatch.chdir(tmp_path / "job")
    summary = run_features("demo", tiny_videos, replace(tiny_config, recognizer=replace(rec, weights="ckpt/r.pth")), run_options)
    with FeatureCache(Path(summary.cache)) as cache:
        attrs = dict(cache.attrs)
    assert attrs["config"]["recognizer"]["weights"] == "ckpt/r.pth" and attrs["checkpoint_files"] == {"recognizer": str(tmp_path / "job" / "ckpt" / "r.pth")}
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    encoder, _ = cached_model(attrs, "recognizer")
    assert torch.equal(encoder.model.fc.weight, model.fc.weight)
    with pytest.raises(CacheError, match=re.escape(f"ckpt/r.pth: the recognizer checkpoint the feature cache was built with is not found, a path relative to the folder `nsnet features` ran in (this process runs in {tmp_path / 'elsewhere'}): run from there, or put the file back (a copy of the same bytes does)")):
        cached_model({k: v for k, v in attrs.items() if k != "checkpoint_files"}, "recognizer")
    (tmp_path / "job" / "ckpt" / "r.pth").rename(tmp_path / "job" / "ckpt" / "moved.pth")  # gone from both places
    with pytest.raises(CacheError, match="ckpt/r.pth: the recognizer checkpoint the feature cache was built with is not found"):
        cached_model(attrs, "recognizer")
    absolute = {**attrs, "config": {**attrs["config"], "recognizer": {**attrs["config"]["recognizer"], "weights": attrs["checkpoint_files"]["recognizer"]}}}
    with pytest.raises(CacheError, match=re.escape(f"{tmp_path / 'job' / 'ckpt' / 'r.pth'}: the recognizer checkpoint the feature cache was built with is not found: put the file back (a copy of the same bytes does)")):
        cached_model(absolute, "recognizer")
    assert attrs["data_root"] == str(tiny_videos.resolve())
    assert cache_dataset(Path(summary.cache), "demo", None)[1] == tiny_videos.resolve()
    assert cache_dataset(Path(summary.cache), "demo", tmp_path / "mine")[1] == tmp_path / "mine"
    tiny_videos.rename(tmp_path / "moved")
    assert cache_dataset(Path(summary.cache), "demo", None)[1] == Path("data/demo")


def test_a_checkpoint_fine_tuned_into_the_cache_folder_is_found_there_once_the_folder_moved(tiny_videos, tiny_config, run_options, tmp_path):
    """The recognizer fine-tuned by the toolkit lies in the cache folder (``finetune/<run>/model.pth``;
    the demo's ``recognizer.pth``): with the folder moved, the later stages building the cache's
    model find it by its path's tail there (before 2026-12-07, fifty-first session: "not found:
    put the file back"); its bytes are checked as before."""
    from pipeline.shared_caches import cache_folders
    from stages.features import cached_model

    rec = tiny_config.recognizer
    model = create_model(rec, 3, seed=4)
    made = run_options.cache_dir / "demo" / "finetune" / "recognizer-run" / "model.pth"
    made.parent.mkdir(parents=True)
    torch.save(model.state_dict(), made)
    summary = run_features("demo", tiny_videos, replace(tiny_config, recognizer=replace(rec, weights=str(made))), run_options)
    with FeatureCache(Path(summary.cache)) as cache:
        attrs = dict(cache.attrs)
    moved = tmp_path / "moved"
    shutil.move(run_options.cache_dir, moved)
    with pytest.raises(CacheError, match="the recognizer checkpoint the feature cache was built with is not found: put the file back"):
        cached_model(attrs, "recognizer")  # no folder to look in
    encoder, _ = cached_model(attrs, "recognizer", (moved / "demo",))
    assert torch.equal(encoder.model.fc.weight, model.fc.weight)
    link = tmp_path / "mine" / "demo" / Path(summary.cache).name  # the moved cache through a link (a shared one's: pipeline.shared_caches)
    link.parent.mkdir(parents=True)
    link.symlink_to(moved / "demo" / link.name)
    assert cache_folders(link) == (link.parent, (moved / "demo").resolve())
    linked, _ = cached_model(attrs, "recognizer", cache_folders(link))  # looked for beside the cache the link names (the link's folder alone before)
    assert torch.equal(linked.model.fc.weight, model.fc.weight)
    torch.save(create_model(rec, 3, seed=5).state_dict(), moved / "demo" / "finetune" / "recognizer-run" / "model.pth")  # other bytes under that path
    with pytest.raises(CacheError, match="the recognizer weights changed since the feature cache was built"):
        cached_model(attrs, "recognizer", (moved / "demo",))


def test_a_recognizer_checkpoint_with_averaged_weights_runs_them_and_a_cache_that_took_the_raw_ones_is_refused(tiny_videos, tiny_config, run_options, tmp_path):
    """A timm train.py checkpoint with ``state_dict_ema``: the cache holds the averaged weights'
    logits, the summary says which were taken, and a later stage building the cache's model
    refuses a cache whose identity says the checkpoint was taken otherwise (as one built before
    2026-12-05 took the raw ones)."""
    import argparse

    from stages.features import cached_model

    rec = tiny_config.recognizer
    raw, ema = create_model(rec, 3, seed=1), create_model(rec, 3, seed=2)
    args = argparse.Namespace(model=rec.name, mean=None, std=None, interpolation="")
    path = tmp_path / "model_best.pth.tar"
    torch.save({"arch": rec.name, "state_dict": raw.state_dict(), "state_dict_ema": ema.state_dict(), "args": args}, path)
    summary = run_features("demo", tiny_videos, replace(tiny_config, recognizer=replace(rec, weights=str(path))), run_options)
    assert summary.checkpoints == {"recognizer": {"ema": "state_dict_ema"}}
    assert re.search(r"^recognizer weights +the checkpoint's averaged ones \(state_dict_ema\), as timm loads it$", summary.table(), re.M)
    with FeatureCache(Path(summary.cache)) as cache:
        attrs, logits = dict(cache.attrs), cache["rec_logits"][5]
    frames = decode_video(tiny_videos, get_dataset("demo").load(tiny_videos).videos[5], tiny_config.num_frames)[0]
    with torch.inference_mode():
        np.testing.assert_allclose(logits, FrameEncoder(ema)(to_model_input(frames, frame_transform(data_config(ema, rec))))[1].numpy(), rtol=1e-4, atol=1e-4)
    encoder, _ = cached_model(attrs, "recognizer")
    assert torch.equal(encoder.model.fc.weight, ema.fc.weight)
    models = attrs["identity"]["models"]
    before = {**attrs, "identity": {**attrs["identity"], "models": {**models, "recognizer": {k: v for k, v in models["recognizer"].items() if k != "ema"}}}}
    with pytest.raises(CacheError, match=r"model_best\.pth\.tar: the feature cache took the recognizer checkpoint's raw or averaged \(EMA\) weights otherwise than it is taken now .*; rebuild the cache with `nsnet features`"):
        cached_model(before, "recognizer")


def test_models_with_equal_data_configs_share_one_preprocessing_of_each_frame(tiny_videos, tiny_config):
    cfg = data_config(create_model(tiny_config.recognizer, 3, seed=0), tiny_config.recognizer)
    light_tf, rec_tf = frame_transforms(cfg, dict(cfg))
    assert rec_tf is light_tf
    other_light, other_rec = frame_transforms(cfg, {**cfg, "crop_pct": 1.0})
    assert other_rec is not other_light
    videos = get_dataset("demo").load(tiny_videos).videos
    calls: list[int] = []

    def spy(tf):
        return lambda x: calls.append(len(x)) or tf(x)

    shared = spy(light_tf)
    block = BlockDecoder(tiny_videos, videos, [(0, [0, 1, 2])], 6, shared, shared)[0]
    assert calls == [6, 6, 6]  # once a video, not once a model
    assert block.rec is block.light and block.num_frames == len(block.light) == 18 and block.light.rescale is None  # a wrapped transform: float rows
    at = 0
    for video in block.videos:  # the videos' rows one after the other
        expected = to_model_input(decode_video(tiny_videos, videos[video.index], 6)[0], shared)
        torch.testing.assert_close(block.light.pixels[at : at + video.rows], expected, rtol=0, atol=0)
        at += video.rows
    fed: dict[str, torch.Tensor] = {}

    def runner(name: str, dim: int):
        return lambda frames: fed.__setitem__(name, frames) or (torch.zeros(len(frames), dim), torch.zeros(len(frames), 3))

    layout = Layout(3, 6, 4, 5, 3).rows()
    BlockInference(runner("light", 4), runner("rec", 5), torch.device("cpu"))(block, layout)
    assert fed["rec"] is fed["light"] and fed["light"].shape == (18, 3, 32, 32)  # one batch of frames for both models
    calls.clear()
    block = BlockDecoder(tiny_videos, videos, [(0, [0, 1, 2])], 6, spy(other_light), spy(other_rec))[0]
    assert calls == [6] * 6 and block.rec is not block.light and block.rec.pixels.shape == block.light.pixels.shape
    BlockInference(runner("light", 4), runner("rec", 5), torch.device("cpu"))(block, layout)
    assert fed["rec"] is not fed["light"] and not torch.equal(fed["rec"], fed["light"])


def test_models_that_differ_in_normalisation_only_share_one_crop_of_each_frame(tiny_videos, tiny_config):
    """A light model with ImageNet's mean and std beside a recognizer with 0.5 (a ViT): the
    decoders resize and crop each frame once, both models' rows are one uint8 tensor (in shared
    memory from a worker), and each model's input is its own transform's output, bit for bit."""
    cfg = data_config(create_model(tiny_config.recognizer, 3, seed=0), tiny_config.recognizer)
    imagenet = {**cfg, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    light_tf, rec_tf = frame_transforms(imagenet, {**cfg, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
    assert rec_tf is not light_tf and crops_alike(light_tf, rec_tf)
    assert not crops_alike(*frame_transforms(cfg, {**cfg, "crop_pct": 1.0})) and not crops_alike(*frame_transforms(cfg, {**cfg, "interpolation": "bicubic"}))
    assert not crops_alike(light_tf, lambda x: light_tf(x))  # not a timm eval transform
    videos = get_dataset("demo").load(tiny_videos).videos
    block = BlockDecoder(tiny_videos, videos, [(0, [0, 1, 2])], 6, light_tf, rec_tf)[0]
    assert block.num_frames == len(block.light.pixels) == 18 and block.light.pixels.dtype == torch.uint8
    assert block.rec is not block.light and block.rec.pixels is block.light.pixels and block.rec.rescale != block.light.rescale
    fed: dict[str, torch.Tensor] = {}
    layout = Layout(3, 6, 4, 5, 3).rows()
    BlockInference(
        lambda x: fed.__setitem__("light", x) or (torch.zeros(len(x), 4), None),
        lambda x: fed.__setitem__("rec", x) or (torch.zeros(len(x), 5), torch.zeros(len(x), 3)),
        torch.device("cpu"),
    )(block, layout)
    frames = [decode_video(tiny_videos, videos[v.index], 6)[0] for v in block.videos]
    torch.testing.assert_close(fed["light"], torch.cat([to_model_input(f, light_tf) for f in frames]), rtol=0, atol=0)
    torch.testing.assert_close(fed["rec"], torch.cat([to_model_input(f, rec_tf) for f in frames]), rtol=0, atol=0)
    assert not torch.equal(fed["rec"], fed["light"])
    (arrived,) = decoding_loader(BlockDecoder(tiny_videos, videos, [(0, [0, 1])], 6, light_tf, rec_tf), 1)
    assert arrived.rec.pixels is arrived.light.pixels and arrived.light.pixels.is_shared() and arrived.rec.rescale == block.rec.rescale


FORK_SERVER_SCRIPT = """
import multiprocessing, sys
from multiprocessing import forkserver
import torch
from torch.utils.data import TensorDataset
from pipeline.extract import decoding_loader, worker_start

data = TensorDataset(torch.arange(6))
multiprocessing.set_start_method("fork", force=True)  # Python's default on Linux before 3.14
assert worker_start(data) is None
multiprocessing.set_start_method("forkserver", force=True)  # from 3.14
assert worker_start(data).get_start_method() == "forkserver"
assert forkserver._forkserver._preload_modules == ["__main__", "pipeline.extract", "timm.data.transforms", "torch.utils.data.dataset", "pipeline.decoding_server"]
assert [int(x) for (x,) in decoding_loader(data, 2, watched=False)] == list(range(6))
with open(f"/proc/{forkserver._forkserver._forkserver_pid}/maps") as maps:
    print("torch in the fork server:", "libtorch_cpu" in maps.read())
with open(f"/proc/{forkserver._forkserver._forkserver_pid}/status") as status:
    ignored = int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)
print("SIGTERM, SIGUSR1 ignored in the fork server:", all(ignored >> (signum - 1) & 1 for signum in (15, 10)))
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the fork server's memory map from /proc")
def test_decoding_processes_from_a_fork_server_start_with_the_toolkit_imported():
    """Where Python's start method is a fork server (3.14's default on Linux), the server imports
    the decoding module and the dataset's before it forks the decoders, so that each loader's
    processes start ready (torch is mapped in the server) rather than import it all anew; the
    items are the forked loader's; the server ignores a scheduler's stop signals, as Python's
    resource tracker does. Forked (Python's default before 3.14), nothing changes. In a fresh
    interpreter, whose start method and fork server are its own."""
    run = subprocess.run([sys.executable, "-c", FORK_SERVER_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["torch in the fork server: True", "SIGTERM, SIGUSR1 ignored in the fork server: True"]


def test_decoding_processes_write_warnings_as_the_loaders_process_does(monkeypatch):
    """The commands print the toolkit's warnings as one line (``warnings.formatwarning``); a
    decoding process from a fork server inherits nothing of that, so the loader's init carries
    the function, pickled by name as the fork server sends it, and sets it in the process; a
    function that cannot be sent so (a lambda) leaves the process Python's way. The init also
    leaves a scheduler's stop signals to the loader's process (ignored here)."""
    import pickle
    import signal
    import warnings
    from torch.utils.data import TensorDataset
    from pipeline.stop_signals import STOP_SIGNALS
    from stages.cli import toolkit_warning_line

    python_way, threads = warnings.formatwarning, torch.get_num_threads()
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    data = TensorDataset(torch.arange(2))
    monkeypatch.setattr(warnings, "formatwarning", toolkit_warning_line)
    sent = pickle.loads(pickle.dumps(decoding_loader(data, 1).worker_init_fn))
    monkeypatch.setattr(warnings, "formatwarning", lambda *args, **kwargs: "never sent\n")
    not_sent = pickle.loads(pickle.dumps(decoding_loader(data, 1).worker_init_fn))
    try:
        for init, expected in ((sent, toolkit_warning_line), (not_sent, python_way)):
            warnings.formatwarning = python_way  # a new process's own
            init(0)
            assert warnings.formatwarning is expected and torch.get_num_threads() == 1
            assert all(signal.getsignal(signum) is signal.SIG_IGN for signum in STOP_SIGNALS)
    finally:
        torch.set_num_threads(threads)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def test_a_loader_with_pin_memory_pins_the_blocks_frames(tiny_videos, tiny_config, monkeypatch):
    """On a GPU the loader pins each block (DataLoader's own pinning step, which calls the
    block's ``pin_memory``); page-locked memory needs a GPU, so a copy stands in for it here."""
    from torch.utils.data._utils.pin_memory import pin_memory

    pinned: list[torch.Tensor] = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *args: pinned.append(self.clone()) or pinned[-1])
    cfg = data_config(create_model(tiny_config.recognizer, 3, seed=0), tiny_config.recognizer)
    videos = get_dataset("demo").load(tiny_videos).videos
    for shared, rec_cfg in ((True, cfg), (False, {**cfg, "crop_pct": 1.0}), ("crops", {**cfg, "std": (0.25, 0.25, 0.25)})):
        pinned.clear()
        block = BlockDecoder(tiny_videos, videos, [(0, [0, 1])], 6, *frame_transforms(cfg, rec_cfg))[0]
        out = pin_memory(block)
        assert (block.rec is block.light) == (shared is True) and len(pinned) == (2 if shared is False else 1) and out.light.pixels is pinned[0] and (out.rec is out.light) == (shared is True)
        assert out.rec.rescale is block.rec.rescale and (out.rec.pixels is out.light.pixels) == bool(shared)
        assert out.rec.pixels is pinned[-1] and torch.equal(out.rec.pixels, block.rec.pixels) and torch.equal(out.light.pixels, block.light.pixels)
        assert pinned[0].dtype == torch.uint8 and out.light.rescale is block.light.rescale  # the crops are pinned, a quarter of the input's bytes
        assert out.videos == block.videos and out.members == [0, 1] and out.num_frames == 12


def test_a_block_is_written_into_one_tensor_made_in_shared_memory_in_a_worker(tiny_videos, tiny_config, monkeypatch):
    """The block's rows go video after video into one tensor sized for every row the block can
    have (a training video's candidates included); a failed video leaves no gap. For a timm eval
    transform the rows are the uint8 crops, one byte a value, and the model's input made from
    them equals :func:`to_model_input` bit for bit. In a DataLoader worker that tensor is made in
    shared memory, so the loader hands it over without a copy, and the block that arrives equals
    the one decoded in the main process."""
    import pipeline.extract

    cfg = data_config(create_model(tiny_config.recognizer, 3, seed=0), tiny_config.recognizer)
    videos = list(get_dataset("demo").load(tiny_videos).videos)
    train, val = next(v for v in videos if v.split == "train"), next(v for v in videos if v.split == "val")
    chosen = (train, replace(val, path="videos/missing.mp4"), val)
    decoder = BlockDecoder(tiny_videos, chosen, [(0, [0, 1, 2])], 6, *frame_transforms(cfg, dict(cfg)), offsets=3)
    here = decoder[0]
    assert [v.index for v in here.videos] == [0, 2] and [f.index for f in here.failures] == [1]
    assert here.light.pixels.shape == (18 + 6, 3, 32, 32) and here.light.pixels.dtype == torch.uint8
    assert here.light.pixels.untyped_storage().nbytes() == (18 + 6 + 6) * 3 * 32 * 32
    expected = [to_model_input(decode_candidates(tiny_videos, v, 6, n)[0], decoder.models.light_tf) for v, n in ((train, 3), (val, 1))]
    torch.testing.assert_close(here.light.model_input(torch.device("cpu")), torch.cat(expected), rtol=0, atol=0)
    assert not here.light.pixels.is_shared()
    (arrived,) = decoding_loader(decoder, 1)
    assert arrived.light.pixels.is_shared() and arrived.rec is arrived.light
    assert torch.equal(arrived.light.pixels, here.light.pixels)
    monkeypatch.setattr(pipeline.extract, "get_worker_info", lambda: object())  # as in a worker
    assert decoder[0].light.pixels.is_shared()


def test_the_crops_go_to_the_models_device_as_uint8_and_are_rescaled_there(monkeypatch):
    """On a GPU a block's uint8 crops cross to the device, a quarter of the float input's bytes,
    and the rescaling runs there (the meta device stands in for a GPU). On the CPU a pixel
    value v of channel c becomes v * scale_c + shift_c, checked by hand."""
    from pipeline.extract import ModelFrames, Rescale

    pixels = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).reshape(2, 3, 2, 2)
    frames = ModelFrames(pixels, Rescale((1 / 255, 2 / 255, 4 / 255), (-1.0, 0.0, 0.5)))
    moved: list[torch.dtype] = []
    to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *args, **kwargs: moved.append(self.dtype) or to(self, *args, **kwargs))
    on_device = frames.model_input(torch.device("meta"))
    assert on_device.device.type == "meta" and on_device.dtype == torch.float32 and on_device.shape == (2, 3, 2, 2)
    assert moved == [torch.uint8]  # only the crops cross; the scale and shift are made there
    on_cpu = frames.model_input(torch.device("cpu"))
    assert on_cpu.dtype == torch.float32 and on_cpu.is_contiguous()
    assert on_cpu[0, 0, 0, 0].item() == -1.0 and on_cpu[0, 1, 0, 1].item() == pytest.approx(5 * 2 / 255, abs=1e-7)
    assert on_cpu[1, 2, 1, 1].item() == pytest.approx(23 * 4 / 255 + 0.5, abs=1e-7)  # value 23: 1*12 + 2*4 + 1*2 + 1
    assert ModelFrames(on_cpu, None).model_input(torch.device("cpu")) is on_cpu  # another transform's float rows as they are


def test_the_per_video_decoders_hand_over_uint8_crops_that_make_the_same_input(tiny_videos, tiny_config):
    """``nsnet predict``'s observation frames (decoded once, cropped for each model), the chosen
    frames evaluate decodes again, and the all-frames pass's chunks cross from their DataLoader
    worker as uint8 crops with the transform's rescaling (equal to the main process's after the
    crossing), and each model's input made from them equals :func:`to_model_input` bit for bit."""
    from torch.utils.data import DataLoader

    from pipeline.extract import BothModels, ModelFrames, as_is, eval_steps
    from pipeline.inference import ObservationDecoder
    from pipeline.recognition import ChosenFrameDecoder
    from pipeline.video import open_record
    from stages.all_frames import AllFrameChunks

    tf = frame_transform(data_config(create_model(tiny_config.recognizer, 3, seed=0), tiny_config.recognizer))
    light_tf = frame_transform(data_config(create_model(tiny_config.light, 3, seed=0), tiny_config.light))
    records = [v for v in get_dataset("demo").load(tiny_videos).videos if v.split == "val"][:2]
    sources = [open_record(tiny_videos, r) for r in records]
    chosen = [np.array([0, 2, 3]), np.array([1])]
    observed = [decode_video(tiny_videos, r, 6)[0] for r in records]
    decoders = {
        "observations, light model": (ObservationDecoder([s.path for s in sources], 6, BothModels(light_tf, tf)), observed, light_tf, lambda item: item.light),
        "observations, recognizer": (ObservationDecoder([s.path for s in sources], 6, BothModels(light_tf, tf)), observed, tf, lambda item: item.rec),
        "chosen": (ChosenFrameDecoder(tiny_videos, records, chosen, tf), [s.read(i) for s, i in zip(sources, chosen)], tf, lambda item: item.frames),
        "all frames": (AllFrameChunks(tiny_videos, list(enumerate(records)), tf, None), [s.read(np.arange(s.num_frames)) for s in sources], tf, lambda item: item.frames),
    }
    assert eval_steps(light_tf).crops != eval_steps(tf).crops  # bicubic and bilinear resizes here: a crop each
    for name, (dataset, decoded, transform, frames_of) in decoders.items():
        frames = [frames_of(item) for item in DataLoader(dataset, batch_size=None, num_workers=1, collate_fn=as_is)]
        assert [f.pixels.dtype for f in frames] == [torch.uint8] * 2, name
        assert [f.rescale for f in frames] == [eval_steps(transform).rescale] * 2, name
        assert [len(f) for f in frames] == [len(d) for d in decoded], name
        expected = torch.cat([to_model_input(d, transform) for d in decoded])
        assert torch.equal(ModelFrames.cat(frames).model_input(torch.device("cpu")), expected), name
    one = ObservationDecoder([sources[0].path], 6, BothModels(tf, tf))[0]  # one transform for both: cropped once
    assert one.rec is one.light and torch.equal(one.light.model_input(torch.device("cpu")), to_model_input(observed[0], tf))


class _FramesAtTheResizeSize(torch.utils.data.Dataset):
    """Frames already at the transform's resize size, so the crop is a view of the decoded frames."""

    def __init__(self, transform):
        self.transform = transform

    def __len__(self) -> int:
        return 2

    def __getitem__(self, item: int):
        from pipeline.extract import model_frames

        return model_frames(np.random.default_rng(item).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8), self.transform)


def test_a_crop_that_is_a_view_of_the_decoded_frames_crosses_a_worker_whole():
    """Where no resize is needed the crop is a view of the decoder's array (no copy in the
    worker); it crosses to the main process with the values it had there."""
    from torch.utils.data import DataLoader

    from pipeline.extract import as_is

    cfg = {"input_size": (3, 4, 4), "interpolation": "bicubic", "mean": (0.5, 0.25, 0.0), "std": (0.5, 0.25, 1.0), "crop_pct": 0.5, "crop_mode": "center"}
    dataset = _FramesAtTheResizeSize(frame_transform(cfg))  # shorter side 8 already, centre crop 4
    here = [dataset[i] for i in range(2)]
    assert not here[0].pixels.is_contiguous() and here[0].pixels.untyped_storage().nbytes() == 3 * 8 * 10 * 3
    arrived = list(DataLoader(dataset, batch_size=None, num_workers=1, collate_fn=as_is))
    assert all(torch.equal(a.pixels, b.pixels) and a.rescale == b.rescale for a, b in zip(here, arrived))
    assert torch.equal(arrived[1].pixels[0, :, 0, 0], torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)[0, 2, 3]))


def test_frames_of_different_preprocessings_do_not_make_one_batch():
    from pipeline.extract import ModelFrames, Rescale

    pixels = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    same = ModelFrames.cat([ModelFrames(pixels, Rescale((0.5,), (1.0,))), ModelFrames(pixels + 1, Rescale((0.5,), (1.0,)))])
    assert same.pixels.shape == (4, 3, 4, 4) and same.model_input(torch.device("cpu"))[2:].unique().tolist() == [1.5]
    with pytest.raises(ValueError, match="2 different preprocessings"):
        ModelFrames.cat([ModelFrames(pixels, Rescale((0.5,), (1.0,))), ModelFrames(pixels, Rescale((0.5,), (0.0,)))])
    with pytest.raises(ValueError, match="2 different preprocessings"):
        ModelFrames.cat([ModelFrames(pixels, Rescale((0.5,), (1.0,))), ModelFrames(pixels.float(), None)])


def test_both_models_crops_go_to_the_device_as_they_are_once_and_rows_are_picked_there(monkeypatch):
    """The features stage's blocks and predict's batches: each model's crops are copied to the
    device as they are (pinned on a GPU, so asynchronously: a join or a pick on the host would
    make a pageable copy first), crops the two models share once, and rows are picked where
    the crops lie."""
    from pipeline.extract import ModelFrames, Rescale, both_moved

    pixels = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).reshape(4, 3, 2, 2)
    light, rescale = ModelFrames(pixels, Rescale((0.5,), (1.0,))), Rescale((2.0,), (0.0,))
    own, alike = ModelFrames(pixels + 1, rescale), ModelFrames(pixels, rescale)
    copied: list[torch.Tensor] = []
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *args, **kwargs: copied.append(self) or self)

    def to_gpu(frames: ModelFrames) -> ModelFrames:
        return frames.on(torch.device("cuda"))

    moved = both_moved(light, own, to_gpu)
    assert [id(c) for c in copied] == [id(pixels), id(own.pixels)] and moved[1].rescale == rescale
    copied.clear()
    moved = both_moved(light, alike, to_gpu)  # crops alike: one copy, each model its rescaling
    assert [id(c) for c in copied] == [id(pixels)] and moved[1].pixels is moved[0].pixels and moved[1].rescale == rescale
    copied.clear()
    moved = both_moved(light, light, to_gpu)  # one preprocessing for both
    assert [id(c) for c in copied] == [id(pixels)] and moved[1] is moved[0]
    monkeypatch.undo()
    picked = own.rows(np.array([3, 0]))
    assert torch.equal(picked.pixels, own.pixels[[3, 0]]) and picked.rescale == rescale
    assert picked.model_input(torch.device("cpu"))[0, 0, 0, 0].item() == (36 + 1) * 2.0


def test_a_transform_whose_frame_size_varies_is_refused_naming_the_video(tiny_videos):
    """A block's frames share one tensor, so its videos must come out of the transform at one
    size (timm's eval transforms crop to one). A transform that does not is refused with the
    video it failed on, not with a copy error out of torch."""
    sizes = iter([(32, 32), (24, 40)])

    def varying(frames: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(frames, size=next(sizes))

    videos = [v for v in get_dataset("demo").load(tiny_videos).videos if v.split == "val"][:2]
    decoder = BlockDecoder(tiny_videos, tuple(videos), [(0, [0, 1])], 4, varying, varying)
    with pytest.raises(ValueError, match=rf"{re.escape(str(tiny_videos / videos[1].path))}: preprocessed to frames of \(3, 24, 40\) where the videos before it in its block gave \(3, 32, 32\)"):
        decoder[0]


def test_short_videos_are_repeat_spliced_in_the_cache(tiny_videos, tiny_config, run_options):
    summary = run_features("demo", tiny_videos, replace(tiny_config, num_frames=30), run_options)
    with FeatureCache(Path(summary.cache)) as cache:
        counts, indices = cache["num_frames"][:], cache["frame_indices"][:]
    short = np.flatnonzero(counts < 30)
    assert short.size > 0
    for i in short:
        assert indices[i].tolist() == [k % counts[i] for k in range(30)]


def test_rerun_does_nothing_and_changed_config_gets_a_new_cache(tiny_videos, tiny_config, run_options):
    first = run_features("demo", tiny_videos, tiny_config, run_options)
    before = {p: p.stat().st_mtime_ns for p in Path(first.cache).rglob("*") if p.is_file() and "locks" not in p.parts}
    again = run_features("demo", tiny_videos, tiny_config, run_options)
    assert again.cache == first.cache and again.computed == 0 and again.skipped == 12
    after = {p: p.stat().st_mtime_ns for p in Path(first.cache).rglob("*") if p.is_file() and "locks" not in p.parts}
    assert after == before
    changed = run_features("demo", tiny_videos, replace(tiny_config, num_frames=4), run_options)
    assert changed.cache != first.cache and changed.computed == 12
    seeded = run_features("demo", tiny_videos, replace(tiny_config, seed=1), run_options)
    assert seeded.cache not in (first.cache, changed.cache)


def test_a_caches_batch_and_shard_sizes_are_its_own_and_said_where_asked_otherwise_or_dealt_unevenly(tiny_videos, tiny_config, run_options):
    first = run_features("demo", tiny_videos, tiny_config, run_options)  # 2 videos a model batch, 4 a shard
    left_out = replace(run_options, videos_per_batch=None, videos_per_shard=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_features("demo", tiny_videos, tiny_config, left_out).computed == 0  # the cache's own
        assert run_features("demo", tiny_videos, tiny_config, replace(run_options, videos_per_shard=3)).computed == 0  # 3 is 4 in whole batches of 2
    with pytest.warns(RuntimeWarning, match=re.escape(f"{first.cache}: made with 2 videos a model batch and 4 a shard, fixed at its creation: --videos-per-shard 2 changes nothing (a cache of other sizes: another --cache, or this one deleted)")):
        assert run_features("demo", tiny_videos, tiny_config, replace(run_options, videos_per_shard=2)).computed == 0
    with pytest.warns(RuntimeWarning, match=r"fixed at its creation: --videos-per-batch 8 and --videos-per-shard 256 change nothing"):
        assert plan_features("demo", tiny_videos, tiny_config, replace(run_options, videos_per_batch=8, videos_per_shard=256)).to_compute == 0
    with FeatureCache(Path(first.cache)) as cache:
        assert (cache.attrs["videos_per_batch"], cache.attrs["videos_per_shard"]) == (2, 4)
    other = replace(tiny_config, num_frames=5)  # another cache
    uneven = replace(run_options, videos_per_batch=1, videos_per_shard=4, shard=(0, 4))  # its 3 shards among 4 jobs
    said = re.escape("3 shards of 4 videos among 4 writers (--shard jobs times torchrun ranks): the busiest writes 4 videos where an even split is 3, so the run takes about 1.3 times as long as an even one; with --videos-per-shard 3 the busiest would write 3, and left out a size that evens them is taken (fixed when a cache is made: give it to the run that makes it)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plan_features("demo", tiny_videos, other, replace(uneven, videos_per_shard=3)).to_compute == 3
    with pytest.warns(RuntimeWarning, match=said):
        assert plan_features("demo", tiny_videos, other, uneven).to_compute == 4
    with pytest.warns(RuntimeWarning, match=said):
        assert run_features("demo", tiny_videos, other, uneven).computed == 4
    evened = replace(uneven, videos_per_shard=None)  # left out: 256, one shard for 4 jobs, made 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plan_features("demo", tiny_videos, replace(tiny_config, num_frames=3), evened).to_compute == 3
        made = run_features("demo", tiny_videos, replace(tiny_config, num_frames=3), evened)
    assert made.computed == 3
    with FeatureCache(Path(made.cache)) as cache:
        assert (cache.attrs["videos_per_batch"], cache.attrs["videos_per_shard"], cache["light_features"].shards[0]) == (1, 3, 3)
    made = run_features("demo", tiny_videos, replace(tiny_config, num_frames=4), left_out)  # a new cache: 8 and 256
    with FeatureCache(Path(made.cache)) as cache:
        assert (cache.attrs["videos_per_batch"], cache.attrs["videos_per_shard"]) == (8, 256)


def test_a_dry_run_loads_each_checkpoint_into_its_model_as_the_run_would(tiny_videos, tiny_config, run_options, tmp_path, monkeypatch):
    """``--dry-run`` refused a model name timm does not know, but took a checkpoint that does not
    fit its model (a recognizer's given as the light model's weights) as the run would take it,
    which refused it (before 2026-12-07): it is loaded into its model now, as are ImageNet
    weights looked for where the hub is unreachable, wherever the run would build the models."""
    from pipeline.checkpoints import WeightsError
    from pipeline.models import hub_reachable

    rec = tiny_config.recognizer
    torch.save(create_model(rec, 3, seed=7).state_dict(), tmp_path / "recognizer.pth")
    fits = replace(tiny_config, recognizer=replace(rec, weights=str(tmp_path / "recognizer.pth")))
    assert plan_features("demo", tiny_videos, fits, run_options).to_compute == 12
    swapped = replace(fits, light=replace(tiny_config.light, weights=str(tmp_path / "recognizer.pth")))
    refusal = re.escape(f"{tmp_path / 'recognizer.pth'}: does not fit {tiny_config.light.name} (")
    with pytest.raises(WeightsError, match=refusal):
        plan_features("demo", tiny_videos, swapped, run_options)
    with pytest.raises(WeightsError, match=refusal):  # as the run refuses it
        run_features("demo", tiny_videos, swapped, run_options)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    hub_reachable.cache_clear()
    try:
        with pytest.raises(WeightsError, match=re.escape(f"{rec.name}: ImageNet weights are not in the local cache and the model hub is unreachable. Pass a local checkpoint")):
            plan_features("demo", tiny_videos, replace(tiny_config, recognizer=replace(rec, weights="imagenet")), run_options)
    finally:
        hub_reachable.cache_clear()
    run_features("demo", tiny_videos, fits, run_options)
    monkeypatch.setattr("stages.features.build_recognizer", lambda *args: pytest.fail("a finished cache's run builds no model"))
    assert plan_features("demo", tiny_videos, fits, run_options).to_compute == 0


def test_explicit_cache_with_another_config_is_refused(tiny_videos, tiny_config, run_options, tmp_path):
    path = tmp_path / "mine.zarr"
    run_features("demo", tiny_videos, tiny_config, run_options, cache_path=path)
    with pytest.raises(CacheError, match="built with another configuration"):
        run_features("demo", tiny_videos, replace(tiny_config, num_frames=4), run_options, cache_path=path)
    with FeatureCache(path) as cache:  # untouched
        assert cache["light_features"].shape[1] == tiny_config.num_frames


def test_hdf5_has_the_same_schema_and_values(tiny_videos, tiny_config, run_options):
    zarr_summary = run_features("demo", tiny_videos, tiny_config, run_options)
    h5_summary = run_features("demo", tiny_videos, replace(tiny_config, storage="hdf5"), run_options)
    assert h5_summary.cache.endswith(".h5") and not Path(h5_summary.cache + ".staging.zarr").exists()
    with FeatureCache(Path(zarr_summary.cache)) as z, FeatureCache(Path(h5_summary.cache)) as h:
        for name in ARRAY_NAMES:
            # HDF5 keeps a chunk per video (for tools that read one video at a time)
            assert h[name].dtype == z[name].dtype and h[name].chunks == (1,) + z[name].shape[1:]
            np.testing.assert_array_equal(h[name][:], z[name][:])
        assert h.attrs["manifest"] == z.attrs["manifest"]
    with pytest.warns(RuntimeWarning, match=re.escape(f"{h5_summary.cache}: made with 2 videos a model batch and 4 a shard, fixed at its creation: --videos-per-batch 1 changes nothing")):
        again = run_features("demo", tiny_videos, replace(tiny_config, storage="hdf5"), replace(run_options, videos_per_batch=1))
    assert again.computed == 0 and again.done == 12


def test_two_shards_fill_one_store_identical_to_a_single_run(tiny_videos, tiny_config, run_options, tmp_path):
    single = run_features("demo", tiny_videos, tiny_config, run_options, cache_path=tmp_path / "single.zarr")
    with pytest.warns(RuntimeWarning, match=r"3 shards of 4 videos among 2 writers \(--shard jobs times torchrun ranks\): the busiest writes 8 videos where an even split is 6"):
        first = run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 2)), cache_path=tmp_path / "sharded.zarr")
    assert not first.complete and first.done == 8 and first.pending == 4  # shards of 4 videos, alternating
    second = run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(1, 2)), cache_path=tmp_path / "sharded.zarr")
    assert second.complete and second.computed == 4
    with FeatureCache(Path(single.cache)) as a, FeatureCache(Path(second.cache)) as b:
        for name in ARRAY_NAMES:
            np.testing.assert_array_equal(a[name][:], b[name][:])


def _make_blocking_video(root: Path, manifest_name: str) -> Path:
    """Turn one video of the set into a frame folder whose only frame is a FIFO: decoding it
    blocks until someone writes, so a run can be killed at a known point."""
    folder = root / "videos" / manifest_name
    folder.mkdir()
    os.mkfifo(folder / "img_00001.png")
    return folder


def test_sigkill_then_resume_equals_an_uninterrupted_run(tiny_videos, tmp_path, onnx_exports):
    # the 8th video (index 7) becomes a frame folder; in the killed run its frame is a FIFO
    lines = (tiny_videos / "manifest.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    path, label, split = rows[7].split(",")
    rows[7] = f"videos/blocker,{label},{split}"
    (tiny_videos / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")
    from PIL import Image

    real_frame = np.full((32, 32, 3), 90, dtype=np.uint8)
    reference_root = tmp_path / "reference_videos"
    shutil.copytree(tiny_videos, reference_root)
    (reference_root / "videos" / "blocker").mkdir()
    Image.fromarray(real_frame).save(reference_root / "videos" / "blocker" / "img_00001.png")
    folder = _make_blocking_video(tiny_videos, "blocker")

    args = ["--workers", "0", "--videos-per-batch", "1", "--videos-per-shard", "2"]
    cache = tmp_path / "cache"
    proc = _cli(*_tiny_args(tiny_videos, cache, onnx_exports, *args), cwd=REPO)
    store = None
    deadline = time.time() + 120
    while time.time() < deadline:
        stores = list((cache / "demo").glob("*.zarr")) if (cache / "demo").exists() else []
        if stores and (stores[0] / "status" / "c" / "2").exists():  # shards of videos 0..5 done, 7 blocks
            store = stores[0]
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    assert store is not None, "run never reached the blocking video"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with FeatureCache(store) as partial:
        status = partial["status"][:]
    assert status[:6].tolist() == [DONE] * 6 and status[6:].tolist() == [0] * 6  # video 6 waits for its shard-mate

    os.remove(folder / "img_00001.png")
    Image.fromarray(real_frame).save(folder / "img_00001.png")
    resumed = _cli(*_tiny_args(tiny_videos, cache, onnx_exports, *args), cwd=REPO)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "computed this run           6" in out and "skipped (already in cache)  6" in out

    reference = _cli(*_tiny_args(reference_root, tmp_path / "ref_cache", onnx_exports, *args), cwd=REPO)
    out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out
    (ref_store,) = (tmp_path / "ref_cache" / "demo").glob("*.zarr")
    assert ref_store.name == store.name  # same fingerprint: same manifest and config
    with FeatureCache(store) as a, FeatureCache(ref_store) as b:
        for name in ARRAY_NAMES:
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


def test_the_decoders_are_as_many_as_the_shared_memory_holds_blocks_for(tiny_videos, tiny_config, monkeypatch, tmp_path):
    """A block's bytes are its tensor's; a default count is lowered with a warning where the free
    shared memory (shared by a node's ranks) does not hold 3 blocks a decoder, --workers refused."""
    from pipeline.extract import workers_within_shared_memory

    cfg = data_config(create_model(tiny_config.recognizer, 3, seed=0), tiny_config.recognizer)
    videos = get_dataset("demo").load(tiny_videos).videos
    decoder = BlockDecoder(tiny_videos, videos, [(0, [0, 1]), (1, [2])], 6, *frame_transforms(cfg, cfg))
    assert decoder.largest_block_bytes(cfg["input_size"], cfg["input_size"]) == 12 * 3 * 32 * 32 == decoder[0].light.pixels.untyped_storage().nbytes()
    mib = 2**20
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=1024 * mib, used=924 * mib, free=100 * mib))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert workers_within_shared_memory(1, 19 * mib, asked=True, shm=tmp_path) == 1  # (100 - 2 x 19) // 57 = 1
    with pytest.warns(RuntimeWarning, match=rf"^decoding processes lowered from 14 to 1: each holds up to 3 decoded batches of 19 MiB in shared memory and {re.escape(str(tmp_path))} has 100 MiB free for this process, room for 1"):
        assert workers_within_shared_memory(14, 19 * mib, asked=False, shm=tmp_path) == 1
    with pytest.raises(ValueError, match=r"^--workers 14: each holds up to 3 decoded batches of 19 MiB .* room for 1; lower --workers, or give .* more room \(docker run --shm-size\)$"):
        workers_within_shared_memory(14, 19 * mib, asked=True, shm=tmp_path)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks: 50 MiB each, no room for a decoder
    with pytest.warns(RuntimeWarning, match="lowered from 2 to 0"):
        assert workers_within_shared_memory(2, 19 * mib, asked=False, shm=tmp_path) == 0
    assert workers_within_shared_memory(0, 19 * mib, asked=True, shm=tmp_path) == 0
    assert workers_within_shared_memory(2, 0, asked=False, shm=tmp_path) == 2  # nothing to hold (no frames)
    assert workers_within_shared_memory(3, 19 * mib, asked=True, shm=tmp_path / "none") == 3  # no such folder: not checked


def test_failures_are_counted_by_kind_the_most_first():
    """What the run's table says of 20,000 missing Kinetics clips and a few others: one line."""
    reasons = ["file not found"] * 3 + [
        "unfinished download (b.webm.part lies where the video should be): finish or redo it",
        "truncated or corrupt video (decord: ...; pyav: ...)",
        "frame index out of range 0..299",
        "frame index out of range 0..41",
        "label(s) not in the class list: foo, bar",
        "label(s) not in the class list: baz",
    ]
    assert failure_kinds(reasons) == [
        ("file not found", 3),
        ("frame index out of range N..N", 2),
        ("label(s) not in the class list", 2),
        ("truncated or corrupt video", 1),
        ("unfinished download", 1),
    ]


def test_bad_inputs_are_recorded_and_the_rest_finishes(tiny_videos, tmp_path, onnx_exports):
    lines = (tiny_videos / "manifest.csv").read_text().splitlines()
    rows = lines[1:]
    label = rows[0].split(",")[1]
    (tiny_videos / "videos" / "empty.mp4").write_bytes(b"")
    (tiny_videos / "videos" / "notes.mp4").write_text("meeting notes, not a video")
    good = tiny_videos / rows[0].split(",")[0]
    (tiny_videos / "videos" / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    shutil.copy(good, tiny_videos / "videos" / "relabelled.mp4")
    (tiny_videos / "videos" / "frames_bad").mkdir()
    (tiny_videos / "videos" / "frames_bad" / "img_00001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    extra = [
        f"videos/missing.mp4,{label},train",
        f"videos/empty.mp4,{label},train",
        f"videos/notes.mp4,{label},train",
        f"videos/cut.mp4,{label},val",
        f"videos/frames_bad,{label},val",
        "videos/relabelled.mp4,no_such_class,train",
    ]
    (tiny_videos / "manifest.csv").write_text("\n".join(lines[:1] + rows + extra) + "\n")
    cache = tmp_path / "cache"
    proc = _cli(*_tiny_args(tiny_videos, cache, onnx_exports), cwd=REPO)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    assert "6 video(s) failed" in out
    assert re.search(r"\nfailed, by reason +empty file 1, file not found 1, label\(s\) not in the class list 1, not a video file 1 \(\+2 more reasons\)\n", out)
    (failures_file,) = (cache / "demo").glob("*.failures.jsonl")
    reasons = {r["path"]: r["reason"] for r in map(json.loads, failures_file.read_text().splitlines())}
    assert "file not found" in reasons["videos/missing.mp4"]
    assert "empty file" in reasons["videos/empty.mp4"]
    assert reasons["videos/notes.mp4"].startswith("not a video file (")
    assert reasons["videos/cut.mp4"].startswith("truncated or corrupt video (")
    assert not any("\n" in r or ".cc:" in r for r in reasons.values())
    assert "unreadable frame image" in reasons["videos/frames_bad"]
    assert any("not in the class list: no_such_class" in r for r in reasons.values())
    (store,) = (cache / "demo").glob("*.zarr")
    with FeatureCache(store) as c:
        status = c["status"][:]
    assert (status == DONE).sum() == 12 and (status == FAILED).sum() == 5
    # accepted with --allow-failures; nothing is recomputed, the failures are still reported
    again = _cli(*_tiny_args(tiny_videos, cache, onnx_exports, "--allow-failures"), cwd=REPO)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert "computed this run           0" in out and "failed                      6" in out


def test_a_second_writer_on_the_same_shard_is_refused(tiny_videos, tiny_config, run_options, tmp_path):
    path = tmp_path / "locked.zarr"
    with pytest.warns(RuntimeWarning, match="3 shards of 4 videos among 2 writers"):
        run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(1, 2)), cache_path=path)
    with file_lock(path / "locks" / "shard-0-of-2.lock"):
        with pytest.raises(CacheError, match="another writer holds this lock"):
            run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 2)), cache_path=path)
    assert run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 2)), cache_path=path).complete


def test_a_writer_dividing_the_cache_otherwise_at_work_now_is_refused(tiny_videos, tiny_config, run_options, tmp_path, monkeypatch):
    """``--shard i/4`` jobs beside ``--shard i/2`` ones, or a run of the whole cache beside them,
    wrote the same shards, each computing them (before 2026-12-07): a writer of another count at
    work now is refused, one of the same count and another share is not, nor one that has finished.
    The locks are probed as Linux's NFS client allows: an exclusive ``flock`` on a file opened for
    writing alone (it refuses one opened for reading with ``EBADF``)."""
    import errno
    import fcntl

    def as_nfs(handle, operation, lock=fcntl.flock):
        if operation & fcntl.LOCK_EX and not handle.writable():
            raise OSError(errno.EBADF, "Bad file descriptor")
        return lock(handle, operation)

    monkeypatch.setattr("pipeline.cache.fcntl.flock", as_nfs)
    path = tmp_path / "divided.zarr"
    run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 3), videos_per_shard=4), cache_path=path)  # 3 shards of 4: share 0's done
    def refused(held: str, theirs: str, share: tuple[int, int], mine: str) -> None:
        with file_lock(path / "locks" / held), pytest.raises(CacheError, match=re.escape(f"{held}: {theirs} writes this store now (pid {os.getpid()} on ") + r".*" + re.escape(f"), whose shards and this job's ({mine}) overlap; wait for it to finish, or divide the store as it does")):
            run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=share), cache_path=path)

    refused("shard-1-of-3.lock", "a job dividing it into 3 shares (--shard jobs times torchrun ranks)", (0, 2), "one of 2 shares")
    refused("shard-1-of-3.lock", "a job dividing it into 3 shares (--shard jobs times torchrun ranks)", (0, 1), "the whole store")
    refused("shard-0-of-1.lock", "a run of the whole store", (1, 3), "one of 3 shares")
    with file_lock(path / "locks" / "shard-1-of-3.lock"):
        assert run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(2, 3)), cache_path=path).computed == 4  # the same count
    whole = run_features("demo", tiny_videos, tiny_config, run_options, cache_path=path)  # the job of 3 finished: share 1's left
    assert whole.complete and whole.computed == 4


def test_a_file_system_without_locks_is_a_clear_error(tiny_videos, tiny_config, run_options, tmp_path, monkeypatch):
    import errno

    def no_locks(handle, operation):  # as flock fails on NFSv3 without lockd, or Lustre without -o flock
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("pipeline.cache.fcntl.flock", no_locks)
    with pytest.raises(CacheError, match=r"nfs\.zarr\.create\.lock: this file system cannot lock files \(No locks available\); put the cache where flock works"):
        run_features("demo", tiny_videos, tiny_config, run_options, cache_path=tmp_path / "nfs.zarr")


@pytest.mark.parametrize("storage", ["zarr", "hdf5"])
def test_torchrun_two_ranks_fill_one_store(tiny_videos, tmp_path, tiny_config, run_options, storage, onnx_exports):
    """Two ranks fill one store, the shards of 4 videos divided between them, with the rows of
    one process; run again after a file of the second rank's share changed, they compute it
    together (a finished HDF5 cache: the rank with nothing to compute had left, and the other
    waited for it at the end until the time limit)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cache = tmp_path / "cache"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", *_tiny_args(tiny_videos, cache, onnx_exports, "--workers", "1", "--storage", storage, "--videos-per-batch", "2", "--videos-per-shard", "4")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("done / pending") == 1  # one summary, from rank 0
    assert re.search(r"^computed this run +12$", proc.stdout, re.M), proc.stdout  # both ranks' videos
    (store,) = (cache / "demo").glob("*.zarr" if storage == "zarr" else "*.h5")
    assert not list((cache / "demo").glob("*.staging.zarr"))
    single = run_features("demo", tiny_videos, tiny_config, run_options, cache_path=tmp_path / "single.zarr")
    with FeatureCache(store) as a, FeatureCache(Path(single.cache)) as b:
        assert a["status"][:].tolist() == [DONE] * 12
        for name in ("frame_indices", "num_frames", "rec_logits"):
            np.testing.assert_allclose(a[name][:], b[name][:], rtol=1e-5, atol=1e-5)
    files = demo_files(tiny_videos)
    shutil.copyfile(files[0], files[5])  # shard 1: rank 1's
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"^computed this run +1$", again.stdout, re.M) and re.search(r"^computed again \(file changed\) +1 ", again.stdout, re.M) and re.search(r"^skipped \(already in cache\) +11$", again.stdout, re.M), again.stdout  # rank 1's, said by rank 0
    assert not list((cache / "demo").glob("*.staging.zarr"))
    with FeatureCache(store) as a:
        assert a["status"][:].tolist() == [DONE] * 12 and a["source_sizes"][5] == files[0].stat().st_size
        np.testing.assert_allclose(a["rec_logits"][5], a["rec_logits"][0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sharded", [False, True], ids=["a file per video (before sharding)", "shards with a chunk per video (before 2026-12-02)"])
def test_a_store_in_an_earlier_layout_is_read_and_completed(tiny_videos, tiny_config, run_options, tmp_path, sharded):
    """Stores written in an earlier layout — a file per video per array and no
    ``videos_per_shard``, or shards of per-video chunks, and no ``source_sizes`` (before
    2026-12-05) — stay readable and are completed in their own layout, with the same values;
    the source sizes of the videos computed then are recorded, those before not."""
    import zarr

    from pipeline.cache import NOT_RECORDED, PENDING, store_files

    reference = Path(run_features("demo", tiny_videos, tiny_config, run_options, cache_path=tmp_path / "new.zarr").cache)
    old = tmp_path / "old.zarr"
    group = zarr.open_group(str(old), mode="w")
    with FeatureCache(reference) as src:
        for name in set(ARRAY_NAMES) - {"source_sizes"}:
            values = src[name][:]
            values[5:] = PENDING if name == "status" else 0  # videos 5.. never written
            shards = (4,) + values.shape[1:] if sharded else None
            group.create_array(name, shape=values.shape, chunks=(1,) + values.shape[1:], shards=shards, dtype=values.dtype, fill_value=0)[:] = values
        group.attrs.update({k: v for k, v in src.attrs.items() if sharded or k != "videos_per_shard"})
        assert src["light_features"].chunks[0] == 4  # today's: a chunk per shard of 4
    with FeatureCache(old) as c:
        assert c["status"][:].tolist() == [DONE] * 5 + [PENDING] * 7 and c["light_features"].chunks[0] == 1
        assert c["light_features"].shards == ((4,) + c["light_features"].shape[1:] if sharded else None)
    resumed = run_features("demo", tiny_videos, tiny_config, replace(run_options, videos_per_shard=None), cache_path=old)  # the store's own sizes (before sharding: blocks of 2)
    assert resumed.complete and resumed.computed == 7 and resumed.skipped == 5
    assert store_files(old)["light_features"] == (3 if sharded else 12) and store_files(reference)["light_features"] == 3
    with FeatureCache(old) as a, FeatureCache(reference) as b:
        assert a["light_features"].chunks[0] == 1 and a["source_sizes"].chunks[0] == 1  # completed in its own layout
        for name in ARRAY_NAMES:
            mine, theirs = a[name][:], b[name][:]
            if name == "source_sizes":  # the videos finished before it was recorded: its shard's others computed alone
                assert mine[:5].tolist() == [NOT_RECORDED] * 5 and (theirs > 0).all()
                mine, theirs = mine[5:], theirs[5:]
            np.testing.assert_array_equal(mine, theirs, err_msg=name)


def test_decoding_workers_default_to_one_per_eight_cpu_cores_and_all_cores_but_two_on_a_gpu(monkeypatch):
    from pipeline.extract import decoding_workers, per_video_workers

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for cores, cpu, gpu in ((1, 1, 2), (2, 1, 2), (4, 1, 2), (8, 1, 6), (16, 2, 14), (63, 7, 61)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert (decoding_workers(None, torch.device("cpu")), decoding_workers(None, torch.device("cuda", 0))) == (cpu, gpu)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # 63 cores shared by 4 torchrun ranks: 15 each
    assert decoding_workers(None, torch.device("cpu")) == 1
    assert decoding_workers(None, torch.device("cuda", 0)) == 13
    # evaluate's and predict's per-video decoders: 2 on the CPU as before, as the features stage on a GPU
    assert (per_video_workers(None, torch.device("cpu")), per_video_workers(None, torch.device("cuda", 0)), per_video_workers(3, torch.device("cuda", 0))) == (2, 13, 3)
    assert decoding_workers(5, torch.device("cpu")) == 5 and decoding_workers(0, torch.device("cuda", 0)) == 0


def test_eval_frames_are_resized_as_uint8_then_normalised():
    """timm's eval transform: its resize and crop run on the uint8 frames (torchvision v2), its
    scaling and normalisation as one multiply-add per channel, (x / 255 - mean) / std written as
    x * (1 / (255 std)) - mean / std. A frame already at the resize's size is only cropped, so its
    values are exact to float rounding; a resized one stays within rounding of the float path."""
    from torchvision.transforms import Compose, Lambda, v2

    from pipeline.extract import eval_steps

    cfg = {"input_size": (3, 4, 4), "interpolation": "bicubic", "mean": (0.5, 0.25, 0.0), "std": (0.5, 0.25, 1.0), "crop_pct": 0.5, "crop_mode": "center"}
    tf = frame_transform(cfg)  # shorter side to 8, centre crop 4
    steps = eval_steps(tf)
    assert [type(s) for s in steps.geometry.transforms] == [v2.Resize, v2.CenterCrop]
    assert steps.rescale.scale == pytest.approx((2 / 255, 4 / 255, 1 / 255), rel=1e-12)
    assert steps.rescale.shift == (-1.0, -1.0, 0.0)
    frame = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(1, 8, 8, 3)
    out = to_model_input(frame, tf)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 4, 4) and out.is_contiguous()
    crop = frame[0, 2:6, 2:6].transpose(2, 0, 1) / 255.0  # [3, 4, 4]
    expected = (crop - np.array([0.5, 0.25, 0.0])[:, None, None]) / np.array([0.5, 0.25, 1.0])[:, None, None]
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=0, atol=1e-6)
    assert out[0, 0, 0, 0].item() == pytest.approx(2 * (8 * 2 + 2) * 3 / 255 - 1, abs=1e-7)  # pixel (2, 2), red: 54
    yy, xx = np.mgrid[0:16, 0:12]
    smooth = np.stack([xx * 20, yy * 15, xx * 5 + yy * 5], axis=-1).astype(np.uint8)[None]  # resized 12 -> 8
    by_float = tf(torch.from_numpy(smooth).permute(0, 3, 1, 2).float() / 255.0)
    assert (to_model_input(smooth, tf) - by_float).abs().mul(torch.tensor([0.5, 0.25, 1.0])[:, None, None]).max() <= 1.5 / 255
    # any other transform takes the frames scaled to [0, 1] whole
    assert eval_steps(lambda x: x) is None
    flipped = Compose([*tf.transforms, Lambda(lambda x: x.flip(-1))])
    assert eval_steps(flipped) is None
    torch.testing.assert_close(to_model_input(frame, flipped), out.flip(-1), rtol=0, atol=1e-6)


def test_a_decoder_hung_in_the_main_process_ends_the_run_naming_the_video(tiny_videos, tmp_path, onnx_exports):
    """With --workers 0 (what a /dev/shm too small for workers leaves) a native decoder that hangs
    cannot be stopped: after --decode-timeout the process ends, saying which video and what to
    do, and the shards finished before it are kept."""
    lines = (tiny_videos / "manifest.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    _, label, split = rows[7].split(",")
    rows[7] = f"videos/blocker,{label},{split}"
    (tiny_videos / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")
    _make_blocking_video(tiny_videos, "blocker")
    cache = tmp_path / "cache"
    started = time.perf_counter()
    proc = _cli(*_tiny_args(tiny_videos, cache, onnx_exports, "--workers", "0", "--videos-per-batch", "1", "--videos-per-shard", "2", "--decode-timeout", "2"), cwd=REPO)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3 and time.perf_counter() - started < 100, out
    assert f"{tiny_videos / 'videos' / 'blocker'}: decoder hung (no frames after 2 s; re-encode the file to use it), decoding in the main process" in out
    assert "decode in worker processes (--workers 1 or more" in out
    (store,) = (cache / "demo").glob("*.zarr")
    with FeatureCache(store) as partial:
        assert partial["status"][:6].tolist() == [DONE] * 6  # the shards before the hung video's


def test_a_chunk_damaged_after_it_was_written_is_an_error_naming_the_cache_and_rows(tiny_videos, tiny_config, run_options):
    """A cache chunk whose bytes changed after it was written (a copy cut short, a disk error)
    was decoded by Blosc into other numbers and trained on without a word (before 2026-12-07, the
    fifty-fourth session): each chunk carries a checksum now, CRC-32C in a Zarr store, Fletcher-32
    in an HDF5 file, and a read of a damaged one is an error naming the cache, the array and the
    rows; the other arrays read as they were."""
    import h5py

    from pipeline.cache import REPAIR_FEATURES, read_rows

    zarr_cache = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    h5_cache = Path(run_features("demo", tiny_videos, replace(tiny_config, storage="hdf5"), run_options).cache)
    with FeatureCache(zarr_cache) as cache:
        logits = np.asarray(cache["rec_logits"][:])
    shard = next(p for p in sorted((zarr_cache / "light_features").rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(shard.read_bytes())
    data[32:48] = bytes(b ^ 0xFF for b in data[32:48])  # in the first chunk's compressed bytes, past Blosc's header (the shard's index lies at its end)
    shard.write_bytes(bytes(data))
    with h5py.File(h5_cache, "r") as h5:
        offset = h5["light_features"].id.get_chunk_info(1).byte_offset  # video 1's chunk
    with open(h5_cache, "r+b") as file:
        file.seek(offset + 8)
        file.write(b"\xff" * 8)
    for path, rows in ((zarr_cache, "0:"), (h5_cache, "0:")):
        with FeatureCache(path) as cache:
            with pytest.raises(CacheError, match=rf"{re.escape(str(path))}: light_features\[{rows}\d*\] is damaged \(a chunk's checksum does not match what was written: a copy cut short, or a disk error\); {re.escape(REPAIR_FEATURES)}$"):
                read_rows(cache["light_features"], np.arange(len(logits)))
            np.testing.assert_array_equal(np.asarray(cache["rec_logits"][:]), logits)
