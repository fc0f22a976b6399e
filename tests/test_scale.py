"""Paper scale, in small: a synthetic cache with ActivityNet's shape at 1/200 of its size, through
prototypes (block-wise = one shot), train and evaluate (cached path), and the bench's checks."""

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline import cache as cache_mod
from pipeline.cache import DONE, CacheError, FeatureCache, read_pointer
from pipeline.config import EvalConfig, TrainConfig
from pipeline.metrics import multi_hot
from pipeline.prototypes import GuidingScorer
from pipeline.synthetic import SynthSpec, plan_videos
from stages.bench_scale import ScaleReport, StageRun, _machine, _run_stage
from stages.cli import main
from stages.evaluate import run_evaluate
from stages.prototypes import run_prototypes
from stages.synth_cache import run_synth_cache
from stages.train import run_train

SPEC = SynthSpec("activitynet", fraction=0.005)  # 50 train + 25 val videos, 200 classes


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    result = run_synth_cache(SPEC, tmp_path_factory.mktemp("synth"), progress=False, shard_videos=16)
    return Path(result.path), result


def test_the_cache_has_the_shape_and_attributes_of_a_real_one(synthetic):
    path, result = synthetic
    assert (result.videos, result.train, result.classes) == (75, 50, 200)
    with FeatureCache(path) as cache:
        assert cache["light_features"].shape == (75, 16, 1280) and cache["light_features"].dtype == np.float16
        assert cache["rec_features"].shape == (75, 16, 2048) and cache["rec_features"].dtype == np.float16
        assert cache["rec_logits"].shape == (75, 16, 200) and cache["rec_logits"].dtype == np.float32
        assert cache["light_features"].shards == (16, 16, 1280) and (cache["status"][:] == DONE).all()
        attrs = cache.attrs
        assert {"identity", "config", "manifest", "data_configs", "videos_per_batch", "videos_per_shard", "fingerprint"} <= set(attrs)
        assert attrs["fingerprint"] == cache_mod.fingerprint(attrs["identity"]) and attrs["identity"]["synthetic"]["like"] == "activitynet"
        assert attrs["config"]["light"]["name"] == "mobilenetv2_100" and attrs["config"]["recognizer"]["name"] == "resnet50"
        assert attrs["data_configs"]["recognizer"]["input_size"] == [3, 224, 224]
    assert cache_mod.store_files(path)["light_features"] == 5  # ceil(75 / 16) shard files
    truth = json.loads(path.with_name(path.name + ".groundtruth.json").read_text())
    assert len(truth) == 75 and all(len(v["salient"]) == 16 for v in truth.values())
    assert run_synth_cache(SPEC, path.parent.parent, progress=False, shard_videos=16).computed_shards == 0


@pytest.mark.parametrize(("change", "message"), [
    ({"like": "kinetics"}, "like must be one of .*'ucf101'.*got 'kinetics'"),
    ({"fraction": 0.0}, r"fraction must be in \(0, 1\], got 0.0"),
    ({"seed": -1}, "seed must be at least 0, got -1"),
])
def test_a_synthetic_spec_outside_its_range_is_refused_naming_the_field(change, message):
    """``synth-cache --seed -1`` failed in numpy's seeding, naming nothing (before 2026-12-06)."""
    with pytest.raises(ValueError, match=message):
        SynthSpec(**{"like": "ucf101", **change})


