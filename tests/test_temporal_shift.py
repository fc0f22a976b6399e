"""Temporal random shift as in TSN (paper A.1): S candidate frames per segment in the cache for
the training videos, their guiding scores, and one candidate per segment drawn every epoch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cache import ARRAY_NAMES, SHIFT_ARRAY_NAMES, FeatureCache
from pipeline.datasets import get_dataset
from pipeline.extract import decode_candidates, to_model_input
from pipeline.metrics import multi_hot
from pipeline.models import FrameEncoder, create_model, data_config, frame_transform
from pipeline.prototypes import GuidingScorer
from pipeline.sampler_training import CachedClips
from pipeline.sampling import candidate_frame_indices, uniform_frame_indices
from stages.features import cache_identity, run_features
from stages.prototypes import run_prototypes


def test_candidate_frames_by_hand():
    # 48 frames, T=4 segments of 12, S=3: candidates at 1/6, 1/2 and 5/6 of each segment
    assert candidate_frame_indices(48, 4, 3).tolist() == [[6, 18, 30, 42], [2, 14, 26, 38], [10, 22, 34, 46]]
    assert candidate_frame_indices(48, 4, 1).tolist() == [uniform_frame_indices(48, 4).tolist()]
    # 5 frames, T=4: segments of 1.25 frames; floor((k + s/3 + 1/6) * 5/4)
    assert candidate_frame_indices(5, 4, 3).tolist() == [[0, 1, 3, 4], [0, 1, 2, 3], [1, 2, 3, 4]]
    # shorter than T: repeat-spliced, the same frames in every row
    assert candidate_frame_indices(3, 4, 3).tolist() == [[0, 1, 2, 0]] * 3
    for n in (16, 17, 100, 301):
        assert (candidate_frame_indices(n, 16, 5)[0] == uniform_frame_indices(n, 16)).all()
    with pytest.raises(ValueError, match="must be odd"):
        candidate_frame_indices(48, 4, 2)


def test_each_segment_draws_its_own_candidate_every_epoch():
    t = 4
    centre = np.zeros((1, t, 1), dtype=np.float16)
    views = np.array([[[[1]] * t, [[2]] * t]], dtype=np.float16)  # candidates 1 and 2: values 1, 2
    g, g_views = np.zeros((1, t)), np.array([[[0.1] * t, [0.2] * t]])
    data = CachedClips(centre, g, np.array([[1, 0]]), max_shift=1, seed=3, shift_features=views, shift_g=g_views)
    draws = []
    for epoch in range(30):
        data.set_epoch(epoch)
        x, gx, _ = data[0]
        np.testing.assert_allclose(gx.numpy(), x[:, 0].numpy() / 10, rtol=1e-6)  # features and g move together
        draws.append(x[:, 0].tolist())
        data.set_epoch(epoch)
        assert data[0][0].tolist() == x.tolist()  # seeded by the epoch
    draws = np.array(draws)
    for segment in range(t):  # every candidate of every segment is drawn, independently
        assert set(draws[:, segment]) == {0.0, 1.0, 2.0}
    assert len({tuple(d) for d in draws}) > 10
    with pytest.raises(ValueError, match="go together"):
        CachedClips(centre, g, np.array([[1, 0]]), shift_features=views)


def test_cache_with_three_candidates(tiny_videos, tiny_config, run_options, capsys):
    manifest = get_dataset("demo").load(tiny_videos)
    assert "offsets" not in cache_identity("demo", manifest, tiny_config)  # S=1 caches keep their fingerprints
    plain = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    config = replace(tiny_config, offsets=3)
    shifted = Path(run_features("demo", tiny_videos, config, run_options).cache)
    assert shifted != plain and cache_identity("demo", manifest, config)["offsets"] == 3
    n, t = len(manifest.videos), config.num_frames
    train = np.array([v.split == "train" for v in manifest.videos])
    with FeatureCache(plain) as a, FeatureCache(shifted) as b:
        assert set(a.arrays) == set(ARRAY_NAMES) and set(b.arrays) == set(ARRAY_NAMES + SHIFT_ARRAY_NAMES)
        assert a.offsets == 1 and b.offsets == 3
        for name in ("frame_indices", "num_frames", "status"):  # the centres, as in the plain cache
            assert (a[name][:] == b[name][:]).all()
        for name in ("light_features", "rec_features", "rec_logits"):
            np.testing.assert_allclose(b[name][:].astype(np.float32), a[name][:].astype(np.float32), rtol=2e-3, atol=2e-3)
        assert b["shift_light_features"].shape == (n, 2, t, 256) and b["shift_light_features"].chunks == (b.attrs["videos_per_shard"], 2, t, 256)
        assert b["shift_rec_logits"].shape == (n, 2, t, 3) and b["shift_frame_indices"].shape == (n, 2, t)
        indices, counts = b["shift_frame_indices"][:], b["num_frames"][:]
        for i in range(n):
            expected = candidate_frame_indices(int(counts[i]), t, 3)[1:] if train[i] else np.zeros((2, t))
            assert indices[i].tolist() == expected.tolist()
        assert not b["shift_rec_logits"][:][~train].any()  # validation videos: the centres only
        # a training video's other candidates are what the recognizer gives on those frames
        i = int(np.flatnonzero(train)[4])
        frames, candidates, _, _ = decode_candidates(tiny_videos, manifest.videos[i], t, 3)
        model = create_model(config.recognizer, 3, seed=config.seed + 1)
        x = to_model_input(frames, frame_transform(data_config(model, config.recognizer)))
        with torch.inference_mode():
            _, logits = FrameEncoder(model)(x)
        np.testing.assert_allclose(b["shift_rec_logits"][i], logits.numpy().reshape(3, t, -1)[1:], rtol=1e-4, atol=1e-4)
    again = run_features("demo", tiny_videos, config, run_options)
    assert again.computed == 0 and again.skipped == n

    # prototypes: from the centres alone; every candidate of the training videos scored by them
    # (the progress bar: the training videos fitted, every video scored, the training videos'
    # other candidates scored)
    capsys.readouterr()
    result = run_prototypes(shifted, GuidingScorer())
    assert f"{2 * train.sum() + n}/{2 * train.sum() + n}" in capsys.readouterr().err.split("\r")[-1]
    guides = np.load(Path(result.path) / "guides.npz")
    with FeatureCache(shifted) as cache:
        labels = multi_hot([v.labels for v in manifest.videos], 3)
        scorer = GuidingScorer().fit(cache["rec_features"][:][train], labels[train], logits=cache["rec_logits"][:][train])
        np.testing.assert_allclose(guides["prototypes"], scorer.prototypes_, rtol=1e-12)
        rec, logits = cache["shift_rec_features"][:][train], cache["shift_rec_logits"][:][train]
        expected = scorer.transform(rec.reshape(-1, t, rec.shape[-1]), np.repeat(labels[train], 2, axis=0), logits=logits.reshape(-1, t, 3))
    assert guides["g_shift"].shape == (n, 2, t) and np.isnan(guides["g_shift"][~train]).all()
    np.testing.assert_allclose(guides["g_shift"][train], expected.reshape(-1, 2, t), rtol=1e-6, atol=1e-7)


def test_train_draws_from_the_cached_candidates(tiny_videos, tiny_config, run_options, monkeypatch):
    from pipeline.config import TrainConfig
    from stages.train import epoch_loader, load_sampler_inputs, read_training_features, run_train, training_clips

    features = Path(run_features("demo", tiny_videos, replace(tiny_config, offsets=3), run_options).cache)
    prototypes = Path(run_prototypes(features, GuidingScorer()).path)
    inputs = read_training_features(load_sampler_inputs(features, prototypes), features, prototypes, read_shift=True)
    train = inputs.finished_training()
    assert inputs.shift_light.shape == (len(train), 2, 6, 256) and inputs.shift_g.shape == (len(train), 2, 6)
    clips = training_clips(inputs, TrainConfig())
    seen = np.zeros(3, dtype=bool)
    for epoch in range(8):
        clips.set_epoch(epoch)
        x, g, _ = clips[0]
        views = np.concatenate([inputs.light[0][None], inputs.shift_light[0]]).astype(np.float32)
        gs = np.concatenate([inputs.g[train[0]][None], inputs.shift_g[0]])
        for segment in range(6):  # each segment's frame is one of its three candidates, with its g
            match = [s for s in range(3) if np.array_equal(views[s, segment], x[segment].numpy()) and np.isclose(gs[s, segment], g[segment])]
            assert match
            seen[match] = True
    assert seen.all()
    # held a window of 2 at a time, both candidates' arrays by the same windows: the same items
    monkeypatch.setattr("stages.train.WINDOW_BLOCK", 1)
    windowed = read_training_features(load_sampler_inputs(features, prototypes), features, prototypes, read_shift=True, hold=2)
    assert windowed.shift_light.shape == inputs.shift_light.shape and windowed.shift_light.rows.tolist() == train.tolist()
    in_windows = training_clips(windowed, TrainConfig(shuffle_window=2))
    for epoch in range(2):
        clips.set_epoch(epoch)
        for i in epoch_loader(in_windows, TrainConfig(shuffle_window=2), epoch).sampler:
            for a, b in zip(in_windows[i], clips[i], strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())
    result = run_train(features, prototypes, TrainConfig(epochs=2, batch_size=4), progress=False)
    assert result.trained_epochs == 2 and np.isfinite(result.history[-1]["loss"])


def test_hdf5_export_keeps_the_candidates(tiny_videos, tiny_config, run_options):
    config = replace(tiny_config, offsets=3)
    zarr_cache = Path(run_features("demo", tiny_videos, config, run_options).cache)
    h5_cache = Path(run_features("demo", tiny_videos, replace(config, storage="hdf5"), run_options).cache)
    assert h5_cache.suffix == ".h5"
    with FeatureCache(zarr_cache) as a, FeatureCache(h5_cache) as b:
        assert set(b.arrays) == set(a.arrays) and b.offsets == 3
        for name in SHIFT_ARRAY_NAMES:
            assert (a[name][:] == b[name][:]).all()
