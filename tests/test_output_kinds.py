"""The toolkit's own outputs given to the wrong option are named as what they are and the option
that reads them: a prototypes folder as ``--features``, a feature cache as ``--prototypes`` or
``--run``, a sampler run's heads as a backbone's weights, a folder as ``--videos-from``; a sampler
run's ``model.pth`` given as ``--run`` and a fine-tuning run's folder given as weights are taken
for what they stand for. Before 2026-12-07 (the fifty-fourth session) these said "no Zarr group
here", "guides.npz: No such file or directory", "no trained sampler here (model.pth missing)",
"does not fit resnet18", "a folder without a checkpoint file timm writes" or "list of videos
not found"."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cache import CacheError, FeatureCache
from pipeline.checkpoints import WeightsError, checkpoint_path, read_checkpoint
from pipeline.datasets import ManifestError
from pipeline.output_kinds import CHECKPOINT, EVALUATION, FEATURE_CACHE, FINETUNING_RUN, PREDICTIONS, PROTOTYPES, SAMPLER_RUN, output_kind, run_folder
from stages.cli import sampler_run_given
from stages.predict import features_of_run, find_videos, listed_videos
from stages.train import guides_file, load_trained_sampler


@pytest.fixture
def outputs(tmp_path: Path) -> dict[str, Path]:
    """Each stage's output as its files are named (their contents as the stages write them
    where a reader opens them)."""
    demo = tmp_path / "cache" / "demo"
    features = demo / "features-0123.zarr"
    prototypes = demo / "features-0123.zarr.prototypes-4567"
    run = demo / "features-0123.zarr.train-89ab"
    finetuning = demo / "finetune" / "recognizer-resnet18-cdef"
    evaluation = demo / "features-0123.zarr.eval-0246"
    predictions = tmp_path / "predict"
    for folder in (features, prototypes, run, finetuning, evaluation, predictions):
        folder.mkdir(parents=True)
    (features / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    np.savez(prototypes / "guides.npz", g=np.zeros((2, 4)))
    (prototypes / "info.json").write_text("{}")
    torch.save({"model": {"fsm.weight": torch.zeros(1)}, "config": {}, "features": str(features), "features_fingerprint": "0" * 64, "prototypes": str(prototypes)}, run / "model.pth")
    (run / "log.jsonl").write_text("")
    torch.save({"weight": torch.zeros(1)}, finetuning / "model.pth")
    (finetuning / "identity.json").write_text("{}")
    (finetuning / "log.jsonl").write_text("")
    (evaluation / "results.json").write_text("{}")
    (evaluation / "report.md").write_text("")
    (predictions / "predictions.jsonl").write_text("")
    torch.save({"weight": torch.zeros(1)}, demo / "recognizer.pth")
    hdf5 = demo / "features-0123.h5"
    hdf5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(8))
    (tmp_path / "plain").mkdir()
    (tmp_path / "notes.txt").write_text("a\n")
    return {"features": features, "prototypes": prototypes, "run": run, "finetuning": finetuning, "evaluation": evaluation,
            "predictions": predictions, "checkpoint": demo / "recognizer.pth", "hdf5": hdf5, "plain": tmp_path / "plain", "text": tmp_path / "notes.txt"}


def test_each_output_is_told_by_its_files(outputs):
    assert {name: output_kind(path) for name, path in outputs.items()} == {
        "features": FEATURE_CACHE, "prototypes": PROTOTYPES, "run": SAMPLER_RUN, "finetuning": FINETUNING_RUN, "evaluation": EVALUATION,
        "predictions": PREDICTIONS, "checkpoint": CHECKPOINT, "hdf5": FEATURE_CACHE, "plain": None, "text": None}
    assert output_kind(outputs["run"] / "model.pth") == f"a file in {outputs['run']}, {SAMPLER_RUN}"
    assert output_kind(outputs["prototypes"] / "guides.npz") == f"a file in {outputs['prototypes']}, {PROTOTYPES}"
    assert output_kind(outputs["plain"] / "missing") is None


def test_an_output_given_to_another_stages_option_is_named(outputs):
    features, prototypes, run, finetuning = outputs["features"], outputs["prototypes"], outputs["run"], outputs["finetuning"]
    with pytest.raises(CacheError, match=r"prototypes-4567: a prototypes folder \(`nsnet prototypes`' output\), read by --prototypes; not a feature cache$"):
        FeatureCache(prototypes)
    with pytest.raises(CacheError, match=r"recognizer.pth: a checkpoint file, a backbone's weights as `nsnet features --recognizer-weights` or --light-weights read them; not a feature cache$"):
        FeatureCache(outputs["checkpoint"])
    with pytest.raises(CacheError, match=r"plain: not a feature cache \(no Zarr group here"):
        FeatureCache(outputs["plain"])
    with pytest.raises(CacheError, match=r"features-0123.zarr: a feature cache \(`nsnet features`' output\), read by --features; not a prototypes folder$"):
        guides_file(features)
    with pytest.raises(CacheError, match=r"train-89ab: a sampler run \(`nsnet train`'s output\), read by --run; not a prototypes folder$"):
        guides_file(run)
    with pytest.raises(CacheError, match=r"plain: not a prototypes folder \(no guides.npz"):
        guides_file(outputs["plain"])
    assert guides_file(prototypes) == prototypes / "guides.npz"
    with pytest.raises(CacheError, match=r"prototypes-4567: a prototypes folder .*; not a sampler run$"):
        load_trained_sampler(prototypes, "0" * 64, None, torch.device("cpu"))
    with pytest.raises(CacheError, match=r"plain: no trained sampler here \(model.pth missing\)"):
        load_trained_sampler(outputs["plain"], "0" * 64, None, torch.device("cpu"))
    with pytest.raises(CacheError, match=r"recognizer-resnet18-cdef: a fine-tuning run \(`nsnet finetune`'s output\), whose model.pth is a backbone's weights, read by `nsnet features --recognizer-weights` or --light-weights; not a sampler run$"):
        features_of_run(finetuning)
    with pytest.raises(CacheError, match=r"recognizer.pth: a checkpoint file, .*; not a sampler run$"):
        features_of_run(outputs["checkpoint"])


def test_sampler_heads_and_other_outputs_are_no_backbone_weights(outputs):
    with pytest.raises(WeightsError, match=r"model.pth: a sampler run's trained heads \(`nsnet train`'s model.pth; --run takes it or its folder\); not a backbone's weights$"):
        read_checkpoint(outputs["run"] / "model.pth")
    with pytest.raises(WeightsError, match=rf"guides.npz: a file in {outputs['prototypes']}, a prototypes folder .*; not a checkpoint$"):
        read_checkpoint(outputs["prototypes"] / "guides.npz")
    with pytest.raises(WeightsError, match=r"features-0123.zarr: a feature cache .*; not a checkpoint$"):
        read_checkpoint(outputs["features"])
    bad = outputs["plain"] / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"broken.pth: not a readable PyTorch checkpoint"):  # a checkpoint's name, unreadable: said so
        read_checkpoint(bad)
    assert checkpoint_path(str(outputs["finetuning"])) == str(outputs["finetuning"] / "model.pth")  # a fine-tuning run's folder: its weights
    assert checkpoint_path(str(outputs["run"])) == str(outputs["run"])


def test_a_sampler_runs_model_file_stands_for_its_run_and_folders_are_no_lists(outputs):
    run = outputs["run"]
    assert run_folder(run / "model.pth") == run == sampler_run_given(None, None, run / "model.pth")
    assert run_folder(run) == run and run_folder(outputs["checkpoint"]) == outputs["checkpoint"] and sampler_run_given(None, None, None) is None
    with pytest.raises(ManifestError, match=r"plain: a folder; give it as an argument, `nsnet predict .*plain` \(--videos-from takes a file listing videos or folders\)$"):
        listed_videos(outputs["plain"])
    with pytest.raises(ManifestError, match=r"features-0123.zarr: a feature cache .*; not the list of videos$"):
        listed_videos(outputs["features"])


def test_predict_passes_over_the_toolkits_outputs_among_the_videos(outputs, tmp_path):
    """``nsnet predict`` on a folder that holds a cache folder took each sampler run, fine-tuning
    run and evaluation for a folder of frames (its ``curves.png`` a one-frame video, predicted),
    and walked every Zarr store's shards; a sampler run given among the videos was predicted
    (before 2026-12-07, the fifty-fourth session). Output folders holding no video are passed
    over now, and one given is an error naming it; predict's own output folder that is also the
    videos' folder keeps its videos."""
    for folder in (outputs["run"], outputs["finetuning"], outputs["evaluation"]):
        (folder / "curves.png").write_bytes(b"\x89PNG")
    (outputs["features"] / "light_features" / "c").mkdir(parents=True)
    (outputs["features"] / "light_features" / "c" / "0.png").write_bytes(b"")  # would be a frame folder if walked into
    frames = tmp_path / "cache" / "clips" / "v1"
    frames.mkdir(parents=True)
    (frames / "img_00001.jpg").write_bytes(b"")
    (outputs["predictions"] / "a.mp4").write_bytes(b"")
    (outputs["predictions"] / "a.png").write_bytes(b"")
    assert find_videos([tmp_path / "cache", outputs["predictions"]]) == [frames, outputs["predictions"] / "a.mp4"]
    for given in ("run", "evaluation"):
        with pytest.raises(ManifestError, match=rf"{outputs[given].name}: an? .*; not a video or a folder of videos$"):
            find_videos([outputs[given]])
