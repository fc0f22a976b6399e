"""The sampler train stage on a tiny cache: targets, shift, learning, resume, idempotency."""

import json
import math
import os
import re
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from conftest import kill_while_logging
from pipeline.cache import CacheError, FeatureCache, file_lock, output_lock_path
from pipeline.config import TrainConfig
from pipeline.sampler import NSNetSampler, SamplerConfig
from pipeline.stop_signals import Stopped
from pipeline.sampler_training import CachedClips, WindowedRows, baseline_plus_targets, frame_objective, ns_targets, ranking_loss, sampler_saliency, shift_positions, shuffle_windows, train_epoch, vgm_loss
from stages.train import draw_curves, epoch_loader, load_sampler_inputs, load_trained_sampler, read_training_features, run_train, training_clips

CFG = TrainConfig(epochs=12, batch_size=4, lr=0.001, milestones=(8,), seed=1)


def test_objective_targets_by_hand():
    g = torch.tensor([[0.8, 0.1]])
    labels = torch.tensor([[0, 1, 0]])
    torch.testing.assert_close(ns_targets(g, labels), torch.tensor([[[0, 0.8, 0, 0.2], [0, 0.1, 0, 0.9]]]))
    torch.testing.assert_close(ns_targets(torch.tensor([[0.6]]), torch.tensor([[1, 1, 0]])), torch.tensor([[[0.3, 0.3, 0.0, 0.4]]]))
    # baseline+: g on the label, (1-g) split over the 2 other classes
    torch.testing.assert_close(baseline_plus_targets(g, labels), torch.tensor([[[0.1, 0.8, 0.1], [0.45, 0.1, 0.45]]]))


def test_objective_losses_by_hand():
    ln2, ln3 = math.log(2.0), math.log(3.0)
    g, labels = torch.tensor([[0.5, 0.5]]), torch.tensor([[1, 0]])
    uniform = torch.zeros(1, 2, 3)  # C=2 classes + non-salient
    # ns: target (0.5, 0, 0.5) against (1/3, 1/3, 1/3): ln3 per frame, 2 frames
    assert frame_objective("ns").loss(uniform, g, labels).item() == pytest.approx(2 * ln3)
    # video: C-way, the non-salient logit ignored: ln2 per frame
    assert frame_objective("video").loss(uniform, g, labels).item() == pytest.approx(2 * ln2)
    # video_ns_class: (C+1)-way with target (1, 0, 0): ln3 per frame
    assert frame_objective("video_ns_class").loss(uniform, g, labels).item() == pytest.approx(2 * ln3)
    # baseline+: C-way, target (0.5, 0.5) against (1/2, 1/2): ln2 per frame
    assert frame_objective("baseline_plus").loss(uniform, g, labels).item() == pytest.approx(2 * ln2)
    # regression: binary cross-entropy of sigmoid(z) against g = (0.9, 0.1); z = 0 gives ln 2 a
    # frame; z = ln 9 (sigmoid 0.9) on the first frame gives its entropy -0.9 ln 0.9 - 0.1 ln 0.1
    assert frame_objective("regression").loss(uniform, torch.tensor([[0.9, 0.1]]), labels).item() == pytest.approx(2 * ln2)
    z = uniform.clone()
    z[0, 0, -1] = math.log(9.0)
    assert frame_objective("regression").loss(z, torch.tensor([[0.9, 0.1]]), labels).item() == pytest.approx(-0.9 * math.log(0.9) - 0.1 * math.log(0.1) + ln2)
    # ranking: g0 > g1; scores (z[C]) 0.3 and 0.25: hinge 0.1 - 0.05 = 0.05, divided by T=2
    z = torch.zeros(1, 2, 3)
    z[0, :, 2] = torch.tensor([0.3, 0.25])
    assert frame_objective("ranking").loss(z, torch.tensor([[0.9, 0.1]]), labels).item() == pytest.approx(0.025)
    assert ranking_loss(torch.tensor([[0.9, 0.0]]), torch.tensor([[0.9, 0.1]])).item() == 0.0  # margin met
    with pytest.raises(ValueError, match="fsm_target must be one of"):
        frame_objective("magic")


