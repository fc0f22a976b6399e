"""The evaluate stage on the tiny cache: the real path equals the cached logits, the report,
idempotency and bad inputs."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from importlib import metadata
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import pipeline
from pipeline.cache import CacheError, FeatureCache, file_lock, output_lock_path
from pipeline.config import EvalConfig, FeaturesConfig, TrainConfig
from pipeline.datasets import Manifest
from pipeline.models import frame_transform
from pipeline.backends import TorchRunner
from conftest import recognize_all
from pipeline.recognition import ChosenFrameDecoder
from stages.cli import main
from stages.evaluate import evaluate_share, run_evaluate
from stages.evaluate_report import render_table
from stages.features import build_recognizer
from stages.train import load_sampler_inputs, run_train

REPO = Path(__file__).resolve().parents[1]
CFG = TrainConfig(epochs=2, batch_size=4, lr=0.001, milestones=(1,), seed=1)
EVAL = EvalConfig(k=2, curve_k=(1, 2, 3))


def test_decoding_the_chosen_frames_gives_the_cached_logits(tiny_pipeline):
    features, _, _ = tiny_pipeline
    videos = tiny_pipeline[2].parent
    with FeatureCache(features) as cache:
        attrs, logits, frame_ids = cache.attrs, np.asarray(cache["rec_logits"][:]), np.asarray(cache["frame_indices"][:])
    manifest = Manifest.from_json(json.dumps(attrs["manifest"]))
    recognizer, data_cfg = build_recognizer(FeaturesConfig.from_dict(attrs["config"]), manifest.classes)
    chosen = [np.array([0, 3]), np.array([5]), np.array([1, 2, 4])]
    decoder = ChosenFrameDecoder(videos, list(manifest.videos[:3]), [frame_ids[v][p] for v, p in enumerate(chosen)], frame_transform(data_cfg))
    # evaluate's path: torch on the decoded frames, against a cache the default (ONNX Runtime) wrote
    assert attrs["identity"]["backend"] == "onnxruntime"
    real, errors = recognize_all(decoder, TorchRunner(recognizer, torch.device("cpu")), torch.device("cpu"), workers=0)
    assert not errors
    for v, positions in enumerate(chosen):
        np.testing.assert_allclose(real[v], logits[v][positions], rtol=1e-4, atol=1e-4)
        assert (real[v].argmax(1) == logits[v][positions].argmax(1)).all()


def test_evaluate_report(tiny_pipeline, onnx_exports):
    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    report = run_evaluate(features, prototypes, run, truth.parent, EVAL, workers=0, progress=False)
    assert report["computed"]
    rows = {m["method"]: m for m in report["methods"]}
    t, k = report["num_frames"], 2
    assert {"UNIFORM-10 (all frames)", "RANDOM-10 (all frames)", "DENSE (all frames)", "TOP-K-10 (all frames)"} <= set(rows)
    assert {f"UNIFORM (K={k})", f"RANDOM (K={k})", f"DENSE (T={t})", f"TOP-K (K={k} of T={t})", f"NSNet (K={k})", "NSNet w/o NS", "FSM alone", "VGM alone", "Guiding score (oracle)"} <= set(rows)
    # the real path (decoded frames) and the fast path (cached logits) agree
    check = report["real_vs_cached"]
    assert check["same_predictions"] == 1.0 and check["max_abs_score_difference"] < 1e-4
    assert check["map_decoded"] == pytest.approx(check["map_cached"], abs=1e-6)
    assert rows[f"NSNet (K={k})"]["path"] == "decoded"
    # GFLOPs from the counted per-frame costs, P_total = P_rec K + sampler
    g = report["gflops"]
    assert rows[f"UNIFORM (K={k})"]["gflops"] == pytest.approx(k * g["rec_per_frame"])
    assert rows[f"DENSE (T={t})"]["gflops"] == pytest.approx(t * g["rec_per_frame"])
    # Table 1's baselines: 10 frames (or all, when fewer) of all frames; DENSE and TOP-K run on all
    with FeatureCache(features) as cache:
        split = [v["split"] for v in cache.attrs["manifest"]["videos"]]
        counts = np.asarray(cache["num_frames"][:])[[i for i, s in enumerate(split) if s != "train"]]
    assert rows["UNIFORM-10 (all frames)"]["gflops"] == pytest.approx(np.minimum(counts, 10).mean() * g["rec_per_frame"])
    assert rows["TOP-K-10 (all frames)"]["gflops"] == rows["DENSE (all frames)"]["gflops"] == pytest.approx(counts.mean() * g["rec_per_frame"])
    assert rows[f"NSNet (K={k})"]["gflops"] == pytest.approx(k * g["rec_per_frame"] + t * g["light_per_frame"] + g["fem"] + g["vgm"] + g["fsm"])
    assert all(0.0 <= m["map"] <= 100.0 and 0.0 <= m["top1"] <= 100.0 for m in report["methods"])
    assert [p["k"] for p in report["budget_curve"]["NSNet"]] == [1, 2, 3]
    assert {c["claim"] for c in report["claims"]} >= {"NSNet mAP >= UNIFORM mAP + 5", "FSM with NS labels mAP >= FSM with video labels + 3"}
    out = Path(report["output"])
    assert json.loads((out / "results.json").read_text())["environment"] == report["environment"] and report["environment"]["nsnet"] == pipeline.__version__
    assert {"results.json", "report.md", "budget_curve.png", "class_saliency.png", "selected_frames.png"} <= {p.name for p in out.iterdir()}
    assert f"NSNet (K={k})" in (out / "report.md").read_text() and f"NSNet (K={k})" in render_table(report)
    _check_selected_frames(report, features, prototypes, k)
    _check_per_class(report, rows, k)
    again = run_evaluate(features, prototypes, run, truth.parent, EVAL, workers=0, progress=False)
    assert not again["computed"] and again["methods"] == report["methods"]
    (out / "results.json").write_bytes((out / "results.json").read_bytes()[:-9])  # a copy cut short: JSON's words alone before 2026-12-07
    with pytest.raises(CacheError, match=re.escape(f"{out / 'results.json'}: damaged, not JSON (") + r".*" + re.escape(f": a copy cut short, or a disk error); remove {out} and run `nsnet evaluate` again")):
        run_evaluate(features, prototypes, run, truth.parent, EVAL, workers=0, progress=False)
    shutil.rmtree(out)  # not evaluated yet, and another process is evaluating it
    with file_lock(output_lock_path(out)):
        with pytest.raises(CacheError, match=r"another writer holds this lock \(pid \d+ on .*\); it is computing the same output"):
            run_evaluate(features, prototypes, run, truth.parent, EVAL, workers=0, progress=False)
    assert not out.exists()
    # the recognizer on decoded frames through ONNX Runtime: its own outputs, the same figures
    onnx = run_evaluate(features, prototypes, run, truth.parent, EVAL, workers=0, progress=False, backend="onnxruntime", export_dir=onnx_exports)
    assert onnx["computed"] and (report["backend"], onnx["backend"]) == ("torch", "onnxruntime") and onnx["output"] != report["output"]
    assert len(list(features.parent.glob(features.name + ".allframes-*.zarr"))) == 2
    assert onnx["real_vs_cached"]["same_predictions"] == 1.0 and onnx["real_vs_cached"]["max_abs_score_difference"] < 1e-4
    for row in onnx["methods"]:
        assert row["map"] == pytest.approx(rows[row["method"]]["map"], abs=1e-6) and row["top1"] == rows[row["method"]]["top1"]


def _check_per_class(report: dict, rows: dict, k: int) -> None:
    """Each sampler's class APs average to its row's mAP; the count above UNIFORM by hand; the
    CSV a row a class."""
    import csv

    per = report["per_class_ap"]
    t = report["num_frames"]
    assert list(per["ap"]) == [f"NSNet (K={k})", f"UNIFORM (K={k})", f"DENSE (T={t})", f"TOP-K (K={k} of T={t})", "NSNet w/o NS", "UNIFORM-10 (all frames)", "RANDOM-10 (all frames)", "DENSE (all frames)", "TOP-K-10 (all frames)"]
    for name, ap in per["ap"].items():
        assert len(ap) == report["classes"] and np.mean([a for a in ap if a is not None]) == pytest.approx(rows[name]["map"], abs=1e-9)
    assert [a is None for a in per["ap"][per["nsnet"]]] == [p == 0 for p in per["positives"]]
    ours, uniform = per["ap"][f"NSNet (K={k})"], per["ap"][f"UNIFORM (K={k})"]
    assert per["nsnet_above_baseline"] == sum(o is not None and o > u for o, u in zip(ours, uniform))
    table = list(csv.reader((Path(report["output"]) / "per_class_ap.csv").read_text().splitlines()))
    assert table[0] == ["class", "positives", *per["ap"]] and [r[0] for r in table[1:]] == per["classes"]
    assert "## Per-class AP" in (Path(report["output"]) / "report.md").read_text() and "per-class AP: NSNet (K=2) above UNIFORM (K=2) in" in render_table(report)


def test_the_per_class_section_names_the_largest_gains_and_losses_by_hand():
    from stages.evaluate_report import _per_class_section, per_class_csv

    per = {
        "classes": ["a, with a comma", "b", "c", "d"], "positives": [2, 1, 0, 3], "nsnet": "NSNet", "baseline": "UNIFORM",
        "ap": {"NSNet": [90.0, 40.0, None, 75.0], "UNIFORM": [50.0, 60.0, None, 70.0]}, "nsnet_above_baseline": 2, "classes_with_positives": 3,
    }
    lines = _per_class_section(per, shown=1)
    assert lines[2] == "NSNet is above UNIFORM in 2 of 3 classes; its 1 largest and 1 smallest differences (every class in `per_class_ap.csv`):"
    assert lines[6:8] == ["| a, with a comma | 2 | 90.0 | 50.0 | +40.0 |", "| b | 1 | 40.0 | 60.0 | -20.0 |"]  # +40 most, -20 least; d's +5 neither
    assert per_class_csv(per).splitlines() == ["class,positives,NSNet,UNIFORM", '"a, with a comma",2,90.00,50.00', "b,1,40.00,60.00", "c,0,,", "d,3,75.00,70.00"]


def _check_selected_frames(report: dict, features: Path, prototypes: Path, k: int) -> None:
    """Fig. 4's record: NSNet's row is its predictions' frames, UNIFORM's the uniform
    positions, every g the prototypes stage's, the guidance over all videos by hand."""
    from pipeline.baselines import uniform_positions
    from stages.train import load_sampler_inputs

    inputs = load_sampler_inputs(features, prototypes)
    row_of = {inputs.videos[i]["video_id"]: i for i in range(len(inputs.videos))}
    predictions = [json.loads(line) for line in (Path(report["output"]) / "predictions.jsonl").read_text().splitlines()]
    selected = report["selected_frames"]
    assert len(selected["videos"]) == min(4, len(predictions)) and len({v["video_id"] for v in selected["videos"]}) == len(selected["videos"])
    ours = {p["video_id"]: p for p in predictions}
    for video in selected["videos"]:
        uniform, plain, nsnet = video["rows"]
        assert (uniform["method"], plain["method"], nsnet["method"]) == (f"UNIFORM (K={k})", "NSNet w/o NS", f"NSNet (K={k})")
        assert uniform["positions"] == uniform_positions(report["num_frames"], k).tolist()
        frame_at = dict(zip(ours[video["video_id"]]["positions"], ours[video["video_id"]]["frames"]))
        assert nsnet["positions"] == sorted(frame_at) and nsnet["frames"] == [frame_at[p] for p in nsnet["positions"]]  # in observed order
        g = inputs.g[row_of[video["video_id"]]]
        for row in video["rows"]:
            assert row["g"] == pytest.approx(g[row["positions"]].tolist()) and row["salient"] == [v > 0.5 for v in row["g"]]
        assert video["times"] and "error" not in video  # decoded for the thumbnails
    chosen = np.concatenate([inputs.g[row_of[p["video_id"]]][p["positions"]] for p in predictions])
    assert selected["guidance"][f"NSNet (K={k})"] == pytest.approx({"mean_g": chosen.mean(), "salient_share": np.mean(chosen > 0.5)})
    assert "chosen frames' guiding score" in render_table(report) and "## Chosen frames (Fig. 4)" in (Path(report["output"]) / "report.md").read_text()