def test_the_planted_structure_is_there():
    """Logits follow the features: the recognizer is right on most salient frames and rarely
    elsewhere; the light view carries the class more weakly; multi-label videos (FCVID) have a
    segment per label."""
    from pipeline.synthetic import generate_rows, make_centres

    spec = SynthSpec("fcvid", fraction=0.01)
    plan = plan_videos(spec)
    rows = generate_rows(spec, plan, make_centres(spec), 0, 400, 0)
    salient = plan.salient[:400]
    label = np.array([v[0] for v in plan.labels[:400]])
    right = rows["rec_logits"].argmax(-1) == label[:, None]
    assert right[salient == 1].mean() > 0.4 and right[salient == 0].mean() < 0.1
    low, high = spec.salient_share
    share = (salient > 0).mean(axis=1)
    assert share.min() >= 1 / 16 and low - 0.05 < share.mean() < high
    multi = np.array([len(v) == 2 for v in plan.labels])
    # a second segment overlapping the first keeps only what the first leaves (the first label wins)
    assert 0.02 < multi.mean() < 0.08 and (plan.salient[multi] == 2).any(axis=1).mean() > 0.75
    centres = make_centres(spec)
    light = rows["light_features"].astype(np.float32)
    rec_margin = np.einsum("ntd,nd->nt", rows["rec_features"].astype(np.float32), centres.rec_class[label])
    light_margin = np.einsum("ntd,nd->nt", light, centres.light_class[label])
    snr = lambda m: (m[salient == 1].mean() - m[salient == 0].mean()) / m[salient == 0].std()  # noqa: E731
    assert 0 < snr(light_margin) < snr(rec_margin)


def test_prototypes_train_evaluate_end_to_end(synthetic):
    path, _ = synthetic
    truth = path.with_name(path.name + ".groundtruth.json")
    result = run_prototypes(path, GuidingScorer(), ground_truth=truth, block_videos=16)
    assert 0 < result.info["salient_share"] < 1 and 0 <= result.info["salient_ap"] <= 1
    with FeatureCache(path) as cache:
        rec, logits = cache["rec_features"][:], cache["rec_logits"][:]
        videos = cache.attrs["manifest"]["videos"]
    labels = multi_hot([v["labels"] for v in videos], 200)
    train = np.array([v["split"] == "train" for v in videos])
    one_shot = GuidingScorer().fit(rec[train], labels[train], logits=logits[train])
    np.testing.assert_allclose(np.load(Path(result.path) / "guides.npz")["g"], one_shot.transform(rec, labels), rtol=1e-6, atol=1e-6)

    cfg = replace(TrainConfig(), epochs=2, batch_size=16)
    trained = run_train(path, Path(result.path), cfg, progress=False, ground_truth=truth, val_every=1)
    assert len(trained.history) == 2 and "AP of s_f vs ground-truth salient frames (val)" in trained.saliency_ap
    report = run_evaluate(path, Path(result.path), Path(trained.path), path.parent, replace(EvalConfig(), curve_k=(1, 5)), progress=False)
    methods = {m["method"]: m for m in report["methods"]}
    # the training's last validation is evaluate's cached NSNet and UNIFORM rows at K=5
    last = trained.history[-1]
    assert (last["val_map"], last["val_top1"]) == pytest.approx((methods["NSNet (K=5)"]["map"], methods["NSNet (K=5)"]["top1"]), abs=1e-9)
    assert (last["val_uniform_map"], last["val_uniform_top1"]) == pytest.approx((methods["UNIFORM (K=5)"]["map"], methods["UNIFORM (K=5)"]["top1"]), abs=1e-9)
    assert report["videos"] == 25 and methods["NSNet (K=5)"]["path"] == "cache"
    assert "DENSE (all frames)" not in methods and "UNIFORM (K=5)" in methods and report["real_vs_cached"] is None
    assert any("synthetic cache (no videos), skipped: NSNet's decoded row" in line for line in report["skipped"])
    g = report["gflops"]  # the paper's models counted: ResNet-50 4.09 G a frame (paper 4.11)
    assert g["rec_per_frame"] == pytest.approx(4.09, abs=0.01) and methods["NSNet (K=5)"]["gflops"] == pytest.approx(5 * g["rec_per_frame"] + g["sampler"])


