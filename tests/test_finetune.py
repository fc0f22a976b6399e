"""The fine-tune stage on tiny generated videos: learning, checkpoints, resume, errors."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import kill_while_logging, visible_names
from pipeline.cache import CacheError, FeatureCache, file_lock, output_lock_path
from pipeline.checkpoints import WeightsError, read_checkpoint
from pipeline.config import FinetuneConfig, ModelSpec
from pipeline.datasets import get_dataset
from pipeline.extract import decode_video, to_model_input
from pipeline.metrics import mean_average_precision, top1_accuracy, video_scores
from pipeline.models import create_model, data_config, frame_transform
from pipeline.stop_signals import Stopped
from pipeline.decode_watch import WatchedDecoding
from pipeline.training import ValClips, clip_logits, collate_val_clips, joined_scores, validation_metrics, validation_scores, watched_batches
from stages.features import run_features
from stages.finetune import draw_curves, run_finetune

REPO = Path(__file__).resolve().parents[1]
REC = ModelSpec("test_resnet", weights="none", resolution=32)
FT = FinetuneConfig(segments=3, epochs=6, repeats=3, batch_size=8, lr=0.01, warmup_epochs=0, seed=3)


def test_training_lowers_the_loss_and_is_idempotent(tiny_videos, run_options):
    result = run_finetune("demo", tiny_videos, "recognizer", REC, FT, 6, run_options)
    losses = [h["loss"] for h in result.history]
    assert result.trained_epochs == 6 and len(losses) == 6
    assert np.mean(losses[-2:]) < 0.9 * losses[0]
    assert all(0 <= h["top1"] <= 1 and 0 <= h["mAP"] <= 1 and h["videos"] == 3 for h in result.history)
    assert result.chance_top1 == pytest.approx(1 / 3)
    # each epoch's learning rate, the one it trained at: timm's cosine from lr to lr/1000 over the epochs, no warm-up
    low = FT.lr * 1e-3
    assert [h["lr"] for h in result.history] == pytest.approx([low + 0.5 * (FT.lr - low) * (1 + math.cos(math.pi * e / FT.epochs)) for e in range(FT.epochs)], rel=1e-12)
    metrics = json.loads((Path(result.checkpoint).parent / "metrics.json").read_text())
    assert metrics["history"] == result.history and metrics["environment"]["libraries"]["timm"] == metadata.version("timm")
    # the curves (loss, val top-1 and mAP, the rate), drawn by the command after the run, not by the run
    curves = Path(result.checkpoint).parent / "curves.png"
    assert result.curves == "" and not curves.exists()
    draw_curves(result)
    assert result.curves == str(curves) and curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"curves {curves}" in result.table()
    drawn = curves.stat().st_mtime_ns
    again = run_finetune("demo", tiny_videos, "recognizer", REC, FT, 6, run_options)
    assert again.trained_epochs == 0 and again.history == result.history and again.checkpoint == result.checkpoint
    draw_curves(again)
    assert again.curves == str(curves) and curves.stat().st_mtime_ns == drawn  # there already: not drawn again
    run_dir = Path(result.checkpoint).parent
    kept = (run_dir / "metrics.json").read_bytes()
    (run_dir / "metrics.json").write_bytes(kept[:-2])  # a finished run's record cut short: JSON's words alone before 2026-12-07, then "remove the run"
    with pytest.warns(RuntimeWarning, match=re.escape(f"{run_dir / 'metrics.json'}: damaged, not JSON (Expecting ',' delimiter: line ") + r"\d+" + re.escape(" column 3 (char ") + r"\d+" + re.escape("): a copy cut short, or a disk error): the run's history is not shown; its model.pth is used as it is")):
        cut = run_finetune("demo", tiny_videos, "recognizer", REC, FT, 6, run_options)
    assert (cut.trained_epochs, cut.history, cut.checkpoint) == (0, [], result.checkpoint) and "epochs trained now" in cut.table()
    (run_dir / "metrics.json").write_text(json.dumps({"epochs": result.history}))
    with pytest.warns(RuntimeWarning, match=re.escape(f"{run_dir / 'metrics.json'}: damaged, JSON of another shape: the run's history is not shown")):
        assert run_finetune("demo", tiny_videos, "recognizer", REC, FT, 6, run_options).history == []


def test_frame_wise_regime_trains_too(tiny_videos, run_options):
    result = run_finetune("demo", tiny_videos, "recognizer", REC, replace(FT, segments=1, epochs=1, repeats=2), 6, run_options)
    assert result.history[0]["clips"] == 18
    run_dir = Path(result.checkpoint).parent
    (run_dir / "model.pth").unlink()  # not finished, and another job is training it
    with file_lock(output_lock_path(run_dir)):
        with pytest.raises(CacheError, match=r"another writer holds this lock \(pid \d+ on .*\); it is computing the same output"):
            run_finetune("demo", tiny_videos, "recognizer", REC, replace(FT, segments=1, epochs=1, repeats=2), 6, run_options)
    assert not (run_dir / "model.pth").exists()


def test_decoders_asked_for_that_shared_memory_cannot_hold_are_refused(tiny_videos, run_options, monkeypatch):
    """A batch crosses from its decoder through /dev/shm, the larger here a validation batch of
    uint8 frames (21 videos x 6 x 3 x 32 x 32, against 8 x 3 segments of float clips):
    --workers 2 with about 0.2 MiB free is refused before any epoch."""
    import shutil
    from types import SimpleNamespace

    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=2**26, used=2**26 - 200_000, free=200_000))
    with pytest.raises(ValueError, match=r"^--workers 2: each holds up to 3 decoded batches of 0\.369 MiB in shared memory .* room for 0; lower --workers"):
        run_finetune("demo", tiny_videos, "recognizer", REC, replace(FT, epochs=1), 6, replace(run_options, workers=2))
    (run_dir,) = (run_options.cache_dir / "demo" / "finetune").glob("recognizer-*")
    assert not (run_dir / "log.jsonl").exists() and not (run_dir / "model.pth").exists()


def test_checkpoint_round_trip_into_the_features_stage(tiny_videos, tiny_config, run_options, tmp_path):
    out = tmp_path / "out" / "rec.pth"
    out.parent.mkdir()
    (out.parent / "rec.pth.4321.tmp").write_bytes(b"PK half")  # what a run killed while copying to --out leaves
    result = run_finetune("demo", tiny_videos, "recognizer", REC, replace(FT, epochs=2), tiny_config.num_frames, run_options, out=out)
    assert result.checkpoint == str(out)
    assert visible_names(out.parent) == ["rec.pth"] and out.read_bytes() == (Path(result.run_dir) / "model.pth").read_bytes()
    stamp = out.stat().st_mtime_ns
    run_finetune("demo", tiny_videos, "recognizer", REC, replace(FT, epochs=2), tiny_config.num_frames, run_options, out=out)
    assert out.stat().st_mtime_ns == stamp  # the same bytes there: not copied again
    ckpt = read_checkpoint(out)
    manifest = get_dataset("demo").load(tiny_videos)
    assert ckpt["classes"] == list(manifest.classes) and ckpt["model_name"] == "test_resnet"
    assert tuple(ckpt["data_config"]["input_size"]) == (3, 32, 32)
    config = tiny_config.with_overrides(recognizer_weights=str(out))
    summary = run_features("demo", tiny_videos, config, run_options)
    trained = create_model(REC, 3, seed=0)
    trained.load_state_dict(ckpt["state_dict"])
    trained.eval()
    with FeatureCache(Path(summary.cache)) as cache:
        for i in (0, 7):
            frames, _, _ = decode_video(tiny_videos, manifest.videos[i], tiny_config.num_frames)
            x = to_model_input(frames, frame_transform(data_config(trained, REC)))
            with torch.inference_mode():
                expected = trained(x).numpy()
            np.testing.assert_allclose(cache["rec_logits"][i], expected, rtol=1e-5, atol=1e-5)


def test_validation_scores_the_uint8_crops_as_the_float_input_and_leaves_out_a_broken_video(tiny_videos):
    """The validation clips cross from a decoding worker as uint8 crops and become the model's
    input in the main process: the metrics equal those of the float input made at once from the
    same frames, and an undecodable video is left out."""
    manifest = get_dataset("demo").load(tiny_videos)
    videos = manifest.videos[:5]
    (tiny_videos / videos[2].path).write_bytes(b"not a video")
    model = create_model(REC, 3, seed=0).eval()
    transform = frame_transform(data_config(model, REC))
    with WatchedDecoding(1, 60.0, "validation", str) as decoding:
        loader = list(watched_batches(decoding, ValClips(tiny_videos, videos, 4, transform), range(5), 5, 1, collate_val_clips))
    indices, frames = loader[0]
    assert indices.tolist() == [0, 1, 3, 4] and frames.pixels.dtype == torch.uint8 and frames.pixels.shape == (16, 3, 32, 32)
    metrics = validation_metrics(*validation_scores(model, loader, torch.device("cpu")), videos)
    kept = [videos[i] for i in (0, 1, 3, 4)]
    x = torch.cat([to_model_input(decode_video(tiny_videos, v, 4)[0], transform) for v in kept])
    with torch.inference_mode():
        scores = video_scores(clip_logits(model, x.unflatten(0, (4, 4)), torch.device("cpu")).numpy())
    labels = [v.labels for v in kept]
    assert metrics == {"top1": top1_accuracy(scores, labels), "mAP": mean_average_precision(scores, labels), "videos": 4}
    shares = []  # two ranks' shares, as DDP validates them, joined: the same metrics
    for rank in (0, 1):
        with WatchedDecoding(0, 60.0, "validation", str) as decoding:
            shares.append(validation_scores(model, watched_batches(decoding, ValClips(tiny_videos, videos, 4, transform), range(rank, 5, 2), 2, 0, collate_val_clips), torch.device("cpu")))
    assert [order.tolist() for order, _ in shares] == [[0, 4], [1, 3]]
    assert validation_metrics(*joined_scores(shares), videos) == metrics


def test_kill_and_resume_gives_the_same_weights(tiny_videos, tmp_path):
    args = _finetune_command(tiny_videos, epochs=8, batch_size=8, workers=0)
    killed_cache, reference_cache = tmp_path / "killed", tmp_path / "reference"
    proc = _running_until_an_epoch_is_saved(args, killed_cache, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = killed_cache.glob("demo/finetune/recognizer-*")
    assert not (run_dir / "model.pth").exists(), "the run finished before it could be killed"
    done_before = torch.load(run_dir / "last.pth", weights_only=False)["epoch"] + 1
    assert done_before < 8
    (run_dir / "last.pth.4321.tmp").write_bytes(b"PK half")  # what a kill while the resume point was saved leaves
    resumed = subprocess.run(args + ["--cache-dir", str(killed_cache)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not [path.name for path in run_dir.iterdir() if path.name.endswith(".tmp")]
    assert f"{8 - done_before} epochs trained now" in resumed.stdout
    _assert_the_uninterrupted_weights(run_dir, args, reference_cache)


def _finetune_command(videos: Path, *, epochs: int, batch_size: int, workers: int, python: tuple[str, ...] = ("-m", "stages.cli")) -> list[str]:
    """``nsnet finetune`` of the resume tests on the tiny videos (every video 3 times an epoch)."""
    return [
        sys.executable, *python, "finetune", "--dataset", "demo", "--data-root", str(videos), "--arch", "test_resnet",
        "--init", "none", "--resolution", "32", "--epochs", str(epochs), "--repeats", "3", "--batch-size", str(batch_size),
        "--lr", "0.05", "--seed", "3", "--device", "cpu", "--workers", str(workers), "--no-progress",
    ]  # fmt: skip


def _running_until_an_epoch_is_saved(args: list[str], cache: Path, **popen) -> subprocess.Popen:
    """The fine-tuning command ``args`` started into ``cache``, once its run has saved its first
    epoch's resume point."""
    proc = subprocess.Popen(args + ["--cache-dir", str(cache)], cwd=REPO, text=True, **popen)
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache.glob("demo/finetune/*/last.pth")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    return proc