def test_the_decoded_path_decodes_in_the_main_process_where_shared_memory_holds_no_batch(tiny_pipeline, monkeypatch):
    """8 videos' K chosen crops would not fit a cramped /dev/shm: the decoders drop to none with a
    warning, and the decoded path still gives the cached logits."""
    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=2**26, used=2**26 - 1000, free=1000))
    with pytest.warns(RuntimeWarning, match=r"decoding processes lowered from 1 to 0: each holds up to 3 decoded batches of 0\.0469 MiB"):
        report = run_evaluate(features, prototypes, run, truth.parent, replace(EVAL, all_frames=False), workers=1, progress=False)
    assert report["real_vs_cached"]["same_predictions"] == 1.0 and report["real_vs_cached"]["max_abs_score_difference"] < 1e-4


def test_nsnet_from_the_cache_decodes_nothing_and_gives_the_cached_path_s_figures(tiny_pipeline, monkeypatch):
    """``--nsnet-from-cache``: NSNet's row scored from the cached logits of its K frames (no
    video decoded), equal to the cached side of the decoded run's check; the other rows the
    same; its own output folder, the decoded run's folder as before the option existed. Here
    matplotlib fails to import in the second run: its figures are warnings, its report whole."""
    import pipeline.plots
    import pipeline.showcase
    import stages.evaluate
    from pipeline.cache import fingerprint
    from stages.train import load_sampler_inputs

    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    cfg = replace(EVAL, all_frames=False)
    decoded = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    monkeypatch.setattr(stages.evaluate, "recognized", lambda *args, **kwargs: pytest.fail("a video was decoded"))
    monkeypatch.setattr(pipeline.showcase, "open_record", lambda *args: pytest.fail("a video was decoded for Fig. 4"))
    monkeypatch.setattr(pipeline.plots, "_pyplot", lambda: (_ for _ in ()).throw(ImportError("numpy.core.multiarray failed to import\nmore")))
    with pytest.warns(UserWarning) as warned:
        cached = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False, nsnet_from_cache=True)
    assert [str(w.message) for w in warned if "figure not drawn" in str(w.message)] == [  # drawn in the output's temporary folder, named as the output's
        f"{cached['output']}/{name}: figure not drawn (ImportError: numpy.core.multiarray failed to import)" for name in ("budget_curve.png", "class_saliency.png", "selected_frames.png")]
    assert decoded["figures"] == ["budget_curve.png", "class_saliency.png", "selected_frames.png"] and cached["figures"] == []
    assert json.loads((Path(cached["output"]) / "results.json").read_text())["figures"] == [] and not list(Path(cached["output"]).glob("*.png"))
    assert f"report {cached['output']}/report.md (no figures: matplotlib, the 'plots' extra, is not installed or could not draw them)" in render_table(cached)
    nsnet = {report["output"]: next(m for m in report["methods"] if m["method"] == "NSNet (K=2)") for report in (decoded, cached)}
    assert nsnet[decoded["output"]]["path"] == "decoded" and nsnet[cached["output"]]["path"] == "cache"
    assert nsnet[cached["output"]]["map"] == pytest.approx(decoded["real_vs_cached"]["map_cached"], abs=1e-9) and cached["real_vs_cached"] is None
    assert cached["skipped"] == ["asked for (--nsnet-from-cache), skipped: NSNet's decoded row (the recognizer on the K frames decoded again): its logits come from the cache"]
    assert [m for m in cached["methods"] if m["method"] != "NSNet (K=2)"] == [m for m in decoded["methods"] if m["method"] != "NSNet (K=2)"]
    inputs = load_sampler_inputs(features, prototypes)
    before = fingerprint({"features": inputs.content_fingerprint, "prototypes": prototypes.name, "run": run.name, "eval": asdict(cfg)})  # the identity before the option
    assert decoded["output"] == str(features.with_name(f"{features.name}.eval-{before[:16]}")) and cached["output"] != decoded["output"]
    assert "asked for (--nsnet-from-cache)" in render_table(cached)