def test_the_stages_after_features_take_the_caches_own_dataset(synthetic, tmp_path):
    """A cache given as ``--features`` with ``--dataset`` left out was read with the demo's
    configuration (40 epochs, the learning rate dropped at 17 and 25; before 2026-12-07, the
    fifty-fourth session): the cache's own dataset's now, ActivityNet's milestones 50 and 75;
    ``--dataset`` naming another dataset is an error saying whose the cache is. ``nsnet evaluate
    --run`` alone (its ``model.pth`` here) evaluates on the run's own cache and prototypes,
    where it looked for the demo's latest cache."""
    path, _ = synthetic
    quiet = ["--features", str(path), "--cache-dir", str(path.parent), "--no-progress"]
    made = CliRunner().invoke(main, ["prototypes", *quiet])
    assert made.exit_code == 0, made.output
    trained = CliRunner().invoke(main, ["train", *quiet, "--epochs", "1", "--seed", "54", "--val-every", "0"])  # a run of its own: the bench test below trains one epoch too
    assert trained.exit_code == 0, trained.output
    prototypes = read_pointer(path.with_name(path.name + ".latest-prototypes.txt"))
    run = read_pointer(prototypes.with_name(prototypes.name + ".latest-run.txt"))
    assert torch.load(run / "model.pth", weights_only=False)["config"]["milestones"] == (50, 75)
    alone = CliRunner().invoke(main, ["evaluate", "--run", str(run / "model.pth"), "--cache-dir", str(tmp_path), "--nsnet-from-cache", "--no-progress"])
    assert alone.exit_code == 0 and f"report {path}.eval-" in alone.output, alone.output
    for command in (["train", *quiet, "--epochs", "1"], ["evaluate", *quiet, "--nsnet-from-cache"]):
        wrong = CliRunner().invoke(main, [*command, "--dataset", "fcvid"])
        assert wrong.exit_code == 1 and wrong.output.endswith(f"{path}: a feature cache of the 'activitynet' dataset, not 'fcvid': leave --dataset out (the cache's is taken) or give --dataset activitynet\n")


def test_bench_stage_children_show_their_progress_where_asked(synthetic, capsys):
    """What ``bench-scale`` runs in each child: the stage through the CLI's functions, with its own
    progress bar when the bench shows progress."""
    path, _ = synthetic
    prototypes = _run_stage("prototypes", {"features": str(path), "progress": True})["path"]
    args = {"features": str(path), "prototypes": prototypes, "like": "activitynet", "epochs": 1, "without_ns": False, "device": "cpu"}
    capsys.readouterr()
    shown = _run_stage("train", {**args, "progress": True})
    assert "train sampler: 100%" in capsys.readouterr().err and len(shown["loss"]) == 1  # the stage's bar over its one epoch


def test_bench_trains_and_evaluates_on_the_device_asked(monkeypatch, tmp_path):
    """On a GPU machine ``--device auto`` gives the GPU to train and evaluate, as those stages' own
    ``--device auto`` does (the bench ran them on the CPU before, 2026-12-04); asking for CUDA
    where there is none is the stages' clear error."""
    asked = []
    done = SimpleNamespace(path="run", history=[{"seconds": 1.0, "loss": 0.5}], saliency_ap={})
    monkeypatch.setattr("stages.train.run_train", lambda *a, device, **kw: asked.append(("train", device)) or done)
    report = {"methods": [{"method": m, "map": 0.0} for m in ("NSNet (K=5)", "UNIFORM (K=5)", "TOP-K (K=5 of T=16)", "DENSE (T=16)")], "num_frames": 16, "output": "o", "videos": 1, "skipped": 0}
    monkeypatch.setattr("stages.evaluate.run_evaluate", lambda *a, device, **kw: asked.append(("evaluate", device)) or report)
    args = {"features": str(tmp_path / "f.zarr"), "prototypes": "p", "like": "activitynet", "epochs": 1, "without_ns": False, "run": "run", "progress": False}
    _run_stage("train", {**args, "device": "cuda:0"})
    _run_stage("evaluate", {**args, "device": "cuda:0"})
    assert asked == [("train", "cuda:0"), ("evaluate", "cuda:0")]
    if not torch.cuda.is_available():
        result = CliRunner().invoke(main, ["bench-scale", "--device", "cuda", "--cache-dir", str(tmp_path)])
        assert result.exit_code == 1 and "device 'cuda' asked for, but CUDA is not available" in result.output
        assert not (tmp_path / "bench").exists()  # refused before anything was built


