"""The prototypes stage on a tiny feature cache: fitting, storage, idempotency, refusal."""

import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.cache import CacheError, FeatureCache
from pipeline.datasets import get_dataset
from pipeline.prototypes import GuidingScorer
from stages.features import run_features
from stages.prototypes import run_prototypes


def test_prototypes_from_a_cache(tiny_videos, tiny_config, run_options):
    summary = run_features("demo", tiny_videos, tiny_config, run_options)
    result = run_prototypes(Path(summary.cache), GuidingScorer(epsilon=30.0), ground_truth=tiny_videos / "groundtruth.json")
    out = Path(result.path)
    assert result.computed and out.name.startswith(Path(summary.cache).name + ".prototypes-")
    guides = np.load(out / "guides.npz")
    with FeatureCache(Path(summary.cache)) as cache:
        n, t = cache["status"].shape[0], cache["frame_indices"].shape[1]
        rec = np.asarray(cache["rec_features"][:], dtype=np.float32)
    assert guides["g"].shape == (n, t) and np.all((guides["g"] >= 0) & (guides["g"] <= 1))
    scorer = pickle.loads((out / "estimator.pkl").read_bytes())
    assert scorer.get_params()["epsilon"] == 30.0 and scorer.prototypes_.shape == (3, rec.shape[-1])
    labels = np.eye(3, dtype=int)[[v.labels[0] for v in get_dataset("demo").load(tiny_videos).videos]]
    np.testing.assert_allclose(guides["g"], scorer.transform(rec, labels), rtol=1e-6)
    info = json.loads((out / "info.json").read_text())
    assert info["train_videos"] == 9 and info["scored_videos"] == 12 and 0 <= info["salient_ap"] <= 1
    again = run_prototypes(Path(summary.cache), GuidingScorer(epsilon=30.0))
    assert not again.computed and again.path == result.path
    other = run_prototypes(Path(summary.cache), GuidingScorer(epsilon=50.0))
    assert other.computed and other.path != result.path


def test_unfinished_cache_is_refused(tiny_videos, tiny_config, run_options):
    partial = run_features("demo", tiny_videos, tiny_config, replace(run_options, shard=(0, 2)))
    with pytest.raises(CacheError, match="not finished"):
        run_prototypes(Path(partial.cache), GuidingScorer())


def test_block_wise_stage_equals_one_shot_fit(tiny_videos, tiny_config, run_options):
    """Blocks of 5 videos (the 9 training videos split 5 + 4, and the scoring too) give the
    prototypes and guiding scores of one fit on everything, to 1e-6."""
    from pipeline.metrics import multi_hot

    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    result = run_prototypes(features, GuidingScorer(epsilon=30.0), block_videos=5)
    with FeatureCache(features) as cache:
        rec, logits = cache["rec_features"][:], cache["rec_logits"][:]
        videos = cache.attrs["manifest"]["videos"]
    labels = multi_hot([v["labels"] for v in videos], 3)
    train = np.array([v["split"] == "train" for v in videos])
    one_shot = GuidingScorer(epsilon=30.0).fit(rec[train], labels[train], logits=logits[train])
    guides = np.load(Path(result.path) / "guides.npz")
    np.testing.assert_allclose(guides["prototypes"], one_shot.prototypes_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(guides["g"], one_shot.transform(rec, labels), rtol=1e-6, atol=1e-6)


def test_one_process_computes_the_prototypes_at_a_time(tiny_videos, tiny_config, run_options, monkeypatch):
    """A second process set to compute the same prototypes stops at once, naming the first;
    one that finds them finished once it holds the lock takes them; what a killed writer left
    is cleared."""
    from contextlib import contextmanager

    import pipeline.cache
    from pipeline.cache import file_lock, output_lock, output_lock_path
    from stages.prototypes import prototypes_path

    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    with FeatureCache(features) as cache:
        out = prototypes_path(features, GuidingScorer(epsilon=30.0).get_params(), cache.fingerprint)
    with file_lock(output_lock_path(out)):
        with pytest.raises(CacheError, match=r"\.lock: another writer holds this lock \(pid \d+ on .*\); it is computing the same output"):
            run_prototypes(features, GuidingScorer(epsilon=30.0))
    assert not out.exists()
    stale = out.with_name(out.name + ".99999999.tmp")  # a killed writer's partial folder
    (stale / "info.json").parent.mkdir()
    (stale / "info.json").write_text("{")
    first = run_prototypes(features, GuidingScorer(epsilon=30.0))
    assert first.computed and not stale.exists() and json.loads((out / "info.json").read_text()) == first.info
    done = out.with_name("finished-elsewhere")
    out.rename(done)

    @contextmanager
    def finished_while_waiting(path):  # another process finishes them before this one locks
        with output_lock(path):
            done.rename(path)
            yield

    monkeypatch.setattr(pipeline.cache, "output_lock", finished_while_waiting)
    second = run_prototypes(features, GuidingScorer(epsilon=30.0))
    assert not second.computed and second.info == first.info