def test_vgm_variants_by_hand():
    ln2, ln3 = math.log(2.0), math.log(3.0)
    labels = torch.tensor([[1, 0]])
    sal = torch.zeros(1, 3)  # (C+1)-way uniform: L_cls = ln3; C-way: ln2
    ns = torch.tensor([[0.0, 0.0, ln2]])  # p(non-salient) = 2/4 -> L_ns = ln2
    total, l_cls, l_ns = vgm_loss("ns", sal, ns, labels, 0.2)
    assert (total.item(), l_cls.item(), l_ns.item()) == pytest.approx((ln3 + 0.2 * ln2, ln3, ln2))
    assert vgm_loss("video_ns_class", sal, ns, labels, 0.2)[0].item() == pytest.approx(ln3)
    assert vgm_loss("video", sal, ns, labels, 0.2)[0].item() == pytest.approx(ln2)
    with pytest.raises(ValueError, match="vgm_target"):
        vgm_loss("magic", sal, ns, labels, 0.2)


def test_objective_saliencies():
    z = torch.tensor([[[math.log(3.0), 0.0, 5.0], [0.0, 0.0, -5.0]]])
    # C-way: softmax over the 2 real classes: (3/4, 1/4) and (1/2, 1/2) -> softmax_t(0.75, 0.5)
    e = math.exp(0.25)
    torch.testing.assert_close(frame_objective("video").saliency(z), torch.tensor([[e / (1 + e), 1 / (1 + e)]]))
    # class-agnostic: softmax_t(sigmoid(z[C]))
    s = torch.sigmoid(torch.tensor([5.0, -5.0]))
    torch.testing.assert_close(frame_objective("ranking").saliency(z), torch.softmax(s, 0)[None])


def test_temporal_shift_positions():
    assert shift_positions(5, 1).tolist() == [0, 0, 1, 2, 3]
    assert shift_positions(5, -2).tolist() == [2, 3, 4, 4, 4]
    assert shift_positions(5, 0).tolist() == [0, 1, 2, 3, 4]
    data = CachedClips(np.arange(4, dtype=np.float32)[None, :, None], np.arange(4, dtype=np.float32)[None], np.array([[1, 0]]), max_shift=2, seed=0)
    seen = set()
    for epoch in range(40):
        data.set_epoch(epoch)
        x, g, _ = data[0]
        assert torch.equal(x[:, 0], g)  # features and scores move together
        seen.add(tuple(g.tolist()))
    assert {(0.0, 0.0, 1.0, 2.0), (0.0, 1.0, 2.0, 3.0), (2.0, 3.0, 3.0, 3.0)} <= seen


