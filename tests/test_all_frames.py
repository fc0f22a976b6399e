"""Table 1's baselines over all frames: the streaming summary by hand, and the cached pass
against the recognizer run on every decoded frame."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from pipeline.all_frames import AllFrameSummary, all_frame_indices
from pipeline.backends import TorchRunner
from pipeline.baselines import random_positions, top_confidence_positions, uniform_positions
from pipeline.cache import CacheError, FeatureCache, file_lock, output_lock_path
from pipeline.config import AllFramesConfig, FeaturesConfig
from pipeline.datasets import Manifest
from pipeline.evaluation import scores_at
from pipeline.models import frame_transform
from conftest import recognize_all
from pipeline.recognition import ChosenFrameDecoder
from stages.all_frames import run_all_frames, store_for
from stages.features import build_recognizer

# softmax rows [.5, .5], [.75, .25], [.1, .9]: confidences .5, .75, .9
HAND = np.log(np.array([[1.0, 1.0], [3.0, 1.0], [1.0, 9.0]]))


def summary_of(logits: np.ndarray, budget: int, chunk: int, seed: int = 0) -> AllFrameSummary:
    summary = AllFrameSummary(len(logits), budget, np.random.default_rng(seed))
    for start in range(0, len(logits), chunk):
        summary.update(logits[start : start + chunk])
    return summary


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_summary_by_hand(chunk):
    summary = summary_of(HAND, budget=2, chunk=chunk)
    scores = summary.scores()
    np.testing.assert_allclose(scores["dense"], [(0.5 + 0.75 + 0.1) / 3, (0.5 + 0.25 + 0.9) / 3], atol=1e-12)
    # UNIFORM: the centres of 2 segments of 3 frames, positions 0 and 2
    np.testing.assert_allclose(scores["uniform"], [(0.5 + 0.1) / 2, (0.5 + 0.9) / 2], atol=1e-12)
    # TOP-K: the two most confident frames, 1 and 2
    np.testing.assert_allclose(scores["topk"], [(0.75 + 0.1) / 2, (0.25 + 0.9) / 2], atol=1e-12)
    assert summary.top_positions().tolist() == [1, 2]
    chosen = random_positions(3, 2, np.random.default_rng(0))
    p = np.array([[0.5, 0.5], [0.75, 0.25], [0.1, 0.9]])
    np.testing.assert_allclose(scores["random"], p[chosen].mean(axis=0), atol=1e-12)


def test_summary_equals_the_baselines_over_the_whole_video():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(53, 7))
    logits[20] = logits[4]  # tied confidences: the earlier frame wins, as top_k does
    logits[40] = logits[11]
    whole = logits[None]
    for budget in (1, 10, 53, 80):
        expected_top = top_confidence_positions(logits, budget)
        for chunk in (1, 7, 64):
            summary = summary_of(logits, budget, chunk, seed=5)
            scores = summary.scores()
            assert summary.top_positions().tolist() == expected_top.tolist()
            np.testing.assert_allclose(scores["topk"], scores_at(whole, [expected_top])[0], atol=1e-12)
            np.testing.assert_allclose(scores["uniform"], scores_at(whole, [uniform_positions(53, budget)])[0], atol=1e-12)
            np.testing.assert_allclose(scores["random"], scores_at(whole, [random_positions(53, budget, np.random.default_rng(5))])[0], atol=1e-12)
            np.testing.assert_allclose(scores["dense"], scores_at(whole, [np.arange(53)])[0], atol=1e-12)


def test_summary_refuses_wrong_lengths():
    summary = AllFrameSummary(3, 2, np.random.default_rng(0))
    summary.update(HAND[:2])
    with pytest.raises(ValueError, match="2 of 3 frames"):
        summary.scores()
    with pytest.raises(ValueError, match="4 frames fed to a summary of 3"):
        summary.update(HAND[:2])
    with pytest.raises(ValueError, match="at least one frame"):
        AllFrameSummary(0, 2, np.random.default_rng(0))


def test_all_frames_at_a_rate():
    assert all_frame_indices(95, 29.97, 1.0).tolist() == [0, 30, 60, 90]
    assert all_frame_indices(5, 29.97, None).tolist() == [0, 1, 2, 3, 4]
    assert all_frame_indices(5, None, 1.0).tolist() == [0, 1, 2, 3, 4]  # a frame folder: no clock
    assert all_frame_indices(4, 8.0, 25.0).tolist() == [0, 1, 2, 3]  # never more than every frame
    with pytest.raises(ValueError, match="rate must be positive"):
        AllFramesConfig(rate=0.0)
    with pytest.raises(ValueError, match="at least 1 frame"):
        AllFramesConfig(budget=0)


def content_fingerprint(features: Path) -> str:
    with FeatureCache(features) as cache:
        return cache.content_fingerprint


def eval_videos(features: Path) -> tuple[np.ndarray, dict, Manifest]:
    with FeatureCache(features) as cache:
        attrs = cache.attrs
    manifest = Manifest.from_json(json.dumps(attrs["manifest"]))
    return np.array([i for i, v in enumerate(manifest.videos) if v.split != "train"]), attrs, manifest


def test_cached_pass_equals_the_recognizer_on_every_frame(tiny_pipeline):
    features, _, truth = tiny_pipeline
    root = truth.parent
    videos, attrs, manifest = eval_videos(features)
    cfg = AllFramesConfig(budget=3, seed=2)
    result = run_all_frames(features, videos, root, cfg, torch.device("cpu"), workers=0, progress=False)
    assert result.computed == len(videos)
    recognizer, data_cfg = build_recognizer(FeaturesConfig.from_dict(attrs["config"]), manifest.classes)
    with FeatureCache(features) as cache:
        counts = np.asarray(cache["num_frames"][:])[videos]
    decoder = ChosenFrameDecoder(root, [manifest.videos[v] for v in videos], [np.arange(n) for n in counts], frame_transform(data_cfg))
    logits, errors = recognize_all(decoder, TorchRunner(recognizer, torch.device("cpu")), torch.device("cpu"), workers=0)
    assert not errors
    assert result.frames.tolist() == counts.tolist()
    for row, frame_logits in enumerate(logits):
        n = len(frame_logits)
        expected = {
            "dense": np.arange(n),
            "uniform": uniform_positions(n, 3),
            "random": random_positions(n, 3, np.random.default_rng([2, row])),
            "topk": top_confidence_positions(frame_logits.astype(np.float64), 3),
        }
        for name, positions in expected.items():
            np.testing.assert_allclose(result.scores[name][row], scores_at([frame_logits], [positions])[0], atol=1e-5)
    again = run_all_frames(features, videos, root, cfg, torch.device("cpu"), workers=0, progress=False)
    assert again.computed == 0 and all((again.scores[n] == result.scores[n]).all() for n in result.scores)


def test_the_pass_decodes_in_the_main_process_where_shared_memory_holds_no_chunk(tiny_pipeline, monkeypatch, tmp_path):
    """A chunk of 64 uint8 crops would not fit a cramped /dev/shm: its decoders drop to none,
    with a warning, and the pass gives what one with a decoder gives."""
    import shutil
    from types import SimpleNamespace

    features, _, truth = tiny_pipeline
    videos, _, _ = eval_videos(features)
    cfg = AllFramesConfig(budget=3, seed=2)
    roomy = run_all_frames(features, videos, truth.parent, cfg, torch.device("cpu"), workers=1, progress=False)
    shutil.rmtree(Path(roomy.path))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=2**26, used=2**26 - 1000, free=1000))
    with pytest.warns(RuntimeWarning, match=r"decoding processes lowered from 1 to 0: each holds up to 3 decoded batches of 0.188 MiB"):
        cramped = run_all_frames(features, videos, truth.parent, cfg, torch.device("cpu"), workers=1, progress=False)
    assert cramped.computed == len(videos) and all(np.array_equal(cramped.scores[n], roomy.scores[n]) for n in roomy.scores)


def test_a_failed_video_is_named_kept_out_and_retried(tiny_pipeline, tmp_path):
    features, _, truth = tiny_pipeline
    videos, _, manifest = eval_videos(features)
    data = tmp_path / "data"
    shutil.copytree(truth.parent, data)
    victim = manifest.videos[videos[1]].path
    (data / victim).rename(data / (victim + ".away"))
    cfg = AllFramesConfig(budget=2)
    with pytest.raises(CacheError, match=f"1 evaluation video.*{Path(victim).name}: file not found"):
        run_all_frames(features, videos, data, cfg, torch.device("cpu"), workers=0, progress=False)
    path, _ = store_for(features, content_fingerprint(features), videos, cfg)
    status = np.asarray(zarr.open_group(str(path), mode="r")["status"][:])
    assert status.tolist() == [1 if row != 1 else 2 for row in range(len(videos))]  # the others are kept
    (data / (victim + ".away")).rename(data / victim)
    resumed = run_all_frames(features, videos, data, cfg, torch.device("cpu"), workers=0, progress=False)
    assert resumed.computed == 1
    fresh = run_all_frames(features, videos, truth.parent, AllFramesConfig(budget=2, rate=None), torch.device("cpu"), workers=0, progress=False)
    assert fresh.computed == 0  # the same store: same cache, videos and config


def test_a_second_writer_is_refused(tiny_pipeline):
    features, _, truth = tiny_pipeline
    videos, _, _ = eval_videos(features)
    cfg = AllFramesConfig()
    path, _ = store_for(features, content_fingerprint(features), videos, cfg)
    with file_lock(output_lock_path(path)):
        with pytest.raises(CacheError, match="another writer holds this lock"):
            run_all_frames(features, videos, truth.parent, cfg, torch.device("cpu"), workers=0, progress=False)


def test_a_full_disk_is_a_clear_error_and_a_rerun_computes_the_pass(tiny_pipeline, monkeypatch):
    import errno

    from pipeline.cache import ZarrWriter

    features, _, truth = tiny_pipeline
    videos, _, _ = eval_videos(features)

    def disk_full(self, start, block, marks):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ZarrWriter, "write_block", disk_full)
    with pytest.raises(CacheError, match=r"\.zarr: no space left on device while writing \([\d.]+ [MG]iB free\); the videos finished before are kept: free space and run the same command again to resume"):
        run_all_frames(features, videos, truth.parent, AllFramesConfig(budget=2), torch.device("cpu"), workers=0, progress=False)
    monkeypatch.undo()
    resumed = run_all_frames(features, videos, truth.parent, AllFramesConfig(budget=2), torch.device("cpu"), workers=0, progress=False)
    assert resumed.computed == len(videos)