def test_the_report_says_how_many_evaluation_videos_the_features_stage_left_out(tiny_videos, tiny_config, run_options):
    """A val video that failed in the features stage (emptied here: an unavailable YouTube
    video) is not scored; the report counts it by why, beside the videos scored (the mAP is
    over those: a figure to compare with the paper's needs the count). The prototypes and the
    sampler run say the same of the training videos (one emptied too), the run trained and again
    when found finished."""
    from pipeline.prototypes import GuidingScorer
    from stages.features import run_features
    from stages.prototypes import run_prototypes

    listed = [line.split(",") for line in (tiny_videos / "manifest.csv").read_text().splitlines()[1:]]
    val, train = ([path for path, *_, split in listed if split == wanted] for wanted in ("val", "train"))
    (tiny_videos / val[0]).write_bytes(b"")
    (tiny_videos / train[0]).write_bytes(b"")
    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    made = run_prototypes(features, GuidingScorer())
    prototypes = Path(made.path)
    assert f"videos          {len(train) - 1} of {len(train)} train videos (1 left out: 1 failed in the features stage) (fit), {len(listed) - 2} scored" in made.table()
    trained = run_train(features, prototypes, CFG, progress=False)
    run = Path(trained.path)
    on = f"trained on {len(train) - 1} of {len(train)} train videos (1 left out: 1 failed in the features stage)"
    assert trained.table().splitlines()[1] == on and run_train(features, prototypes, CFG, progress=False).table().splitlines()[1] == on
    assert {k: json.loads((run / "metrics.json").read_text())[k] for k in ("videos", "split", "left_out")} == {"videos": len(train) - 1, "split": "train", "left_out": {"failed": 1, "pending": 0}}
    listing = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir)])  # the run's line says it too
    assert f"    {run.name.split('.zarr.')[1]}: 2 epochs, FSM ns, VGM ns, FEM transformer, gamma 0.2; on {len(train) - 1} of {len(train)} train videos (1 left out: 1 failed in the features stage)" in listing.output.splitlines()
    report = run_evaluate(features, prototypes, run, tiny_videos, replace(EVAL, curve_k=(2,), all_frames=False), workers=0, progress=False, nsnet_from_cache=True)
    assert (report["videos"], report["left_out"]) == (len(val) - 1, {"failed": 1, "pending": 0})
    said = f"{len(val) - 1} of {len(val)} val videos (1 left out: 1 failed in the features stage)"
    assert render_table(report).startswith(f"evaluation on {said}, ") and said in (Path(report["output"]) / "report.md").read_text()