def _assert_the_uninterrupted_weights(run_dir: Path, args: list[str], reference_cache: Path, **run) -> None:
    """The finished run in ``run_dir`` holds, to the bit, the weights of the command ``args``
    run uninterrupted into ``reference_cache``."""
    reference = subprocess.run(args + ["--cache-dir", str(reference_cache)], cwd=REPO, capture_output=True, text=True, timeout=300, **run)
    assert reference.returncode == 0, reference.stderr
    a = read_checkpoint(run_dir / "model.pth")["state_dict"]
    b = read_checkpoint(next(reference_cache.glob("demo/finetune/*/model.pth")))["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_run_resumed_on_another_count_of_ranks_says_its_weights_will_differ(tiny_videos, run_options):
    """Each epoch logs the ranks it ran on; a run resumed on another count (a preempted
    8-GPU job restarted on 4: each rank's --batch-size, so a step's clips change) warns that
    its weights will not be the uninterrupted run's, naming the count to resume on."""
    ft = replace(FT, epochs=2, repeats=1)
    result = run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, run_options)
    assert [h["ranks"] for h in result.history] == [1, 1]
    run_dir = Path(result.checkpoint).parent
    state = torch.load(run_dir / "last.pth", weights_only=False)
    torch.save({**state, "epoch": 0, "history": [{**state["history"][0], "ranks": 2}]}, run_dir / "last.pth")  # as two ranks left it after epoch 1
    (run_dir / "model.pth").unlink()
    with pytest.warns(RuntimeWarning, match=re.escape(f"{run_dir / 'last.pth'}: resumed on 1 rank(s), where its 1 epoch so far ran on 2: a step now takes 8 clips on each of 1 (--batch-size is a rank's) where it took them on each of 2, so the weights will not be those of the run left uninterrupted; resume it on 2 rank(s) to have them")):
        resumed = run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, run_options)
    assert resumed.trained_epochs == 1 and [h["ranks"] for h in resumed.history] == [2, 1]
    torch.save({**state, "epoch": 0, "history": [{k: v for k, v in state["history"][0].items() if k != "ranks"}]}, run_dir / "last.pth")  # logged before the ranks were
    (run_dir / "model.pth").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, run_options).trained_epochs == 1