def test_bench_checks_files_memory_and_time():
    stages = [StageRun("prototypes", 150.0, 1.5), StageRun("train", 900.0, 3.5), StageRun("evaluate", 100.0, 2.0)]
    files = {"light_features": 59, "rec_features": 59, "metadata": 7, "total": 125}
    report = ScaleReport("activitynet", 1.0, 14_950, 10_024, 200, "c.zarr", 1.0, files, "test", 2, stages)
    checks = dict(report.checks())
    assert checks["cache files per array 59 <= 1 per 100 videos (0.39 per 100)"]
    assert checks["prototypes peak memory 1.50 GiB <= 2.0 GiB"] and checks["prototypes time 2.5 min <= 3.0 min"]
    assert not checks["train peak memory 3.50 GiB <= 3.0 GiB"] and checks["evaluate peak memory 2.00 GiB <= 3.0 GiB"]
    assert len(ScaleReport("activitynet", 0.5, 7475, 5012, 200, "c.zarr", 1.0, files, "test", 2, stages).checks()) == 1  # targets at full size only
    few = {"light_features": 1, "rec_features": 1, "metadata": 7, "total": 9}  # --fraction 0.003 of UCF101: 40 videos, one shard
    assert ScaleReport("ucf101", 0.003, 40, 29, 101, "c.zarr", 0.0, few, "test", 1, stages).checks() == [("cache files per array 1 (40 videos in one shard)", True)]
    spread = {"light_features": 3, "rec_features": 3, "metadata": 7, "total": 13}  # a file per 64 videos
    assert ScaleReport("ucf101", 0.015, 192, 138, 101, "c.zarr", 0.0, spread, "test", 1, stages).checks() == [("cache files per array 3 <= 1 per 100 videos (1.56 per 100)", False)]


def test_the_reports_machine_line_comes_from_the_environment():
    env = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "memory_gib": 23.5, "libraries": {"torch": "2.13.0"}}
    assert _machine(env) == f"Intel(R) Xeon(R) Processor, 2 cores, 24 GiB, torch 2.13.0 on {torch.get_num_threads()} threads"


def test_bench_report_of_a_run_still_going(tmp_path):
    """Written after every stage: a stopped run keeps what it measured, checked as far as it got."""
    files = {"light_features": 357, "metadata": 7, "total": 364}
    report = ScaleReport("fcvid", 1.0, 91_223, 45_611, 239, "c.zarr", 9.5, files, "test", 1, [StageRun("prototypes", 175.0, 0.5)])
    out = tmp_path / "bench" / "scale-fcvid.json"
    report.write(out, complete=False)
    saved = json.loads(out.read_text())
    assert saved["complete"] is False and [s["stage"] for s in saved["stages"]] == ["prototypes"]
    assert [c["check"] for c in saved["checks"]] == [
        "cache files per array 357 <= 1 per 100 videos (0.39 per 100)",
        "prototypes peak memory 0.50 GiB <= 4.0 GiB",
        "prototypes time 2.9 min <= 15.0 min",
    ]
    assert all(c["holds"] for c in saved["checks"])


def test_read_rows_reads_only_the_blocks_that_hold_rows():
    cached = np.arange(23 * 2).reshape(23, 2)
    sliced = []

    class Recorded:  # a cached array that records the slices read from it
        shape, dtype = cached.shape, cached.dtype

        def __getitem__(self, at):
            sliced.append((at.start, at.stop))
            return cached[at]

    rows = np.array([1, 2, 9, 10, 11, 22])
    np.testing.assert_array_equal(cache_mod.read_rows(Recorded(), rows, block=4), cached[rows])
    assert sliced == [(0, 4), (8, 12), (20, 24)]  # blocks 0, 2 and 5; blocks 1, 3 and 4 hold none
    assert cache_mod.read_rows(Recorded(), np.array([], dtype=np.int64), block=4).shape == (0, 2)
    sliced.clear()
    np.testing.assert_array_equal(cache_mod.read_rows(Recorded(), rows, block=4, threads=3), cached[rows])  # blocks at once
    assert sorted(sliced) == [(0, 4), (8, 12), (20, 24)]

    class Damaged(Recorded):
        def __getitem__(self, at):
            if at.start == 8:
                raise CacheError("a damaged chunk")
            return super().__getitem__(at)

    with pytest.raises(CacheError, match="a damaged chunk"):
        cache_mod.read_rows(Damaged(), rows, block=4, threads=3)