def test_the_videos_evaluated_are_said_with_those_left_out_by_why():
    """Hand-made reports: thousands grouped, each reason counted, none said where none is left
    out, and reports made before the split or the count was recorded said as they were."""
    from stages.evaluate_report import videos_said

    assert videos_said({"videos": 4520, "split": "val", "left_out": {"failed": 400, "pending": 6}}) == "4,520 of 4,926 val videos (406 left out: 400 failed in the features stage, 6 not computed yet, the cache unfinished)"
    assert videos_said({"videos": 4520, "split": "test", "left_out": {"failed": 0, "pending": 3}}) == "4,520 of 4,523 test videos (3 left out: 3 not computed yet, the cache unfinished)"
    assert videos_said({"videos": 120, "split": "val", "left_out": {"failed": 0, "pending": 0}}) == videos_said({"videos": 120, "split": "val"}) == "120 val videos"
    assert videos_said({"videos": 120}) == "120 videos"


def test_an_interrupted_decoded_row_goes_on_where_it_stopped(tiny_pipeline, monkeypatch):
    """NSNet's decoded row is kept a shard of videos at a time (2 here, of 3): killed after the
    first shard, evaluate again decodes only the third video, and the report is a one-go run's.
    A video that cannot be decoded is named with where the others are kept, and a run with it
    back decodes it alone."""
    import pipeline.row_store
    import stages.evaluate

    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    cfg = replace(EVAL, all_frames=False)
    one_go = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    shutil.rmtree(one_go["output"])
    for store in features.parent.glob(features.name + ".decoded-*.zarr"):
        shutil.rmtree(store)
    monkeypatch.setattr(pipeline.row_store, "SHARD_VIDEOS", 2)
    decode = stages.evaluate.recognized
    decoded: list[list[str]] = []

    def recognizing(decoder, *args, **kwargs):
        decoded.append([Path(r.path).name for r in decoder.records])
        if kill_at == len(decoded):
            raise KeyboardInterrupt
        return decode(decoder, *args, **kwargs)

    monkeypatch.setattr(stages.evaluate, "recognized", recognizing)
    kill_at = 2
    with pytest.raises(KeyboardInterrupt):
        run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    assert [len(names) for names in decoded] == [2, 1]
    kill_at, first = 0, decoded[0]
    decoded.clear()
    resumed = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    assert len(decoded) == 1 and len(decoded[0]) == 1 and decoded[0][0] not in first
    assert resumed["methods"] == one_go["methods"]
    # its recognizer ran batches of 2 + 1 videos against 3 at once, which oneDNN may round
    # otherwise in the last bits on some CPUs (seen: a largest score difference of 1.03e-8
    # against 8.2e-9): the check's other figures are the one-go run's
    check = resumed["real_vs_cached"]
    assert {**check, "max_abs_score_difference": 0.0} == {**one_go["real_vs_cached"], "max_abs_score_difference": 0.0} and check["max_abs_score_difference"] < 1e-6
    # one video gone: named, the others kept; back, it alone is decoded
    (store,) = features.parent.glob(features.name + ".decoded-*.zarr")
    shutil.rmtree(store)
    shutil.rmtree(resumed["output"])
    gone = truth.parent / "videos" / decoded[0][0]
    gone.rename(gone.with_suffix(".away"))
    decoded.clear()
    with pytest.raises(CacheError, match=rf"1 evaluation video\(s\) could not be decoded again since the cache was built \(the others are kept in {store}; a new run decodes these again, or --nsnet-from-cache scores NSNet from the cached logits of its K frames instead of decoding them again\): .*{gone.name}: file not found"):
        run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    gone.with_suffix(".away").rename(gone)
    decoded.clear()
    again = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    assert decoded == [[gone.name]] and again["methods"] == one_go["methods"]