def test_a_killed_runs_log_holds_each_epoch_once_when_resumed(tiny_videos, run_options, monkeypatch, tmp_path):
    """Killed in the middle of epoch 2's line, after its resume point was saved (the log comes
    after the save since 2026-12-06; before, an epoch could be logged and not saved): the
    resumed run's log is the uninterrupted run's, each epoch once, whole lines."""
    ft = replace(FT, epochs=3)
    with monkeypatch.context() as patched:
        kill_while_logging(patched, 2)
        with pytest.raises(KeyboardInterrupt):
            run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, run_options)
    (run_dir,) = (run_options.cache_dir / "demo" / "finetune").glob("recognizer-*")
    assert (run_dir / "log.jsonl").read_text().count("\n") == 1  # epoch 1 logged, half of epoch 2, which is saved
    resumed = run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, run_options)
    assert resumed.trained_epochs == 1
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2, 3] and log == resumed.history
    whole = run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, replace(run_options, cache_dir=tmp_path / "whole"))
    assert [{k: v for k, v in entry.items() if k != "seconds"} for entry in log] == [{k: v for k, v in entry.items() if k != "seconds"} for entry in whole.history]


def test_bad_initial_checkpoint_and_class_mismatch_are_clear_errors(tiny_videos, tiny_config, run_options, tmp_path):
    with pytest.raises(WeightsError, match="nowhere.pth: checkpoint file not found"):
        run_finetune("demo", tiny_videos, "recognizer", replace(REC, weights=str(tmp_path / "nowhere.pth")), FT, 6, run_options)
    with pytest.raises(WeightsError, match="unknown timm model 'nosuchmodel_xyz'"):
        run_finetune("demo", tiny_videos, "recognizer", replace(REC, name="nosuchmodel_xyz"), FT, 6, run_options)
    assert not [p for p in (run_options.cache_dir / "demo" / "finetune").iterdir() if p.is_dir()]  # a refused run leaves no folder (each had left one with its identity.json; its lock file stays, as every output's)
    # a checkpoint fine-tuned on a dataset with other classes is refused by the features stage
    other = tmp_path / "other"
    other.mkdir()
    lines = (tiny_videos / "manifest.csv").read_text().splitlines()
    (other / "manifest.csv").write_text("\n".join(lines[:1] + [row.replace(",c0", ",other_c0") for row in lines[1:]]) + "\n")
    os.symlink(tiny_videos / "videos", other / "videos")
    out = tmp_path / "other.pth"
    run_finetune("demo", other, "recognizer", REC, replace(FT, epochs=1, repeats=1), 6, run_options, out=out)
    with pytest.raises(WeightsError, match="trained on other classes than this dataset's"):
        run_features("demo", tiny_videos, tiny_config.with_overrides(recognizer_weights=str(out)), run_options)
    # ... and fine-tuning from it on this dataset starts from its trunk, with a new classifier (Kinetics -> UCF101)
    transfer = run_finetune("demo", tiny_videos, "recognizer", replace(REC, weights=str(out)), replace(FT, epochs=1, repeats=1), 6, run_options)
    assert transfer.start == f"{out}: trunk, a new classifier for the dataset's 3 classes" and transfer.table().startswith(f"started from {out}: trunk")
    assert read_checkpoint(Path(transfer.checkpoint))["classes"] == list(get_dataset("demo").load(tiny_videos).classes)