def test_train_epoch_learns_a_separable_toy_problem():
    # 3 classes, T=4 frames; the class shows as a +3 bump in feature dim c on frames 1-2 only
    rng = np.random.default_rng(0)
    labels = np.eye(3)[rng.integers(0, 3, 48)]
    x = rng.normal(0, 1, (48, 4, 16)).astype(np.float32)
    x[:, 1:3, :3] += 3 * labels[:, None, :]
    g = np.tile([0.05, 0.95, 0.95, 0.05], (48, 1))
    data = CachedClips(x, g, labels)
    torch.manual_seed(0)
    model = NSNetSampler(16, 4, 3, SamplerConfig(heads=2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    objective = frame_objective("ns")
    losses = [train_epoch(model, loader, optimizer, objective, 0.2, torch.device("cpu")).means().total for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    s_f, _ = sampler_saliency(model, objective, x, torch.device("cpu"))
    assert s_f[:, 1:3].mean() > 2 * s_f[:, [0, 3]].mean()  # the FSM finds the salient frames


def test_train_stage_reports_saliency_and_is_idempotent(tiny_pipeline, monkeypatch, tmp_path):
    features, prototypes, truth = tiny_pipeline
    monkeypatch.setattr("stages.train.SALIENCY_BATCH", 2)  # the report reads the validation videos in blocks
    result = run_train(features, prototypes, CFG, progress=False, ground_truth=truth)
    losses = [h["loss"] for h in result.history]
    assert result.trained_epochs == 12 and len(losses) == 12 and np.isfinite(losses).all()
    assert [h["lr"] for h in result.history] == pytest.approx([0.001] * 8 + [0.0001] * 4, rel=1e-12)  # each epoch's own: down by 10 after the 8th
    assert set(result.saliency_ap) == {
        "AP of s_f vs ground-truth salient frames (val)",
        "AP of s_v vs ground-truth salient frames (val)",
        "share of salient frames (chance AP)",
    }
    # the report scores the validation videos' light features, read from the cache for it
    inputs = load_sampler_inputs(features, prototypes)
    val, _ = inputs.evaluated()
    assert len(val) > 2
    with FeatureCache(features) as cache:
        light = np.asarray(cache["light_features"][:])[val]
    model, objective, _ = load_trained_sampler(Path(result.path), inputs.content_fingerprint, inputs.shape, torch.device("cpu"))
    s_f, s_v = sampler_saliency(model, objective, light, torch.device("cpu"))
    salient = json.loads(Path(truth).read_text())
    y = np.stack([np.asarray(salient[Path(inputs.videos[i]["path"]).stem]["salient"])[inputs.frame_indices[i]] for i in val]).ravel()
    assert result.saliency_ap["AP of s_f vs ground-truth salient frames (val)"] == pytest.approx(average_precision_score(y, s_f.ravel()), abs=1e-12)
    assert result.saliency_ap["AP of s_v vs ground-truth salient frames (val)"] == pytest.approx(average_precision_score(y, s_v.ravel()), abs=1e-12)
    assert result.saliency_ap["share of salient frames (chance AP)"] == pytest.approx(y.mean())
    # the curves (eq. 4's loss and its parts, the rate), drawn by `nsnet train` after the run, not by the run
    curves = Path(result.path) / "curves.png"
    assert not curves.exists() and "curves" not in result.table()
    draw_curves(result, CFG)
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"curves {curves}" in result.table()
    again = run_train(features, prototypes, CFG, progress=False, ground_truth=truth)
    assert again.trained_epochs == 0 and again.path == result.path and again.saliency_ap == result.saliency_ap
    assert f"curves {curves}" in again.table()
    # a video whose file was replaced by another (the truth's frame count is not the cache's) is left out
    replaced = Path(inputs.videos[val[0]]["path"]).stem
    salient[replaced]["salient"] = salient[replaced]["salient"][:1]
    cut = tmp_path / "groundtruth.json"
    cut.write_text(json.dumps(salient))
    y = y.reshape(len(val), -1)[1:].ravel()
    left_out = run_train(features, prototypes, CFG, progress=False, ground_truth=cut).saliency_ap
    assert left_out["AP of s_f vs ground-truth salient frames (val)"] == pytest.approx(average_precision_score(y, s_f[1:].ravel()), abs=1e-12)
    assert left_out["AP of s_v vs ground-truth salient frames (val)"] == pytest.approx(average_precision_score(y, s_v[1:].ravel()), abs=1e-12)
    cut.write_bytes(cut.read_bytes()[:-5])  # damaged: JSON's words naming no file stopped the run before 2026-12-07
    with pytest.warns(RuntimeWarning, match=re.escape(f"{cut}: damaged, not JSON (") + ".*" + re.escape("the saliency AP against it is left out of the report; make it again with the command that wrote it (`nsnet data`, `nsnet synth-cache`)")):
        assert run_train(features, prototypes, CFG, progress=False, ground_truth=cut).saliency_ap == {}
    paths = {result.path}
    for target in ("video", "video_ns_class", "baseline_plus", "regression", "ranking"):
        variant = run_train(features, prototypes, replace(CFG, fsm_target=target, epochs=2), progress=False)
        assert np.isfinite([h["loss"] for h in variant.history]).all()
        paths.add(variant.path)
    for target in ("video", "video_ns_class"):
        variant = run_train(features, prototypes, replace(CFG, vgm_target=target, epochs=2), progress=False)
        paths.add(variant.path)
    assert len(paths) == 8  # each objective is its own run


def test_the_sampler_holds_the_training_videos_light_features_alone(tiny_pipeline):
    features, prototypes, _ = tiny_pipeline
    inputs = read_training_features(load_sampler_inputs(features, prototypes), features, prototypes, hold=CFG.shuffle_window)
    assert isinstance(inputs.light, np.ndarray)  # 9 training videos: held whole
    train = inputs.finished_training()
    with FeatureCache(features) as cache:
        cached = np.asarray(cache["light_features"][:])
    assert 0 < len(train) < len(cached) and inputs.light.dtype == cached.dtype
    np.testing.assert_array_equal(inputs.light, cached[train])
    clips = training_clips(inputs, replace(CFG, max_shift=0))
    assert len(clips) == len(train)
    for i, row in enumerate(train):  # item i is training video train[i], as read from the cache
        x, g, y = clips[i]
        np.testing.assert_array_equal(x.numpy(), cached[row].astype(np.float32))
        np.testing.assert_array_equal(g.numpy(), inputs.g[row].astype(np.float32))
        np.testing.assert_array_equal(y.numpy(), inputs.labels[row].astype(np.float32))


def test_shuffle_windows_keeps_blocks_whole_and_windows_small():
    blocks = np.array([0, 0, 0, 1, 1, 2, 5, 5, 5, 5, 5, 5, 7])  # items 0-2, 3-4, 5, 6-11 (a block larger than the window), 12
    windows = shuffle_windows(blocks, 4, torch.Generator().manual_seed(3))
    assert sorted(np.concatenate(windows).tolist()) == list(range(13))  # every item once
    for items in windows:
        held = set(blocks[items].tolist())
        assert sorted(items.tolist()) == np.flatnonzero(np.isin(blocks, list(held))).tolist()  # whole blocks only
        assert len(items) <= 4 or held == {5}  # at most 4 items, but for the block of 6 alone
    assert any(len(items) == 6 for items in windows)
    again = shuffle_windows(blocks, 4, torch.Generator().manual_seed(3))
    assert all(np.array_equal(a, b) for a, b in zip(windows, again, strict=True))  # seeded
    orders = {tuple(np.concatenate(shuffle_windows(blocks, 4, torch.Generator().manual_seed(s)))) for s in range(8)}
    assert len(orders) > 4  # and shuffled
    (whole,) = shuffle_windows(blocks, 13, torch.Generator().manual_seed(0))  # all fit: one window
    assert sorted(whole.tolist()) == list(range(13))
    with pytest.raises(ValueError, match="non-decreasing"):
        shuffle_windows(np.array([1, 0]), 4, torch.Generator())


def test_windowed_rows_hold_one_window_at_a_time():
    cached = np.arange(20 * 3, dtype=np.float16).reshape(20, 3)
    reads = []

    def read(rows):
        reads.append(rows.tolist())
        return cached[rows]

    items = WindowedRows(read, np.array([1, 2, 4, 8, 9, 15]), (3,))
    assert items.shape == (6, 3) and len(items) == 6 and not reads  # nothing read before an item is asked for
    np.testing.assert_array_equal(items[3], cached[8])
    assert reads == [[1, 2, 4, 8, 9, 15]]  # no plan yet: all items one window
    items.plan([np.array([4, 0]), np.array([5, 1, 3, 2])])
    for i in (4, 0, 5, 1, 3, 2):  # the plan's order
        np.testing.assert_array_equal(items[i], cached[items.rows[i]])
    assert reads[1:] == [[1, 9], [2, 4, 8, 15]]  # each window read once, its rows sorted
    with pytest.raises(ValueError, match="exactly one window"):
        items.plan([np.array([0, 1, 2]), np.array([2, 3, 4, 5])])


def test_training_beyond_the_window_reads_it_a_window_at_a_time(tiny_pipeline, monkeypatch):
    features, prototypes, _ = tiny_pipeline
    monkeypatch.setattr("stages.train.WINDOW_BLOCK", 2)  # cache rows read together
    cfg = replace(CFG, shuffle_window=4, max_shift=0)
    inputs = read_training_features(load_sampler_inputs(features, prototypes), features, prototypes, hold=cfg.shuffle_window)
    train = inputs.finished_training()
    assert isinstance(inputs.light, WindowedRows) and inputs.shape.dim == 256 and len(train) == 9
    with FeatureCache(features) as cache:
        cached = np.asarray(cache["light_features"][:])
    held = []
    read = inputs.light.read
    inputs.light.read = lambda rows: held.append(len(rows)) or read(rows)
    clips = training_clips(inputs, cfg)
    for epoch in range(2):
        loader = epoch_loader(clips, cfg, epoch)
        order = list(loader.sampler)
        assert sorted(order) == list(range(9))  # each training video once an epoch
        for i in order:  # item i is still training video train[i]
            np.testing.assert_array_equal(clips[i][0].numpy(), cached[train[i]].astype(np.float32))
    assert held and max(held) <= 4 and sum(held) == 2 * 9  # a window of at most 4 held at a time


def test_training_in_windows_resumes_to_the_same_weights(tiny_pipeline, monkeypatch):
    features, prototypes, _ = tiny_pipeline
    monkeypatch.setattr("stages.train.WINDOW_BLOCK", 2)
    cfg = replace(CFG, shuffle_window=4, epochs=4)
    full = run_train(features, prototypes, cfg, progress=False)
    run_dir = Path(full.path)
    reference = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    assert np.isfinite([h["loss"] for h in full.history]).all()
    whole = torch.load(Path(run_train(features, prototypes, replace(cfg, shuffle_window=9), progress=False).path) / "model.pth", weights_only=False)["model"]
    assert not all(torch.equal(whole[k], reference[k]) for k in reference)  # another order of batches
    (run_dir / "model.pth").unlink()
    (run_dir / "metrics.json").unlink()
    partial = run_train(features, prototypes, replace(cfg, epochs=2), progress=False)
    torch.save(torch.load(Path(partial.path) / "last.pth", weights_only=False), run_dir / "last.pth")
    resumed = run_train(features, prototypes, cfg, progress=False)
    assert resumed.trained_epochs == 2
    weights = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    for key in reference:
        assert torch.equal(weights[key], reference[key]), key


def test_resume_gives_the_same_weights(tiny_pipeline):
    features, prototypes, _ = tiny_pipeline
    full = run_train(features, prototypes, replace(CFG, epochs=6), progress=False)
    run_dir = Path(full.path)
    reference = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    # simulate a run killed after epoch 3: keep only that resume point
    (run_dir / "model.pth").unlink()
    (run_dir / "metrics.json").unlink()
    partial = run_train(features, prototypes, replace(CFG, epochs=3, seed=1, milestones=(8,)), progress=False)
    state = torch.load(Path(partial.path) / "last.pth", weights_only=False)
    torch.save(state, run_dir / "last.pth")
    with file_lock(output_lock_path(run_dir)):  # another process is training this run
        with pytest.raises(CacheError, match=r"\.lock: another writer holds this lock \(pid \d+ on .*\); it is computing the same output"):
            run_train(features, prototypes, replace(CFG, epochs=6), progress=False)
    assert not (run_dir / "model.pth").exists() and torch.load(run_dir / "last.pth", weights_only=False)["epoch"] == 2  # left as it was
    resumed = run_train(features, prototypes, replace(CFG, epochs=6), progress=False)
    assert resumed.trained_epochs == 3
    weights = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    for key in reference:
        assert torch.equal(weights[key], reference[key]), key


def test_a_killed_runs_log_holds_each_epoch_once_when_resumed(tiny_pipeline, monkeypatch):
    """A kill in the middle of an epoch's line, after its resume point was saved, left half a
    line that the resumed run's next line joined; and the log is written after the save (before
    2026-12-06 a kill between them left an epoch logged that was not saved, which the resume
    logged again, and ``nsnet outputs`` counted one epoch too many): the resumed log is the
    resume point's history and the epochs trained since, one whole line each, as an
    uninterrupted run's."""
    features, prototypes, _ = tiny_pipeline
    cfg = replace(CFG, epochs=4, seed=3)
    with monkeypatch.context() as patched:
        kill_while_logging(patched, 3)
        with pytest.raises(KeyboardInterrupt):
            run_train(features, prototypes, cfg, progress=False)
    (run_dir,) = features.parent.glob(f"{features.name}.train-*")
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines[:2]] == [1, 2] and lines[2:] == ['{"epoch": 3, "lo']  # as the kill left it
    assert torch.load(run_dir / "last.pth", weights_only=False)["epoch"] == 2  # epoch 3 saved: the log lists no more than is
    resumed = run_train(features, prototypes, cfg, progress=False)
    assert resumed.trained_epochs == 1
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2, 3, 4]
    assert log == json.loads((run_dir / "metrics.json").read_text())["history"]
    shutil.rmtree(run_dir)
    whole = run_train(features, prototypes, cfg, progress=False)
    uninterrupted = [json.loads(line) for line in (Path(whole.path) / "log.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in entry.items() if k != "seconds"} for entry in log] == [{k: v for k, v in entry.items() if k != "seconds"} for entry in uninterrupted]


def test_sigkill_during_training_then_resume_gives_the_same_weights(tiny_pipeline, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    features, prototypes, _ = tiny_pipeline
    repo = Path(__file__).resolve().parents[1]
    args = [sys.executable, "-m", "stages.cli", "train", "--features", str(features), "--prototypes", str(prototypes), "--epochs", "60", "--lr", "0.001", "--seed", "1", "--no-progress"]
    proc = subprocess.Popen(args, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(features.parent.glob(f"{features.name}.train-*/last.pth")):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = features.parent.glob(f"{features.name}.train-*")
    assert not (run_dir / "model.pth").exists(), "the run finished before it could be killed"
    (run_dir / "last.pth.4321.tmp").write_bytes(b"PK half")  # what a kill while the resume point was saved leaves
    resumed = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(path.name for path in run_dir.iterdir()) == ["curves.png", "last.pth", "log.jsonl", "metrics.json", "model.pth"]
    killed_weights = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    # the uninterrupted run, in a fresh directory (same fingerprint, so move the first aside)
    run_dir.rename(tmp_path / "killed_run")
    reference = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    reference_weights = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    for key in reference_weights:
        assert torch.equal(killed_weights[key], reference_weights[key]), key


def test_bench_train_reports_the_data_share(tiny_pipeline, capsys):
    from stages.bench_train import bench_train

    features, prototypes, _ = tiny_pipeline
    result = bench_train(features, prototypes, replace(CFG, batch_size=4), epochs=2, progress=True)
    assert result.steps == 3 and 0 < result.data_share < 1  # the 9 train videos, batch 4: 3 steps an epoch
    shown = capsys.readouterr().err
    assert "bench-train: 100%" in shown and "2/2" in shown  # a bar over the epochs, the warm-up's included
    assert "data share" in result.table()


def test_training_curves_draw_each_logged_key_over_the_epochs(tmp_path, monkeypatch):
    """A panel a (title, keys, y label): a line a key, over the epochs whose entries hold it (the
    validation, every few epochs), a panel of keys no entry holds left out; the learning rate
    on a log scale."""
    from matplotlib.figure import Figure

    from pipeline.plots import plot_training_curves
    from stages.train import CURVES

    drawn: list[Figure] = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: drawn.append(fig) or save(fig, path, **kw))
    history = [{"epoch": 1, "loss": 3.0, "frame": 2.0, "video": 1.0, "cls": 0.8, "ns": 1.0, "lr": 0.01}, {"epoch": 2, "loss": 2.0, "frame": 1.5, "video": 0.5, "cls": 0.4, "lr": 0.001}]
    plot_training_curves(history, CURVES, tmp_path / "curves.png", "run")
    loss, parts, schedule = drawn[0].axes  # no validation logged: no panel of it
    assert [(line.get_label(), line.get_xdata().tolist(), line.get_ydata().tolist()) for line in loss.lines] == [
        ("L = L_f + L_v", [1, 2], [3.0, 2.0]), ("L_f (FSM)", [1, 2], [2.0, 1.5]), ("L_v (VGM)", [1, 2], [1.0, 0.5])]
    assert [(line.get_label(), line.get_xdata().tolist(), line.get_ydata().tolist()) for line in parts.lines] == [("L_cls", [1, 2], [0.8, 0.4]), ("L_ns", [1], [1.0])]
    assert schedule.get_yscale() == "log" and schedule.lines[0].get_ydata().tolist() == [0.01, 0.001]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    history[1].update(val_map=60.0, val_top1=50.0, val_uniform_map=40.0, val_uniform_top1=30.0)
    plot_training_curves(history, CURVES, tmp_path / "curves.png", "run")
    validation = drawn[1].axes[2]
    assert validation.get_xlim() == drawn[1].axes[0].get_xlim() == (0.5, 2.5)  # a validation's few points over the run's epochs
    assert [(line.get_label(), line.get_xdata().tolist(), line.get_ydata().tolist()) for line in validation.lines] == [
        ("NSNet mAP", [2], [60.0]), ("UNIFORM mAP", [2], [40.0]), ("NSNet top-1", [2], [50.0]), ("UNIFORM top-1", [2], [30.0])]


def test_curves_killed_while_written_are_drawn_by_the_next_command(tmp_path, monkeypatch):
    """A figure is written beside its path and renamed into place: a draw stopped halfway
    (Ctrl-C in ``savefig``) leaves no ``curves.png``, nor its temporary file, so the next
    command draws it, where half a PNG would have been taken for drawn; the temporary file a
    kill left goes when the curves are drawn, under the run's lock. A draw that fails is a
    warning naming the figure: the trained run stands."""
    import threading

    from matplotlib.figure import Figure

    from pipeline.plots import draw_curves_once
    from stages.train import CURVES

    def killed(fig, path, **kw):
        Path(path).write_bytes(b"\x89PNG\r\n\x1a\n half")
        raise KeyboardInterrupt

    history = [{"epoch": 1, "loss": 3.0, "frame": 2.0, "video": 1.0, "cls": 0.8, "ns": 1.0, "lr": 0.01}]
    with monkeypatch.context() as patched:
        patched.setattr(Figure, "savefig", killed)
        with pytest.raises(KeyboardInterrupt):
            draw_curves_once(history, CURVES, tmp_path / "curves.png", "run")
    assert list(tmp_path.iterdir()) == []
    with monkeypatch.context() as patched, pytest.warns(UserWarning, match=r"curves\.png: figure not drawn \(RuntimeError: no font\)$"):
        patched.setattr("pipeline.plots._pyplot", lambda: (_ for _ in ()).throw(RuntimeError("no font")))
        assert not draw_curves_once(history, CURVES, tmp_path / "curves.png", "run")  # a warning, not the command's end
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "curves.png.999999999.tmp").write_bytes(b"\x89PNG\r\n\x1a\n half")  # what a SIGKILL while drawing leaves
    assert draw_curves_once(history, CURVES, tmp_path / "curves.png", "run")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "curves.png").stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # the half-written file gone (it stayed before 2026-12-06, evening)
    (tmp_path / "curves.png").unlink()
    with file_lock(output_lock_path(tmp_path)):  # drawn under the run's lock: a command drawing now waits for it
        drawing = threading.Thread(target=draw_curves_once, args=(history, CURVES, tmp_path / "curves.png", "run"))
        drawing.start()
        drawing.join(0.5)
        assert drawing.is_alive() and list(tmp_path.iterdir()) == []
    drawing.join(30)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_validation_during_training_scores_nsnet_and_uniform_from_the_cache(tiny_pipeline):
    """With ``val_every`` the run logs NSNet's and UNIFORM's val mAP and top-1 at K=5 every that
    many epochs and after the last; the last equals the trained heads' choice scored by hand:
    the mean softmax of the cached logits at the chosen positions, scikit-learn's AP per class."""
    from pipeline.evaluation import fused_positions
    from pipeline.sampling import uniform_frame_indices
    from stages.train import cached_saliency

    features, prototypes, _ = tiny_pipeline
    result = run_train(features, prototypes, replace(CFG, epochs=3), progress=False, val_every=2)
    assert [("val_map" in h, "val_uniform_top1" in h) for h in result.history] == [(False, False), (True, True), (True, True)]
    metrics = json.loads((Path(result.path) / "metrics.json").read_text())
    inputs = load_sampler_inputs(features, prototypes)
    rows, split = inputs.evaluated()
    t = inputs.shape.num_frames
    assert metrics["validation"] == {"split": split, "videos": len(rows), "k": 5, "t": t, "fusion": "union", "alpha": 0.6, "every": 2}
    model, objective, _ = load_trained_sampler(Path(result.path), inputs.content_fingerprint, inputs.shape, torch.device("cpu"))
    s_f, s_v = cached_saliency(model, objective, features, rows, torch.device("cpu"))
    with FeatureCache(features) as cache:
        logits = np.asarray(cache["rec_logits"][:], dtype=np.float64)[rows]
    labels = np.zeros((len(rows), logits.shape[-1]), dtype=int)
    for row, video in enumerate(rows):
        labels[row, inputs.videos[video]["labels"]] = 1

    def by_hand(positions: list[np.ndarray]) -> tuple[float, float]:
        softmax = np.exp(logits - logits.max(-1, keepdims=True))
        softmax /= softmax.sum(-1, keepdims=True)
        scores = np.stack([softmax[v, p].mean(0) for v, p in enumerate(positions)])
        present = labels.sum(0) > 0
        ap = [average_precision_score(labels[:, c], scores[:, c]) for c in np.flatnonzero(present)]
        return 100 * float(np.mean(ap)), 100 * float(np.mean(labels[np.arange(len(rows)), scores.argmax(1)] == 1))

    last = result.history[-1]
    assert (last["val_map"], last["val_top1"]) == pytest.approx(by_hand(fused_positions(s_f, s_v, 5, "union", 0.6)), abs=1e-9)
    assert (last["val_uniform_map"], last["val_uniform_top1"]) == pytest.approx(by_hand([uniform_frame_indices(t, 5)] * len(rows)), abs=1e-9)
    said = f"val on {len(rows)} {split} videos at K=5 of T={t} (union, cached logits), epoch 3: NSNet mAP {last['val_map']:.1f}, top-1 {last['val_top1']:.1f}; UNIFORM mAP {last['val_uniform_map']:.1f}"
    assert said in result.table() and said in run_train(features, prototypes, replace(CFG, epochs=3), progress=False).table()  # found finished, said again
    # the validation changes what the run logs, not what it trains: the weights of a run without it
    plain = torch.load(Path(result.path) / "model.pth", weights_only=False)["model"]
    shutil.rmtree(result.path)
    again = run_train(features, prototypes, replace(CFG, epochs=3), progress=False)
    assert not any("val_map" in h for h in again.history) and "val on" not in again.table()
    for name, tensor in torch.load(Path(again.path) / "model.pth", weights_only=False)["model"].items():
        assert torch.equal(tensor, plain[name]), name


def test_the_train_command_validates_and_draws_the_runs_curves(tiny_pipeline):
    """``nsnet train`` validates every ``--val-every`` epochs and, the run finished, draws its
    curves once (not again when found finished), both named in its summary."""
    from click.testing import CliRunner

    from stages.cli import main

    features, prototypes, _ = tiny_pipeline
    args = ["train", "--features", str(features), "--prototypes", str(prototypes), "--epochs", "2", "--seed", "5", "--device", "cpu", "--no-progress", "--val-every", "1"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    (run,) = [line.split()[2] for line in first.output.splitlines() if line.startswith("sampler run ")]
    curves = Path(run) / "curves.png"
    assert f"curves {curves}" in first.output and "epoch 2: NSNet mAP" in first.output and curves.stat().st_size > 1000
    drawn = curves.stat().st_mtime_ns
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "(0 epochs trained now)" in again.output and f"curves {curves}" in again.output
    assert curves.stat().st_mtime_ns == drawn


class _SignalledAt:
    """A loader that sends this process SIGTERM as it gives its batch ``at`` (from 0)."""

    def __init__(self, loader, at: int):
        self.loader, self.at = loader, at

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch


@pytest.mark.parametrize("shuffle_window", [None, 4], ids=["held whole", "in windows"])
def test_a_stop_signal_mid_epoch_saves_the_runs_place_and_the_run_goes_on_to_the_uninterrupted_weights(tiny_pipeline, monkeypatch, shuffle_window, default_stop_signals):
    """SIGTERM as epoch 3 gives its third batch of five (9 videos, 2 a batch): the run stops
    after that step, saves its place (batches, loss sums, torch's generator) in last.pth and
    says so; run again, it reads the three batches again, passes over them and ends with the
    weights and log of the run left uninterrupted (the videos held whole, or a window of 4 at a
    time)."""
    import stages.train

    features, prototypes, _ = tiny_pipeline
    monkeypatch.setattr("stages.train.WINDOW_BLOCK", 2)
    cfg = replace(CFG, epochs=4, batch_size=2, shuffle_window=shuffle_window or CFG.shuffle_window)
    whole = run_train(features, prototypes, cfg, progress=False)
    run_dir = Path(whole.path)
    reference = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    shutil.rmtree(run_dir)
    loader = stages.train.epoch_loader
    with monkeypatch.context() as patched:
        patched.setattr(stages.train, "epoch_loader", lambda data, cfg, epoch: _SignalledAt(loader(data, cfg, epoch), 2 if epoch == 2 else -1))
        with pytest.raises(Stopped) as stopped:
            run_train(features, prototypes, cfg, progress=False)
    assert str(stopped.value) == f"{run_dir}: stopped by SIGTERM in epoch 3 of 4, after 3 of its 5 training batches; saved in last.pth, from which the same command goes on"
    assert stopped.value.exit_status == 143 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    state = torch.load(run_dir / "last.pth", weights_only=False)
    assert state["epoch"] == 1 and (state["within"]["batches"], state["within"]["videos"]) == (3, 6)
    resumed = run_train(features, prototypes, cfg, progress=False)
    assert resumed.trained_epochs == 2 and [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == [{k: v for k, v in h.items() if k != "seconds"} for h in whole.history]
    weights = torch.load(run_dir / "model.pth", weights_only=False)["model"]
    assert all(torch.equal(weights[key], reference[key]) for key in reference)