def _decoding_recorded(monkeypatch) -> dict[str, list[list[str]]]:
    """The videos each decoding pass of evaluate decodes, batch by batch: NSNet's decoded row
    and the all-frames pass."""
    import stages.all_frames
    import stages.evaluate

    decoded: dict[str, list[list[str]]] = {"row": [], "all frames": []}
    recognize, summarise = stages.evaluate.recognized, stages.all_frames.summaries

    def recognizing(decoder, *args, **kwargs):
        decoded["row"].append([Path(r.path).name for r in decoder.records])
        return recognize(decoder, *args, **kwargs)

    def summarising(chunks, *args, **kwargs):
        decoded["all frames"].append([Path(record.path).name for _, record in chunks.videos])
        return summarise(chunks, *args, **kwargs)

    monkeypatch.setattr(stages.evaluate, "recognized", recognizing)
    monkeypatch.setattr(stages.all_frames, "summaries", summarising)
    return decoded


def _remove_evaluation(report: dict, features: Path) -> None:
    """An evaluation's output and its decoded stores gone, for the next to compute them anew."""
    shutil.rmtree(report["output"])
    for store in [*features.parent.glob(features.name + ".decoded-*.zarr"), *features.parent.glob(features.name + ".allframes-*.zarr")]:
        shutil.rmtree(store)


def test_shares_divide_the_decoding_and_the_report_decodes_nothing_more(tiny_pipeline, monkeypatch, tmp_path):
    """torchrun ranks and --shard jobs divide an evaluation's decoding by the stores' shards
    (1 video each here, of 3): share 0 of 2 decodes the first and third video, share 1 the
    second, in NSNet's decoded row and the all-frames pass alike; the report then decodes
    nothing, and is a one-go run's. ``torchrun -m stages.cli evaluate`` on two CPU ranks does the
    same (rank 0 the one shard of 256 videos there, rank 1 none): rank 1 says so and ends, rank 0
    writes the report."""
    import pipeline.row_store
    from stages.cli import evaluation_config

    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    cfg = evaluation_config("demo", None, None, k=2)  # as the command line below gives it
    one_go = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
    _remove_evaluation(one_go, features)
    with monkeypatch.context() as patched:
        patched.setattr(pipeline.row_store, "SHARD_VIDEOS", 1)
        decoded = _decoding_recorded(patched)
        videos = [Path(v["path"]).name for v in load_sampler_inputs(features, prototypes).videos if v["split"] == "val"]
        assert len(videos) == 3
        parts = [evaluate_share(features, prototypes, run, truth.parent, (i, 2), cfg, workers=0, progress=False) for i in range(2)]
        assert decoded == {"row": [[videos[0]], [videos[2]], [videos[1]]], "all frames": [[videos[0]], [videos[2]], [videos[1]]]}
        assert [{name: (stored.computed, stored.errors) for name, stored in part.stores.items()} for part in parts] == [
            {"NSNet's decoded row": (2, {}), "all frames": (2, {})},
            {"NSNet's decoded row": (1, {}), "all frames": (1, {})},
        ]
        assert parts[1].summary().startswith("share 1/2 of the evaluation's decoding:\n  NSNet's decoded row: 1 video(s) computed now, 0 failed (")
        decoded["row"].clear(), decoded["all frames"].clear()
        report = run_evaluate(features, prototypes, run, truth.parent, cfg, workers=0, progress=False)
        assert decoded == {"row": [], "all frames": []} and report["computed"]
        assert report["methods"] == one_go["methods"]
    _remove_evaluation(report, features)
    args = ["evaluate", "--dataset", "demo", "--data-root", str(truth.parent), "--cache-dir", str(tmp_path), "--features", str(features), "--prototypes", str(prototypes), "--sampler-run", str(run), "--k", "2", "--device", "cpu", "--backend", "torch", "--workers", "0", "--no-progress"]
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"share 1/2 of the evaluation's decoding:\n  NSNet's decoded row: 0 video\(s\) computed now, 0 failed \(.+\)\n  all frames: 0 video\(s\) computed now, 0 failed \(.+\)\n  rank 0 writes the report", proc.stdout), proc.stdout
    assert "NSNet (K=2)" in proc.stdout and "share 0/2" not in proc.stdout
    assert json.loads((Path(one_go["output"]) / "results.json").read_text())["methods"] == one_go["methods"]
    # a share whose video cannot be decoded says so and keeps going; the report's run retries it
    (store,) = features.parent.glob(features.name + ".decoded-*.zarr")
    shutil.rmtree(store)
    monkeypatch.setattr(pipeline.row_store, "SHARD_VIDEOS", 1)
    gone = truth.parent / "videos" / videos[1]
    gone.rename(gone.with_suffix(".away"))
    job = CliRunner().invoke(main, [*args, "--shard", "1/2"])  # a --shard job, in this process
    assert job.exit_code == 1, job.output
    assert re.search(rf"^share 1/2 of the evaluation's decoding:\n  NSNet's decoded row: 0 video\(s\) computed now, 1 failed \(.+\)\n  all frames: 0 video\(s\) computed now, 0 failed \(.+\)\n  failed: .+{videos[1]}: file not found \(run again to retry them\)\n  when every --shard job has finished, `nsnet evaluate` without --shard writes the report", job.output), job.output