def test_torchrun_ddp_fine_tune_on_two_cpu_ranks(tiny_videos, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", "finetune", "--dataset", "demo",
        "--data-root", str(tiny_videos), "--arch", "test_resnet", "--init", "none", "--resolution", "32",
        "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--workers", "0", "--no-progress",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "ddp.pth"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("checkpoint ") == 1  # one summary, from rank 0
    ckpt = read_checkpoint(tmp_path / "ddp.pth")
    assert ckpt["model_name"] == "test_resnet" and len(ckpt["classes"]) == 3
    (run_dir,) = (tmp_path / "cache" / "demo" / "finetune").glob("recognizer-*")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    manifest = get_dataset("demo").load(tiny_videos)
    assert [entry["videos"] for entry in log] == [len(manifest.split("val") or manifest.split("test"))] * 2  # rank 0 logs each epoch once, of both ranks' shares
    assert [(entry["clips"], entry["skipped"], entry["ranks"]) for entry in log] == [(len(manifest.split("train")) * 4, 0, 2)] * 2  # both ranks' clips (the demo visits each video 4 times)
    (run_dir / "metrics.json").write_text("{")  # finished, its record damaged: warned of once, by the rank that reports
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0 and again.stderr.count(f"{run_dir / 'metrics.json'}: damaged") == 1, again.stdout + again.stderr
    assert "0 epochs trained now" in again.stdout and read_checkpoint(tmp_path / "ddp.pth")["model_name"] == "test_resnet"


def test_ddp_ranks_go_on_when_one_has_a_batch_of_no_decodable_video(tiny_videos, tmp_path):
    """A batch whose videos all fail is skipped by its rank, which then has a step fewer than
    the others: the ranks must still agree on every gradient reduction (DDP's join) and finish."""
    from torch.utils.data.distributed import DistributedSampler

    manifest = get_dataset("demo").load(tiny_videos)
    train = [v for v in manifest.videos if v.split == "train"]
    ft = replace(get_dataset("demo").finetune["recognizer"], epochs=1, batch_size=4)
    sampler = DistributedSampler(range(len(train) * ft.repeats), num_replicas=2, rank=1, shuffle=True, seed=ft.seed, drop_last=True)
    sampler.set_epoch(0)
    for index in sorted({i % len(train) for i in list(sampler)[: ft.batch_size]}):
        (tiny_videos / train[index].path).write_bytes(b"")  # rank 1's first batch: empty files
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", "finetune", "--dataset", "demo",
        "--data-root", str(tiny_videos), "--arch", "test_resnet", "--init", "none", "--resolution", "32",
        "--epochs", "1", "--batch-size", str(ft.batch_size), "--device", "cpu", "--workers", "0", "--no-progress",
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DIST_INIT_BARRIER": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "cache" / "demo" / "finetune").glob("recognizer-*")
    assert (run_dir / "model.pth").exists()


def test_a_batch_of_a_single_frame_is_skipped_not_a_batchnorm_error():
    """Frame-wise, an epoch's last batch may hold one clip of one frame (N x repeats = 1 modulo
    the batch size), on which BatchNorm cannot train: it is skipped, and so is a failed batch."""
    from pipeline.training import train_one_epoch

    model = create_model(REC, 3, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    clips = torch.rand(4, 1, 3, 32, 32)
    targets = torch.eye(3)[[0, 1, 2, 0]]
    batches = [(clips[:3], targets[:3]), None, (clips[3:], targets[3:])]
    stats = train_one_epoch(model, batches, optimizer, torch.nn.CrossEntropyLoss(), torch.device("cpu"))
    assert stats.clips == 3
    tsn = train_one_epoch(model, [(clips.view(1, 4, 3, 32, 32), targets[:1])], optimizer, torch.nn.CrossEntropyLoss(), torch.device("cpu"))
    assert tsn.clips == 1  # one clip of 4 segments trains


def test_on_a_gpu_the_batches_are_pinned_for_an_asynchronous_copy(monkeypatch):
    """As the features stage's blocks: the loader's pin thread calls each batch's ``pin_memory``
    (training clips and targets, validation indices and uint8 crops); page-locked memory needs
    a GPU, so a copy stands in for it."""
    from torch.utils.data._utils.pin_memory import pin_memory

    from pipeline.extract import ModelFrames
    from pipeline.training import Collated, Unreadable

    pinned: list[torch.Tensor] = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *args: pinned.append(self.clone()) or pinned[-1])
    clips, targets = torch.rand(2, 1, 3, 4, 4), torch.eye(3)[:2]
    train = pin_memory(Collated((clips, targets), [Unreadable(5, "file not found")]))
    assert train.data[0] is pinned[0] and train.data[1] is pinned[1] and torch.equal(pinned[0], clips) and train.unreadable == [Unreadable(5, "file not found")]
    crops = ModelFrames(torch.zeros(4, 3, 4, 4, dtype=torch.uint8), None)
    val = pin_memory(Collated((torch.tensor([0, 1]), crops), []))
    assert val.data[1].pixels is pinned[3] and pinned[3].dtype == torch.uint8 and len(pinned) == 4
    assert pin_memory(Collated(None, [])).data is None


def test_an_epochs_order_is_the_one_torchs_shuffling_loader_gave():
    """Fine-tuning's batches are those of the DataLoader(shuffle=True) it used before its order
    was made explicit: existing runs' weights do not change."""
    from torch.utils.data import RandomSampler

    from pipeline.training import epoch_order

    for size, seed in ((36, 5), (1000, 2**31 + 7)):
        assert epoch_order(size, seed) == list(RandomSampler(range(size), generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize(("phase", "at", "where"), [("training", 2, "after 2 of its {n} training batches"), ("validation", 1, "its training done, its validation not")])
def test_a_stop_signal_saves_the_runs_place_and_the_run_goes_on_to_the_uninterrupted_weights(tiny_videos, run_options, monkeypatch, tmp_path, phase, at, where, default_stop_signals):
    """SIGTERM (a scheduler's preemption, or its time limit) in epoch 2 at the ``at``-th batch
    of its training or of its validation: the run stops after that batch, saves its place (the
    batches given, the loss and clips so far, torch's generator) in last.pth and says so; run
    again, it goes on from there to the weights and log of the run left uninterrupted."""
    import pipeline.training

    ft = replace(FT, epochs=3)
    clips = len([v for v in get_dataset("demo").load(tiny_videos).videos if v.split == "train"]) * ft.repeats  # an epoch's: 27
    epoch_batches = math.ceil(clips / ft.batch_size)
    model_calls = {"training": 0, "validation": 0}
    logits = pipeline.training.clip_logits

    def signalled(model, clips, device):
        phase_now = "training" if model.training else "validation"
        model_calls[phase_now] += 1
        if phase_now == phase and model_calls[phase_now] == (epoch_batches if phase == "training" else 1) + at:  # epoch 2's
            os.kill(os.getpid(), signal.SIGTERM)
        return logits(model, clips, device)

    monkeypatch.setattr(pipeline.training, "clip_logits", signalled)
    with pytest.raises(Stopped) as stopped:
        run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, run_options)
    (run_dir,) = (run_options.cache_dir / "demo" / "finetune").glob("recognizer-*")
    assert str(stopped.value) == f"{run_dir}: stopped by SIGTERM in epoch 2 of 3, {where.format(n=epoch_batches)}; saved in last.pth, from which the same command goes on"
    assert stopped.value.exit_status == 128 + signal.SIGTERM and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    state = torch.load(run_dir / "last.pth", weights_only=False)
    given = at if phase == "training" else epoch_batches
    assert state["epoch"] == 0 and state["within"]["batches"] == [given] and state["within"]["clips"] == min(given * ft.batch_size, clips)
    assert [json.loads(line)["epoch"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == [1]
    monkeypatch.undo()
    resumed = run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, run_options)
    whole = run_finetune("demo", tiny_videos, "recognizer", REC, ft, 6, replace(run_options, cache_dir=tmp_path / "whole"))
    assert resumed.trained_epochs == 2 and [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == [{k: v for k, v in h.items() if k != "seconds"} for h in whole.history]
    a, b = read_checkpoint(Path(resumed.checkpoint))["state_dict"], read_checkpoint(Path(whole.checkpoint))["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_a_jobs_sigterm_to_every_process_stops_the_cli_run_which_goes_on_to_the_uninterrupted_weights(tiny_videos, tmp_path):
    """SIGTERM to each process of the job (SLURM's preemption: the command and its decoding
    workers alike), after the first epoch: the command exits 143 saying where it stopped, no
    video taken for one its decoder died on (the workers leave the signal to the command), and
    run again it finishes with the weights of the run left uninterrupted. The workers start from
    a fork server (Python 3.14's default on Linux), and the signal comes as the second epoch's
    begin: one that it ends before it can leave the signal to the command (torch's worker set-up
    ends itself at SIGTERM) is taken for the stop's, not its video's."""
    from_a_fork_server = ("-c", "import multiprocessing, sys; multiprocessing.set_start_method('forkserver'); from stages.cli import main; main(sys.argv[1:])")
    args = _finetune_command(tiny_videos, epochs=6, batch_size=4, workers=1, python=from_a_fork_server)
    stopped_cache, reference_cache = tmp_path / "stopped", tmp_path / "reference"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = _running_until_an_epoch_is_saved(args, stopped_cache, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    (run_dir,) = stopped_cache.glob("demo/finetune/recognizer-*")
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    assert re.search(rf"^{re.escape(str(run_dir))}: stopped by SIGTERM in epoch \d of 6, .*; saved in last\.pth, from which the same command goes on$", err, re.M), err
    state = torch.load(run_dir / "last.pth", weights_only=False)
    assert "within" in state and not (run_dir / "left_out.json").exists() and not (run_dir / "model.pth").exists()
    resumed = subprocess.run(args + ["--cache-dir", str(stopped_cache)], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{6 - state['epoch'] - 1} epochs trained now" in resumed.stdout
    _assert_the_uninterrupted_weights(run_dir, args, reference_cache, env=env)


def _rank_pid(launcher: int, rank: int) -> int:
    """The pid of torchrun's (``launcher``'s) worker of ``rank``, by its environment."""
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        if f"RANK={rank}\0" in Path(f"/proc/{child}/environ").read_text():
            return int(child)
    raise AssertionError(f"no rank {rank} among torchrun's processes")


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(), reason="finds torchrun's ranks through /proc")
def test_a_stop_signal_to_one_rank_stops_every_rank_at_the_same_step_and_the_run_goes_on_to_the_uninterrupted_weights(tiny_videos, tmp_path):
    """Under torchrun, SIGTERM to rank 1 alone (a node's share of a preempted job): both ranks
    stop after the same step, each place saved, and run again on two ranks the run goes on to
    the weights of the run left uninterrupted."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", "finetune", "--dataset", "demo",
        "--data-root", str(tiny_videos), "--arch", "test_resnet", "--init", "none", "--resolution", "32",
        "--epochs", "6", "--repeats", "3", "--batch-size", "2", "--device", "cpu", "--workers", "0", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stopped_cache, reference_cache = tmp_path / "stopped", tmp_path / "reference"
    proc = _running_until_an_epoch_is_saved(cmd, stopped_cache, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.kill(_rank_pid(proc.pid, 1), signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    (run_dir,) = stopped_cache.glob("demo/finetune/recognizer-*")
    assert proc.returncode != 0 and err.count(f"{run_dir}: stopped by SIGTERM in epoch") == 1, out + err  # said once, by rank 0
    state = torch.load(run_dir / "last.pth", weights_only=False)
    places = state["within"]["batches"]
    assert len(places) == 2 and places[0] == places[1] and not (run_dir / "model.pth").exists()
    resumed = subprocess.run(cmd + ["--cache-dir", str(stopped_cache)], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0 and f"{6 - state['epoch'] - 1} epochs trained now" in resumed.stdout, resumed.stdout + resumed.stderr
    _assert_the_uninterrupted_weights(run_dir, cmd, reference_cache, env=env)