def test_the_sampler_run_nsnet_train_last_finished_is_the_default_of_the_later_stages(tiny_pipeline):
    """Trained with options of its own (here 1 and then 2 epochs, not the demo's 40), the run is
    what ``evaluate`` and ``predict`` take when no ``--run`` is given; before any training, the
    run of the dataset's train config where it is there, else an error saying the prototypes
    have no run (and which run other prototypes of the cache last had)."""
    from click.testing import CliRunner

    from pipeline.datasets import get_dataset
    from pipeline.prototypes import GuidingScorer
    from stages.cli import main, resolve_run
    from stages.prototypes import run_prototypes
    from stages.train import run_dir_for

    features, prototypes, truth = tiny_pipeline
    with FeatureCache(features) as cache:
        default = run_dir_for(features, prototypes, get_dataset("demo").train, cache.content_fingerprint)
    with pytest.raises(CacheError, match=rf"^{re.escape(str(prototypes))}: no sampler run trained on these prototypes: run `nsnet train` on them \(its default: the latest made for the cache\), or pass --run$"):
        resolve_run(features, prototypes, "demo", None)  # it had named the config's run dir, "no such sampler run directory"
    if not torch.cuda.is_available():  # the device is picked as in every stage (auto: the GPU when present)
        asked = CliRunner().invoke(main, ["train", "--dataset", "demo", "--features", str(features), "--prototypes", str(prototypes), "--device", "cuda"])
        assert asked.exit_code == 1 and "device 'cuda' asked for, but CUDA is not available" in asked.output
    runs = []
    for options in (["--epochs", "1"], ["--epochs", "2", "--shuffle-window", "4"]):
        args = ["train", "--dataset", "demo", "--data-root", str(truth.parent), "--features", str(features), "--prototypes", str(prototypes), *options, "--no-progress"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        runs.append(resolve_run(features, prototypes, "demo", None))
        assert (runs[-1] / "model.pth").is_file() and runs[-1].name in result.output
    assert runs[0] != runs[1] and default not in runs and runs[0].parent == features.parent
    metrics = json.loads((runs[1] / "metrics.json").read_text())
    assert metrics["config"]["shuffle_window"] == 4  # 9 training videos, 4 held at a time
    assert metrics["environment"]["libraries"]["torch"] == metadata.version("torch")  # what the run was trained with
    refused = CliRunner().invoke(main, ["train", "--dataset", "demo", "--features", str(features), "--prototypes", str(prototypes), "--shuffle-window", "0"])
    assert refused.exit_code == 2 and "--shuffle-window" in refused.output
    assert resolve_run(features, prototypes, "demo", features.parent / "given") == features.parent / "given"
    # prototypes made since (another epsilon), no run on them yet: the run last finished on the earlier ones named
    newer = Path(run_prototypes(features, GuidingScorer(epsilon=50.0), progress=False).path)
    with pytest.raises(CacheError, match=rf"^{re.escape(str(newer))}: no sampler run trained on these prototypes: .*; the run last finished on other prototypes of this cache: --run {re.escape(str(runs[1]))}$"):
        resolve_run(features, newer, "demo", None)
    with FeatureCache(features) as cache:  # a run of the train config, trained before runs were recorded: taken
        on_newer = run_dir_for(features, newer, get_dataset("demo").train, cache.content_fingerprint)
    on_newer.mkdir()
    shutil.copy(runs[1] / "model.pth", on_newer / "model.pth")
    assert resolve_run(features, newer, "demo", None) == on_newer


def test_the_evaluation_scores_the_light_features_a_batch_at_a_time(tiny_pipeline, monkeypatch):
    from pipeline.sampler_training import sampler_saliency
    from stages.evaluate import EvalData
    from stages.train import load_sampler_inputs, load_trained_sampler

    features, prototypes, _ = tiny_pipeline
    inputs = load_sampler_inputs(features, prototypes)
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    model, objective, _ = load_trained_sampler(run, inputs.content_fingerprint, inputs.shape, torch.device("cpu"))
    monkeypatch.setattr("stages.train.SALIENCY_BATCH", 2)
    data = EvalData(inputs, features)
    assert len(data.videos) > 2 and not hasattr(data, "light")  # no light features held
    with FeatureCache(features) as cache:
        light = np.asarray(cache["light_features"][:])[data.videos]
        np.testing.assert_array_equal(data.logits, np.asarray(cache["rec_logits"][:])[data.videos])
    s_f, s_v = data.saliency(model, objective, torch.device("cpu"))
    expected = sampler_saliency(model, objective, light, torch.device("cpu"), batch_videos=2)  # the same batches
    np.testing.assert_array_equal(s_f, expected[0])
    np.testing.assert_array_equal(s_v, expected[1])
    assert s_f.shape == (len(data.videos), inputs.shape.num_frames)


def test_evaluate_refuses_bad_inputs(tiny_pipeline, tmp_path):
    features, prototypes, truth = tiny_pipeline
    with pytest.raises(CacheError, match="no trained sampler here"):
        run_evaluate(features, prototypes, tmp_path / "nothing", truth.parent, EVAL, workers=0, progress=False)
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    with FeatureCache(features) as cache:
        t = cache["frame_indices"].shape[1]
    too_many = f"K={t + 1} is more than the T={t} frames observed a video"
    with pytest.raises(ValueError, match=too_many):
        run_evaluate(features, prototypes, run, truth.parent, replace(EVAL, k=t + 1), workers=0, progress=False)
    with pytest.raises(ValueError, match=too_many):  # a --shard job's or torchrun rank's share
        evaluate_share(features, prototypes, run, truth.parent, (0, 1), replace(EVAL, k=t + 1), workers=0, progress=False)
    saved = torch.load(run / "model.pth", weights_only=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({**saved, "features_fingerprint": "0" * 64}, foreign / "model.pth")
    with pytest.raises(CacheError, match="trained on another feature cache"):
        run_evaluate(features, prototypes, foreign, truth.parent, EVAL, workers=0, progress=False)
    # a run whose training config is out of the ranges checked since 2026-12-06 (made before)
    torch.save({**saved, "config": {**saved["config"], "gamma": -2.0}}, foreign / "model.pth")
    with pytest.raises(CacheError, match=r"model.pth: the run's training config is out of range \(gamma must be at least 0 \(the weight of L_ns\), got -2.0\); train again"):
        run_evaluate(features, prototypes, foreign, truth.parent, EVAL, workers=0, progress=False)
    # a video removed after the cache was built: the error names it
    data = tmp_path / "data"
    shutil.copytree(truth.parent, data)
    with FeatureCache(features) as cache:
        victim = next(v for v in cache.attrs["manifest"]["videos"] if v["split"] != "train")["path"]
    (data / victim).unlink()
    with pytest.raises(CacheError, match=Path(victim).name) as removed:
        run_evaluate(features, prototypes, run, data, EVAL, workers=0, progress=False)
    assert "--data-root" not in str(removed.value)
    # a data root that is not there (the dataset's default, where the videos lie elsewhere): the error says so
    with pytest.raises(CacheError, match=r"nowhere does not exist: pass the data root the cache was built from, --data-root\)"):
        run_evaluate(features, prototypes, run, tmp_path / "nowhere", EVAL, workers=0, progress=False)
    (tmp_path / "linked").symlink_to("/mnt/unmounted/data")  # a root linked to a disk not mounted: the link named
    with pytest.raises(CacheError, match=r"linked links to /mnt/unmounted/data, which is not there: pass the data root the cache was built from, --data-root\)"):
        run_evaluate(features, prototypes, run, tmp_path / "linked", EVAL, workers=0, progress=False)


def test_ablations_build_every_table_from_switches(tiny_pipeline, run_options):
    from stages.ablations import render_ablations, run_ablations

    features, prototypes, _ = tiny_pipeline
    report = run_ablations(features, prototypes, CFG, EVAL, progress=False)
    tables = report["tables"]
    out = Path(report["output"])
    assert report["computed"] and out.name.startswith(features.name + ".ablations-") and {p.name for p in out.iterdir()} == {"ablations.json", "ablations.md"}
    assert json.loads((out / "ablations.json").read_text())["environment"]["libraries"]["torch"] == metadata.version("torch")
    # one evaluation split: scored on it, named in the tables, not in the folder's identity (named where a cache has two)
    from stages.ablations import ablations_dir_for

    with FeatureCache(features) as cache:
        fp = cache.content_fingerprint
    assert report["split"] == "val" and render_ablations(report).startswith(f"ablations on {report['videos']} val videos")
    assert out == ablations_dir_for(features, prototypes, CFG, EVAL, fp) != ablations_dir_for(features, prototypes, CFG, EVAL, fp, "val")
    assert list(tables) == ["6a", "6b", "6c", "6d", "B.1", "B.2"]
    assert [r[0] for r in tables["6a"]["rows"]] == ["baseline", "+ non-salient class", "+ NS"]
    assert [r[0] for r in tables["6b"]["rows"]] == ["2", "4"]
    assert [r[0] for r in tables["6c"]["rows"]] == ["1D Conv", "LSTM", "MLP", "Transformer"]
    assert [r[0] for r in tables["6d"]["rows"]] == ["Baseline", "Regression", "Ranking", "Baseline+", "Ours"]
    assert [r[0] for r in tables["B.2"]["rows"]] == ["add", "mul", "max", "intersection", "union", "join"]
    assert all(0.0 <= x <= 100.0 for t in tables.values() for r in t["rows"] for x in r[1:])
    # the paper's model appears in several tables with one and the same score
    assert tables["6a"]["rows"][2][2] == tables["6d"]["rows"][4][1] == tables["B.1"]["rows"][1][1]
    assert tables["6c"]["rows"][3][1] == tables["6b"]["rows"][0][3] == dict((r[0], r[1]) for r in tables["B.2"]["rows"])["union"]
    runs = sorted(features.parent.glob(f"{features.name}.train-*"))
    assert len(runs) == 11  # 6a: 3 (incl. the paper model); 6c: 3 more; 6d: 4 more; B.1: the response guide
    again = run_ablations(features, prototypes, CFG, EVAL, progress=False)  # the stored tables
    assert not again["computed"] and again["tables"] == tables and again["output"] == report["output"]
    kept = (out / "ablations.json").read_bytes()
    (out / "ablations.json").write_bytes(kept.replace(b"{", b"\xff", 1))  # a byte damaged
    with pytest.raises(CacheError, match=re.escape(f"{out / 'ablations.json'}: damaged, not JSON (") + r".*" + re.escape(f"; remove {out} and run `nsnet ablations` again")):
        run_ablations(features, prototypes, CFG, EVAL, progress=False)
    (out / "ablations.json").write_bytes(kept)
    other = run_ablations(features, prototypes, CFG, replace(EVAL, k=3), progress=False)  # another K: its own tables, no new run
    assert other["computed"] and other["output"] != report["output"] and [r[0] for r in other["tables"]["6b"]["rows"]] == ["3", "6"]
    assert json.loads((out / "ablations.json").read_text())["tables"] == tables  # the first K's tables kept
    # `nsnet outputs` lists both under the prototypes they were made from, with Table 6b's first row
    listing = CliRunner().invoke(main, ["outputs", "--dataset", "demo", "--cache-dir", str(run_options.cache_dir), "--json", str(run_options.cache_dir / "outputs.json")])
    made = {node["path"]: node for node in json.loads((run_options.cache_dir / "outputs.json").read_text())["caches"][0]["made_from_it"]}
    assert {Path(n["path"]) for n in made[str(prototypes)]["made_from_it"] if ".ablations-" in n["path"]} == {out, Path(other["output"])}
    said = {f"    {Path(r['output']).name.split('.zarr.')[1]}: ablations, {r['videos']} val videos, K={r['eval_config']['k']} union: NSNet {r['tables']['6b']['rows'][0][3]:.1f}, FSM {r['tables']['6b']['rows'][0][2]:.1f}, VGM {r['tables']['6b']['rows'][0][1]:.1f} mAP" for r in (report, other)}
    assert {line for line in listing.output.splitlines() if ": ablations, " in line} == said
    shutil.rmtree(out)
    with file_lock(output_lock_path(out)):  # another process computing them
        with pytest.raises(CacheError, match="another writer holds this lock"):
            run_ablations(features, prototypes, CFG, EVAL, progress=False)
    assert not out.exists()
    assert sorted(features.parent.glob(f"{features.name}.train-*")) == runs
    assert "Table 6c" in render_ablations(report)


def test_the_claims_are_the_paper_s_orderings_checked_by_hand():
    """The paper's own figures hold every claim: Table 1 (ActivityNet: NSNet 74.9 mAP at 73.2 G,
    UNIFORM-10 68.6, RANDOM-10 68.1, DENSE 69.0 at 930.8 G, TOP-K-10 72.5), Table 2's 26.0 G at
    K=5 of T=16 against ResNet-50 on the 16 frames (16 x 4.1 = 65.6 G); the rows of the observed
    frames made up around them."""
    from stages.evaluate import _claims

    def row(map_: float, gflops: float = 0.0) -> dict:
        return {"map": map_, "gflops": gflops}

    rows = {
        "NSNet (K=5)": row(74.9, 26.0), "UNIFORM (K=5)": row(68.6), "TOP-K (K=5 of T=16)": row(72.5), "FSM alone": row(73.0), "VGM alone": row(72.0),
        "FSM alone, video labels (w/o NS)": row(69.0), "DENSE (T=16)": row(69.0, 65.6),
        "UNIFORM-10 (all frames)": row(68.6, 195.8), "RANDOM-10 (all frames)": row(68.1, 195.8), "DENSE (all frames)": row(69.0, 930.8), "TOP-K-10 (all frames)": row(72.5, 930.8),
    }
    claims = {c["claim"]: (c["value"], c["bound"], c["holds"]) for c in _claims(rows, 5, 16, 10)}
    assert claims == {
        "NSNet mAP >= UNIFORM mAP + 5": (74.9, 73.6, True),
        "NSNet mAP >= TOP-K mAP - 1": (74.9, 71.5, True),
        "FSM with NS labels mAP >= FSM with video labels + 3": (73.0, 72.0, True),
        "NSNet (fused) mAP >= max(FSM alone, VGM alone)": (74.9, 73.0, True),
        "NSNet mAP >= UNIFORM-10 (all frames) mAP": (74.9, 68.6, True),
        "NSNet mAP >= RANDOM-10 (all frames) mAP": (74.9, 68.1, True),
        "NSNet mAP >= DENSE (all frames) mAP": (74.9, 69.0, True),
        "NSNet mAP >= TOP-K-10 (all frames) mAP": (74.9, 72.5, True),
        "NSNet GFLOPs <= 1/2 of DENSE (T=16)": (26.0, 32.8, True),
        "NSNet GFLOPs <= 1/4 of DENSE (all frames)": (26.0, 232.7, True),
    }
    rows["NSNet (K=5)"] = row(73.5, 33.0)  # 0.1 short of UNIFORM + 5, and over half of 65.6 G
    failing = {c["claim"] for c in _claims(rows, 5, 16, 10) if not c["holds"]}
    assert failing == {"NSNet mAP >= UNIFORM mAP + 5", "NSNet GFLOPs <= 1/2 of DENSE (T=16)"}


def test_a_cache_with_val_and_test_videos_is_evaluated_on_one_split_at_a_time(tiny_videos, tiny_config, run_options):
    """val by default, test when asked, each in its own folder and report; a split the cache
    lacks is named as such."""
    from pipeline.prototypes import GuidingScorer
    from stages.features import run_features
    from stages.prototypes import run_prototypes

    manifest = tiny_videos / "manifest.csv"
    header, *lines = manifest.read_text().splitlines()
    moved = {line.split(",")[0] for line in lines if line.split(",")[0].endswith("_000.mp4") and line.endswith(",train")}  # a training video of each class
    manifest.write_text("\n".join([header, *[line.replace(",train", ",test") if line.split(",")[0] in moved else line for line in lines]]) + "\n")
    features = Path(run_features("demo", tiny_videos, tiny_config, run_options).cache)
    prototypes = Path(run_prototypes(features, GuidingScorer()).path)
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    cfg = replace(EVAL, all_frames=False)
    val = run_evaluate(features, prototypes, run, tiny_videos, cfg, workers=0, progress=False)
    test = run_evaluate(features, prototypes, run, tiny_videos, cfg, workers=0, progress=False, split="test")
    assert (val["split"], test["split"]) == ("val", "test") and val["output"] != test["output"]
    evaluated = {report["split"]: {json.loads(line)["video"] for line in (Path(report["output"]) / "predictions.jsonl").read_text().splitlines()} for report in (val, test)}
    assert evaluated["test"] == moved and evaluated["val"] == {line.split(",")[0] for line in lines if line.endswith(",val")}
    assert render_table(test).startswith(f"evaluation on {len(moved)} test videos,")
    assert run_evaluate(features, prototypes, run, tiny_videos, cfg, workers=0, progress=False, split="val")["output"] == val["output"]


def test_an_output_s_identity_names_the_split_only_where_there_are_two():
    from pipeline.datasets.manifest import identity_split

    assert identity_split(["train", "val", "test", "val"]) == "val" and identity_split(["test", "train", "val"], "test") == "test"
    assert identity_split(["train", "test"], "test") is None and identity_split(["train", "val"]) is None


def test_a_split_the_cache_lacks_is_named(tiny_pipeline):
    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, CFG, progress=False).path)
    with pytest.raises(CacheError, match=r"no test video in this cache's manifest \(its splits besides train: val\)"):
        run_evaluate(features, prototypes, run, truth.parent, replace(EVAL, all_frames=False), workers=0, progress=False, split="test")
