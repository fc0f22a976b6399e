"""timm model creation, weights (imagenet offline, none, checkpoints), preprocessing, encoder."""

import argparse
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import ModelSpec, model_architecture
from pipeline.backends import ONNX_PIXELS_PER_RUN
from pipeline.checkpoint_keys import mmaction_preprocessing
from pipeline.checkpoints import CHECKPOINT_FORMAT, WeightsError, checkpoint_path, head_order, make_checkpoint, read_checkpoint
from pipeline.extract import to_model_input
from pipeline.models import CPU_PIXELS_PER_FORWARD, FrameEncoder, check_model_name, checkpoint_identity, create_finetune_model, create_model, data_config, frame_transform, frames_per_run, hub_reachable, weights_identity

CLASSES = ("a", "b", "c")


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_vit"])
def test_encoder_logits_equal_the_models_own_forward(name):
    model = create_model(ModelSpec(name, weights="none", resolution=32), num_classes=3, seed=0)
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        feats, logits = FrameEncoder(model)(x)
        expected = model(x)
    assert feats.ndim == 2 and feats.shape[0] == 4
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)


def test_runs_take_as_many_frames_as_fit_the_pixels_and_at_least_one():
    assert frames_per_run(224, 224, CPU_PIXELS_PER_FORWARD) == 8
    assert frames_per_run(112, 112, CPU_PIXELS_PER_FORWARD) == 32  # Mini-Kinetics' light model
    assert frames_per_run(256, 340, CPU_PIXELS_PER_FORWARD) == 4  # 401,408 // 87,040
    assert frames_per_run(1080, 1920, CPU_PIXELS_PER_FORWARD) == 1
    assert frames_per_run(224, 224, ONNX_PIXELS_PER_RUN) == 2
    assert frames_per_run(112, 112, ONNX_PIXELS_PER_RUN) == 8


def test_encoder_on_the_cpu_runs_in_chunks_with_the_same_outputs(monkeypatch):
    encoder = FrameEncoder(create_model(ModelSpec("test_resnet", weights="none", resolution=32), num_classes=3, seed=0)).eval()
    x = torch.randn(11, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    calls = []
    forward_frames = encoder.forward_frames
    monkeypatch.setattr(encoder, "forward_frames", lambda frames: calls.append(len(frames)) or forward_frames(frames))
    with torch.inference_mode():
        whole = forward_frames(x)
        monkeypatch.setattr("pipeline.models.CPU_PIXELS_PER_FORWARD", 4 * 32 * 32)
        parts = encoder(x)
    assert calls == [4, 4, 3]
    for a, b in zip(whole, parts):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_feature_only_model_has_no_logits():
    model = create_model(ModelSpec("test_efficientnet", weights="none", resolution=32), num_classes=0, seed=0)
    feats, logits = FrameEncoder(model)(torch.randn(2, 3, 32, 32))
    assert logits is None and feats.shape == (2, model.num_features)


def test_random_init_is_seeded():
    spec = ModelSpec("test_resnet", weights="none", resolution=32)
    a, b, c = (create_model(spec, 3, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)


def test_transform_resizes_shorter_side_crops_and_normalises():
    spec = ModelSpec("test_resnet", weights="none", resolution=32, crop_pct=0.5)
    model = create_model(spec, 3, seed=0)
    cfg = data_config(model, spec)
    assert cfg["input_size"] == (3, 32, 32) and cfg["crop_pct"] == 0.5
    # a 40x80 frame: left half 0, right half 1. Shorter side -> 32 / 0.5 = 64, so 64x128;
    # the centre 32x32 crop straddles the edge: 16 columns of each.
    x = torch.zeros(1, 3, 40, 80)
    x[..., 40:] = 1.0
    y = frame_transform(cfg)(x)
    assert y.shape == (1, 3, 32, 32)
    mean, std = torch.tensor(cfg["mean"]), torch.tensor(cfg["std"])
    torch.testing.assert_close(y[0, :, 5, 2], -mean / std, atol=1e-4, rtol=0)
    torch.testing.assert_close(y[0, :, 5, 29], (1 - mean) / std, atol=1e-4, rtol=0)


def _save_checkpoint(path: Path, model: torch.nn.Module, name: str, classes=CLASSES) -> Path:
    torch.save({"format": CHECKPOINT_FORMAT, "model_name": name, "classes": list(classes), "state_dict": model.state_dict()}, path)
    return path


def test_checkpoint_round_trip_gives_identical_logits(tmp_path: Path):
    trained = create_model(ModelSpec("test_resnet", weights="none", resolution=32), 3, seed=5)
    path = _save_checkpoint(tmp_path / "rec.pth", trained, "test_resnet")
    loaded = create_model(ModelSpec("test_resnet", weights=str(path), resolution=32), 3, seed=0, classes=CLASSES)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(trained(x), loaded(x))
    assert weights_identity(ModelSpec("test_resnet", weights=str(path))).startswith("file:")
    # a plain state dict (e.g. from another trainer) loads too
    torch.save(trained.state_dict(), tmp_path / "plain.pth")
    plain = create_model(ModelSpec("test_resnet", weights=str(tmp_path / "plain.pth"), resolution=32), 3, seed=0)
    assert torch.equal(plain.fc.weight, trained.fc.weight)


def test_light_model_drops_the_checkpoint_head(tmp_path: Path):
    trained = create_model(ModelSpec("test_efficientnet", weights="none"), 1000, seed=5)
    path = tmp_path / "imagenet_like.pth"
    torch.save({"state_dict": trained.state_dict()}, path)
    light = create_model(ModelSpec("test_efficientnet", weights=str(path)), 0, seed=0)
    assert torch.equal(light.conv_stem.weight, trained.conv_stem.weight)


def test_class_count_mismatch_is_a_clear_error(tmp_path: Path):
    five = create_model(ModelSpec("test_resnet", weights="none"), 5, seed=0)
    path = _save_checkpoint(tmp_path / "five.pth", five, "test_resnet", classes=[f"k{i}" for i in range(5)])
    with pytest.raises(WeightsError, match=r"five.pth: checkpoint was trained on other classes than this dataset's \(5 vs 3 classes; not in the checkpoint: 'a', 'b', 'c'; not in the dataset: 'k0', 'k1', 'k2' and 2 more\)$"):
        create_model(ModelSpec("test_resnet", weights=str(path)), 3, seed=0, classes=CLASSES)
    torch.save(five.state_dict(), tmp_path / "plain5.pth")
    with pytest.raises(WeightsError, match="classifier has 5 outputs but the dataset has 3 classes"):
        create_model(ModelSpec("test_resnet", weights=str(tmp_path / "plain5.pth")), 3, seed=0, classes=CLASSES)


def test_wrong_model_and_bad_files(tmp_path: Path):
    other = create_model(ModelSpec("test_efficientnet", weights="none"), 3, seed=0)
    path = _save_checkpoint(tmp_path / "eff.pth", other, "test_efficientnet")
    with pytest.raises(WeightsError, match="is for model 'test_efficientnet', not 'test_resnet'"):
        create_model(ModelSpec("test_resnet", weights=str(path)), 3, seed=0, classes=CLASSES)
    with pytest.raises(WeightsError, match="nowhere.pth: checkpoint file not found"):
        create_model(ModelSpec("test_resnet", weights=str(tmp_path / "nowhere.pth")), 3, seed=0)
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02junk")  # begins as torch.save's legacy pickle
    with pytest.raises(WeightsError, match=r"junk.pth: not a readable PyTorch checkpoint \([^\n]+\)$") as info:
        create_model(ModelSpec("test_resnet", weights=str(tmp_path / "junk.pth")), 3, seed=0)
    assert "Weights only load failed" not in str(info.value)  # the unpickler's line, not torch's advice on trusted files
    # a text file's first lines, read as a pickle's GLOBAL, were "Python objects besides its weights (cat.dog)"
    (tmp_path / "classes.txt").write_text("cat\ndog\néléphant\n" + "x" * 1004 + "é")  # a character cut at 1 KiB
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)))
    for name, what in (("classes.txt", "a text file"), ("clip.mp4", "its first bytes are not those of a file torch.save writes")):
        with pytest.raises(WeightsError, match=rf"{name}: not a readable PyTorch checkpoint \({what}\)$"):
            create_model(ModelSpec("test_resnet", weights=str(tmp_path / name)), 3, seed=0)
    with pytest.raises(WeightsError, match=r"unknown timm model 'no_such_net' \(`timm.list_models\(\)` lists its names\)$"):
        create_model(ModelSpec("no_such_net", weights="none"), 3, seed=0)


@pytest.mark.parametrize(("name", "offered"), [
    ("resnet5", "resnet50, resnet51q, resnet50t; `timm.list_models('resn*')`"),
    ("ResNet50", "resnet50, resnet50t, resnet50s; `timm.list_models('resn*')`"),  # timm's names are lower case
    ("efficientnet-b0", "efficientnet_b0, efficientnet_b8, efficientnet_b7; `timm.list_models('effi*')`"),
    ("mobilenet_v2", "mobileone_s2, mobilenetv2_140, mobilenetv2_100; `timm.list_models('mobi*')`"),  # torchvision's name
])
def test_a_model_name_near_timms_is_offered_timms(name, offered):
    """A name timm does not know said only "unknown timm model" (before 2026-12-07, the
    fifty-fourth session): the nearest of timm's names are offered, and ``nsnet features
    --dry-run``, which builds no model, refuses it as the run does (it planned the run)."""
    with pytest.raises(WeightsError, match=re.escape(f"unknown timm model {name!r} (timm has {offered} lists its names)")):
        check_model_name(name)


def test_imagenet_offline_fails_at_once_saying_how_to_pass_a_checkpoint(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    hub_reachable.cache_clear()
    try:
        start = time.perf_counter()
        with pytest.raises(WeightsError, match="Pass a local checkpoint") as info:
            create_model(ModelSpec("resnet18", weights="imagenet"), 3, seed=0)
        assert time.perf_counter() - start < 5
        assert "WEIGHTS=" in str(info.value) and "torch hub" not in str(info.value)
        # torchvision's ImageNet file of the same network in torch hub's cache is named, and loads
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
        (tmp_path / "torch_hub" / "checkpoints").mkdir(parents=True)
        import torchvision

        tv_file = tmp_path / "torch_hub" / "checkpoints" / "resnet18-f37072fd.pth"
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), tv_file)
        with pytest.raises(WeightsError, match=f"torch hub's cache holds torchvision's ImageNet weights of it, which load as such a checkpoint \\(other weights than timm's\\): {tv_file}$"):
            create_model(ModelSpec("resnet18", weights="imagenet"), 3, seed=0)
        assert create_model(ModelSpec("resnet18", weights=str(tv_file)), 0, seed=0).num_classes == 0
    finally:
        hub_reachable.cache_clear()


def test_a_checkpoint_of_the_same_classes_in_another_order_is_reordered(tmp_path: Path):
    """A recognizer trained with a label map's order (here c, a, b; one name with an underscore
    for a space) gives each of the dataset's classes (a, b, c) its own logit."""
    trained = create_model(ModelSpec("test_resnet", weights="none", resolution=32), 3, seed=5)
    path = _save_checkpoint(tmp_path / "label_map_order.pth", trained, "test_resnet", classes=["c", "a", "b"])
    loaded = create_model(ModelSpec("test_resnet", weights=str(path), resolution=32), 3, seed=0, classes=CLASSES)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), trained(x)[:, [1, 2, 0]])
    assert head_order(("air_drumming", "Abseiling"), ("abseiling", "air drumming"), tmp_path) == [1, 0]
    assert head_order(CLASSES, CLASSES, tmp_path) is None
    with pytest.raises(WeightsError, match=r"\(3 vs 3 classes; a name given twice\)"):
        head_order(("a", "A", "b"), ("a", "b", "B"), tmp_path)


def test_fine_tuning_starts_from_the_trunk_of_a_checkpoint_of_other_classes(tmp_path: Path):
    """A local ImageNet file (1000 outputs, a plain state dict) or a checkpoint of another
    dataset's classes gives its trunk; the classifier is the seeded new one, as from the hub."""
    spec = ModelSpec("test_resnet", weights="none", resolution=32)
    fresh = create_model(spec, 3, seed=7)
    imagenet = create_model(spec, 1000, seed=5)
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pth")
    kinetics = _save_checkpoint(tmp_path / "kinetics.pth", create_model(spec, 5, seed=6), "test_resnet", classes=[f"k{i}" for i in range(5)])
    for path, trunk in ((tmp_path / "imagenet.pth", imagenet), (kinetics, read_checkpoint(kinetics)["state_dict"])):
        model, start = create_finetune_model(replace(spec, weights=str(path)), 3, seed=7, classes=CLASSES)
        assert start == f"{path}: trunk, a new classifier for the dataset's 3 classes"
        trunk_state = trunk if isinstance(trunk, dict) else trunk.state_dict()
        assert torch.equal(model.state_dict()["conv1.0.weight"], trunk_state["conv1.0.weight"])
        assert torch.equal(model.fc.weight, fresh.fc.weight) and torch.equal(model.fc.bias, fresh.fc.bias)
    # the dataset's own classes, in another order: all of it, the rows reordered
    own = _save_checkpoint(tmp_path / "own.pth", create_model(spec, 3, seed=8), "test_resnet", classes=["b", "c", "a"])
    model, start = create_finetune_model(replace(spec, weights=str(own)), 3, seed=7, classes=CLASSES)
    assert start == f"{own}: trunk and classifier"
    assert torch.equal(model.fc.weight, read_checkpoint(own)["state_dict"]["fc.weight"][[2, 0, 1]])
    assert create_finetune_model(spec, 3, seed=7, classes=CLASSES)[1] == "random init"
    # what does not fit the trunk is still refused, naming the keys
    torch.save({**imagenet.state_dict(), "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match=r"extra.pth: does not fit test_resnet \(keys not matched: 'extra.weight'\)"):
        create_finetune_model(replace(spec, weights=str(tmp_path / "extra.pth")), 3, seed=7, classes=CLASSES)
    other_arch = create_model(ModelSpec("test_efficientnet", weights="none"), 1000, seed=0)
    torch.save(other_arch.state_dict(), tmp_path / "effnet.pth")
    with pytest.raises(WeightsError, match="effnet.pth: does not fit test_resnet"):
        create_finetune_model(replace(spec, weights=str(tmp_path / "effnet.pth")), 3, seed=7, classes=CLASSES)


def _mmaction_names(timm_key: str) -> str:
    """mmaction2's name (mmcv's ResNet in a Recognizer2D) of a timm ResNet key, as its model zoo's
    TSN checkpoints hold them: ``backbone.conv1.conv.weight``, ``backbone.layer1.0.conv2.bn.bias``,
    ``backbone.layer2.0.downsample.conv.weight``, ``cls_head.fc_cls.weight``."""
    if timm_key.startswith("fc."):
        return "cls_head.fc_cls." + timm_key[3:]
    parts = timm_key.split(".")
    if parts[-2].startswith("conv"):
        parts[-2:-1] = [parts[-2], "conv"]
    elif parts[-2].startswith("bn"):
        parts[-2:-1] = ["conv" + parts[-2][2:], "bn"]
    elif parts[-2] in ("0", "1") and parts[-3] == "downsample":
        parts[-2] = "conv" if parts[-2] == "0" else "bn"
    return "backbone." + ".".join(parts)


def test_an_mmaction2_tsn_checkpoint_loads_into_the_timm_resnet(tmp_path: Path):
    """Its mmcv ResNet names (and a torchvision backbone's, under ``backbone.``) become timm's, its
    ``cls_head.fc_cls`` the classifier; the data preprocessor's buffers are not the model's."""
    spec = ModelSpec("resnet18", weights="none", resolution=32)
    trained = create_model(spec, 3, seed=5)
    assert _mmaction_names("layer2.0.downsample.1.running_var") == "backbone.layer2.0.downsample.bn.running_var"
    assert _mmaction_names("bn1.weight") == "backbone.conv1.bn.weight" and _mmaction_names("layer1.1.conv2.weight") == "backbone.layer1.1.conv2.conv.weight"
    mmcv = {_mmaction_names(k): v for k, v in trained.state_dict().items()}
    torchvision = {("cls_head.fc_cls." + k[3:]) if k.startswith("fc.") else "backbone." + k: v for k, v in trained.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    for name, state in (("mmcv", mmcv), ("torchvision", torchvision)):
        extra = {"data_preprocessor.mean": torch.zeros(3, 1, 1), "data_preprocessor.std": torch.ones(3, 1, 1)}
        path = tmp_path / f"tsn_{name}.pth"
        torch.save({"meta": {"mmengine_version": "0.10.4", "epoch": 100}, "state_dict": {**state, **extra}}, path)
        loaded = create_model(replace(spec, weights=str(path)), 3, seed=0, classes=CLASSES)
        with torch.inference_mode():
            assert torch.equal(loaded(x), trained(x)), name


def _mmaction_mobilenet_names(model: torch.nn.Module) -> dict[str, str]:
    """timm MobileNetV2 keys by mmaction2's names for them (its MobileNetV2 backbone in a
    Recognizer2D), written out per layer kind."""
    names = {}
    for key in model.state_dict():
        parts = key.split(".")
        if parts[0] == "blocks":
            stage, index, layer, param = int(parts[1]), parts[2], parts[3], ".".join(parts[4:])
            order = ("conv_pw", "bn1", "conv_dw", "bn2", "conv_pwl", "bn3") if stage else ("conv_dw", "bn1", "conv_pw", "bn2")
            position = order.index(layer)
            names[f"backbone.layer{stage + 1}.{index}.conv.{position // 2}.{'bn' if position % 2 else 'conv'}.{param}"] = key
        elif parts[0] in ("conv_stem", "bn1", "conv_head", "bn2"):
            module = "conv1" if parts[0] in ("conv_stem", "bn1") else "conv2"
            names[f"backbone.{module}.{'conv' if parts[0].startswith('conv') else 'bn'}.{'.'.join(parts[1:])}"] = key
        else:  # classifier
            names["cls_head.fc_cls." + ".".join(parts[1:])] = key
    return names


def test_an_mmaction2_mobilenet_v2_loads_into_the_timm_mobilenet(tmp_path: Path):
    """mmaction2's MobileNetV2 backbone (a light model trained on the dataset as a TSN
    recognizer): ``backbone.conv1.conv``, ``backbone.layerS.B.conv.L.{conv,bn}``,
    ``backbone.conv2.bn``, ``cls_head.fc_cls``; the same network as timm's, as a recognizer and
    as the light model (its pooled features)."""
    spec = ModelSpec("mobilenetv2_100", weights="none", resolution=64)
    trained = _with_running_stats(create_model(spec, 3, seed=5))
    names = _mmaction_mobilenet_names(trained)
    assert names["backbone.layer1.0.conv.0.conv.weight"] == "blocks.0.0.conv_dw.weight" and names["backbone.layer1.0.conv.1.bn.running_var"] == "blocks.0.0.bn2.running_var"
    assert names["backbone.layer2.1.conv.2.bn.bias"] == "blocks.1.1.bn3.bias" and names["backbone.layer7.0.conv.1.conv.weight"] == "blocks.6.0.conv_dw.weight"
    assert names["backbone.conv1.bn.weight"] == "bn1.weight" and names["backbone.conv2.conv.weight"] == "conv_head.weight" and names["cls_head.fc_cls.bias"] == "classifier.bias"
    state = trained.state_dict()
    path = tmp_path / "tsn_mobilenetv2.pth"
    torch.save({"meta": {"epoch": 50}, "state_dict": {mm: state[key] for mm, key in names.items()}}, path)
    x = torch.randn(2, 3, 64, 64)
    recognizer = create_model(replace(spec, weights=str(path)), 3, seed=0, classes=CLASSES)
    light = create_model(replace(spec, weights=str(path)), 0, seed=0)
    with torch.inference_mode():
        assert torch.equal(recognizer(x), trained(x))
        assert torch.equal(light(x), trained.forward_head(trained.forward_features(x), pre_logits=True))


def _tonylins_names(model: torch.nn.Module) -> dict[str, str]:
    """timm MobileNetV2 keys by tonylins' pytorch-mobilenet-v2 names for them (the
    temporal-shift-module's ``archs/mobilenet_v2.py``): one flat Sequential a block, ReLU6s numbered."""
    blocks = list(dict.fromkeys(".".join(k.split(".")[:3]) for k in model.state_dict() if k.startswith("blocks.")))
    expanded = {"conv_pw": 0, "bn1": 1, "conv_dw": 3, "bn2": 4, "conv_pwl": 6, "bn3": 7}
    separable = {"conv_dw": 0, "bn1": 1, "conv_pw": 3, "bn2": 4}
    ends = {"conv_stem": "features.0.0", "bn1": "features.0.1", "conv_head": f"features.{len(blocks) + 1}.0", "bn2": f"features.{len(blocks) + 1}.1", "classifier": "classifier"}
    names = {}
    for key in model.state_dict():
        parts = key.split(".")
        if parts[0] == "blocks":
            block = blocks.index(".".join(parts[:3]))
            layer = (separable if parts[1] == "0" else expanded)[parts[3]]
            names[f"features.{block + 1}.conv.{layer}.{'.'.join(parts[4:])}"] = key
        else:
            names[f"{ends[parts[0]]}.{'.'.join(parts[1:])}"] = key
    return names


def test_tonylins_mobilenet_v2_loads_plain_and_in_a_tsn_model(tmp_path: Path):
    """tonylins' MobileNetV2 names (TSM's ImageNet file ``mobilenetv2_1.0-f2a8633.pth.tar``, and
    AR-Net's MobileNetV2 trained on the dataset, a TSN model's ``module.base_model.`` with
    ``module.new_fc``) give timm's network; a TSM MobileNetV2 (``conv.0.net``) is refused."""
    spec = ModelSpec("mobilenetv2_100", weights="none", resolution=64)
    trained = _with_running_stats(create_model(spec, 3, seed=5))
    names = _tonylins_names(trained)
    assert names["features.1.conv.3.weight"] == "blocks.0.0.conv_pw.weight" and names["features.2.conv.4.running_mean"] == "blocks.1.0.bn2.running_mean"
    assert names["features.17.conv.7.bias"] == "blocks.6.0.bn3.bias" and names["features.18.0.weight"] == "conv_head.weight" and names["features.0.1.weight"] == "bn1.weight"
    state = trained.state_dict()
    plain = {name: state[key] for name, key in names.items()}
    tsn = {("module.new_fc." + name.removeprefix("classifier.")) if name.startswith("classifier.") else "module.base_model." + name: value for name, value in plain.items()}
    torch.save(plain, tmp_path / "mobilenetv2_1.0.pth.tar")
    torch.save({"epoch": 30, "arch": "mobilenet_v2", "state_dict": tsn, "best_prec1": 62.0}, tmp_path / "ckpt.best.pth.tar")
    # trained with dropout 0: no new_fc, the network's own classifier kept under base_model.
    torch.save({"arch": "mobilenet_v2", "state_dict": {"module.base_model." + name: value for name, value in plain.items()}}, tmp_path / "dropout0.pth.tar")
    x = torch.randn(2, 3, 64, 64)
    for name in ("mobilenetv2_1.0.pth.tar", "ckpt.best.pth.tar", "dropout0.pth.tar"):  # the TSN code's arch 'mobilenet_v2' is timm's mobilenetv2_100
        with torch.inference_mode():
            assert torch.equal(create_model(replace(spec, weights=str(tmp_path / name)), 3, seed=0, classes=CLASSES)(x), trained(x)), name
    light = create_model(replace(spec, weights=str(tmp_path / "ckpt.best.pth.tar")), 0, seed=0)
    with torch.inference_mode():
        assert torch.equal(light(x), trained.forward_head(trained.forward_features(x), pre_logits=True))
    torch.save({"arch": "resnet50", "state_dict": tsn}, tmp_path / "resnet50.pth.tar")
    with pytest.raises(WeightsError, match=r"resnet50.pth.tar: checkpoint is for model 'resnet50', not 'mobilenetv2_100'"):
        create_model(replace(spec, weights=str(tmp_path / "resnet50.pth.tar")), 3, seed=0, classes=CLASSES)
    shifted = {key.replace(".conv.0.", ".conv.0.net.") if ".features." in key else key: value for key, value in tsn.items()}
    torch.save({"arch": "mobilenet_v2", "state_dict": shifted}, tmp_path / "tsm_mobilenet.pth.tar")
    with pytest.raises(WeightsError, match=r"tsm_mobilenet.pth.tar: its network shifts features along time"):
        create_model(replace(spec, weights=str(tmp_path / "tsm_mobilenet.pth.tar")), 3, seed=0, classes=CLASSES)


def test_an_ar_net_tsn_checkpoint_loads_into_the_timm_resnet(tmp_path: Path):
    """AR-Net's ``main_base.py`` (the temporal-shift-module's TSN) saves ``epoch``, ``arch``,
    ``state_dict``, ``optimizer`` and ``best_prec1``: the backbone under ``module.base_model.``
    (torchvision's names, its ``fc`` dropout), the classifier as ``module.new_fc``, and it resizes
    frames bilinearly. Another network's checkpoint, and a TSM's (temporal shift), are refused."""
    spec = ModelSpec("resnet18", weights="none", resolution=32)
    trained = create_model(spec, 3, seed=5)
    state = {("module.new_fc." + k[3:]) if k.startswith("fc.") else "module.base_model." + k: v for k, v in trained.state_dict().items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 0.001, "momentum": 0.9, "params": [0, 1]}]}
    for arch, name in (("resnet18", "ckpt.best.pth.tar"), ("resnet50", "resnet50.pth.tar")):
        torch.save({"epoch": 15, "arch": arch, "state_dict": state, "optimizer": optimizer, "best_prec1": 71.3}, tmp_path / name)
    loaded = create_model(replace(spec, weights=str(tmp_path / "ckpt.best.pth.tar")), 3, seed=0, classes=CLASSES)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), trained(x))
    assert loaded.pretrained_cfg["interpolation"] == "bilinear" and create_model(spec, 3, seed=0).pretrained_cfg["interpolation"] == "bicubic"
    torch.save(state, tmp_path / "state_dict_alone.pth")  # the model's state dict saved alone: no arch, the same resize
    alone = create_model(replace(spec, weights=str(tmp_path / "state_dict_alone.pth")), 3, seed=0, classes=CLASSES)
    with torch.inference_mode():
        assert torch.equal(alone(x), trained(x)) and alone.pretrained_cfg["interpolation"] == "bilinear"
    with pytest.raises(WeightsError, match=r"resnet50.pth.tar: checkpoint is for model 'resnet50', not 'resnet18'"):
        create_model(replace(spec, weights=str(tmp_path / "resnet50.pth.tar")), 3, seed=0, classes=CLASSES)
    shifted = {key.replace(".conv1.", ".conv1.net.") if key.startswith("module.base_model.layer") else key: value for key, value in state.items()}
    torch.save({"epoch": 50, "arch": "resnet18", "state_dict": shifted, "best_prec1": 74.1}, tmp_path / "tsm.pth.tar")
    with pytest.raises(WeightsError, match=r"tsm.pth.tar: its network shifts features along time \(TSM's temporal shift"):
        create_model(replace(spec, weights=str(tmp_path / "tsm.pth.tar")), 3, seed=0, classes=CLASSES)


# The model part of an mmaction2 TSN config as mmengine keeps it in a checkpoint's meta["cfg"]
# (its pretty text), with the backbone's settings to vary.
TSN_CONFIG = """model = dict(
    backbone=dict(
        depth=18,
        norm_eval=False,
        pretrained='https://download.pytorch.org/models/resnet18-f37072fd.pth',{backbone}),
    cls_head=dict(
        average_clips='prob',
        consensus=dict(dim=1, type='AvgConsensus'),
        dropout_ratio=0.4,
        in_channels=512,
        num_classes=3,
        type='TSNHead'),
    data_preprocessor=dict(
        format_shape='NCHW',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        type='ActionDataPreprocessor'),
    type='Recognizer2D')
"""


def test_an_mmaction2_checkpoint_of_a_caffe_style_or_temporal_backbone_is_refused_by_its_config(tmp_path: Path):
    """The config an mmaction2 checkpoint keeps (mmengine's meta["cfg"], 0.x's meta["config"])
    says what its weights cannot: a ResNet of style='caffe' fits timm's by shape and computes
    other features, and a TSM backbone mixes frames along time; the default style loads."""
    spec = ModelSpec("resnet18", weights="none", resolution=32)
    trained = create_model(spec, 3, seed=5)
    mmcv = {_mmaction_names(k): v for k, v in trained.state_dict().items()}
    cases = {
        "pytorch": ("cfg", "\n        type='ResNet'"),
        "caffe": ("cfg", "\n        style='caffe',\n        type='ResNet'"),
        "tsm": ("config", "\n        num_segments=8,\n        shift_div=8,\n        type='ResNetTSM'"),  # 0.x keeps it as "config"
    }
    for name, (key, backbone) in cases.items():
        torch.save({"meta": {key: TSN_CONFIG.format(backbone=backbone), "seed": 0}, "state_dict": mmcv}, tmp_path / f"{name}.pth")
    x = torch.randn(2, 3, 32, 32)
    loaded = create_model(replace(spec, weights=str(tmp_path / "pytorch.pth")), 3, seed=0, classes=CLASSES)
    with torch.inference_mode():
        assert torch.equal(loaded(x), trained(x))
    with pytest.raises(WeightsError) as caffe:
        create_model(replace(spec, weights=str(tmp_path / "caffe.pth")), 3, seed=0, classes=CLASSES)
    assert str(caffe.value) == f"{tmp_path / 'caffe.pth'}: its ResNet is mmcv's style='caffe' (the stride in each block's first 1x1 convolution, where timm's ResNet has it in the 3x3 one): its weights fit by shape and would compute other features (from the training config the checkpoint keeps)"
    with pytest.raises(WeightsError, match=r"tsm\.pth: its backbone is a ResNetTSM, which mixes the frames of a clip along time"):
        create_model(replace(spec, weights=str(tmp_path / "tsm.pth")), 3, seed=0, classes=CLASSES)


class _TrainerLog:
    """Stands for the objects a trainer keeps in a checkpoint's meta (mmengine's message hub)."""


def test_a_checkpoint_with_objects_besides_its_weights_says_how_to_keep_the_weights(tmp_path: Path):
    path = tmp_path / "tsn_with_log.pth"
    torch.save({"meta": {"message_hub": _TrainerLog()}, "state_dict": create_model(ModelSpec("test_resnet", weights="none"), 3, seed=0).state_dict()}, path)
    with pytest.raises(WeightsError) as info:
        read_checkpoint(path)
    assert str(info.value) == (
        f"{path}: holds Python objects besides its weights ({_TrainerLog.__module__}._TrainerLog), which are not unpickled here (that can run code); "
        f"if you trust the file, save its weights alone and pass that file: python -c \"import torch; c = torch.load('{path}', weights_only=False); torch.save(c.get('state_dict', c), 'weights.pth')\""
    )


def _with_running_stats(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with batch-norm statistics that are not the defaults, so that a mismatched
    norm layer shows in the outputs."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.1 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
    return model.eval()


def test_torchvision_checkpoints_give_the_same_network_in_timm(tmp_path: Path):
    """torchvision's MobileNetV2 (its hub cache's ``mobilenet_v2-b0353104.pth`` as a light model)
    and ResNet (the same names as timm's) load into timm's models and compute the same outputs."""
    import torchvision

    x = torch.randn(2, 3, 64, 64)
    for tv_model, name in ((torchvision.models.mobilenet_v2(weights=None, num_classes=3), "mobilenetv2_100"), (torchvision.models.resnet18(weights=None, num_classes=3), "resnet18")):
        tv_model = _with_running_stats(tv_model)
        path = tmp_path / f"{name}_torchvision.pth"
        torch.save(tv_model.state_dict(), path)
        loaded = create_model(ModelSpec(name, weights=str(path), resolution=64), 3, seed=0, classes=CLASSES)
        with torch.inference_mode():
            torch.testing.assert_close(loaded(x), tv_model(x), rtol=0, atol=1e-5, msg=name)
    # as the light model: the pooled features, the classifier left out
    light = create_model(ModelSpec("mobilenetv2_100", weights=str(tmp_path / "mobilenetv2_100_torchvision.pth"), resolution=64), 0, seed=0)
    tv_light = torchvision.models.mobilenet_v2(weights=None)
    tv_light.load_state_dict({k: v for k, v in torch.load(tmp_path / "mobilenetv2_100_torchvision.pth").items() if not k.startswith("classifier")}, strict=False)
    with torch.inference_mode():
        pooled = torch.nn.functional.adaptive_avg_pool2d(tv_light.eval().features(x), 1).flatten(1)
        torch.testing.assert_close(light(x), pooled, rtol=0, atol=1e-5)


def test_a_timm_train_checkpoint_loads_and_names_its_model(tmp_path: Path):
    """timm's train.py keeps its arguments (an ``argparse.Namespace``) and ``arch`` beside the
    weights: read with ``weights_only`` all the same, and ``arch`` checked like our model name."""
    spec = ModelSpec("test_resnet", weights="none", resolution=32)
    trained = create_model(spec, 3, seed=5)
    path = tmp_path / "model_best.pth.tar"
    args = argparse.Namespace(model="test_resnet", lr=0.1, epochs=30, aa=None, mixup=0.0)
    torch.save({"epoch": 29, "arch": "test_resnet", "state_dict": trained.state_dict(), "version": 2, "args": args, "metric": 71.5}, path)
    loaded = create_model(replace(spec, weights=str(path)), 3, seed=0, classes=CLASSES)
    assert torch.equal(loaded.fc.weight, trained.fc.weight)
    with pytest.raises(WeightsError, match=r"model_best.pth.tar: checkpoint is for model 'test_resnet', not 'test_efficientnet'"):
        create_model(ModelSpec("test_efficientnet", weights=str(path)), 3, seed=0)
    # trained as `--model test_resnet.r160_in1k` (a pretrained tag): the same architecture
    args.model = "test_resnet.r160_in1k"
    torch.save({"epoch": 29, "arch": args.model, "state_dict": trained.state_dict(), "args": args}, path)
    for name in ("test_resnet", "test_resnet.r160_in1k"):
        assert torch.equal(create_model(ModelSpec(name, weights=str(path), resolution=32), 3, seed=0).fc.weight, trained.fc.weight)
    with pytest.raises(WeightsError, match=r"checkpoint is for model 'test_resnet.r160_in1k', not 'test_efficientnet'"):
        create_model(ModelSpec("test_efficientnet", weights=str(path)), 3, seed=0)


def _timm_train_args(model: str, **given) -> argparse.Namespace:
    """The arguments timm's train.py keeps, with its defaults for the preprocessing."""
    return argparse.Namespace(**{"model": model, "mean": None, "std": None, "interpolation": "", "crop_pct": None, "input_size": None, "img_size": None, "in_chans": None, "lr": 0.1, **given})


# An mmaction2 TSN test pipeline as mmengine saves it (each step's keys sorted: the type last)
TSN_TEST_PIPELINE = """test_pipeline = [
    dict(io_backend='disk', type='DecordInit'),
    dict(clip_len=1, frame_interval=1, num_clips=25, test_mode=True, type='SampleFrames'),
    dict(type='DecordDecode'),
    dict(scale=(
        -1,
        256,
    ), type='Resize'),
    dict(crop_size=224, type='TenCrop'),
    dict(input_format='NCHW', type='FormatShape'),
    dict(type='PackActionInputs'),
]
"""


def test_an_mmaction2_config_gives_its_normalisation_and_resize_filter():
    """mmcv resizes bilinear unless a Resize step names its filter, before or after its type (the
    config text read as Python); filters torchvision does not resize frames with, a filter named
    by a variable and a text that is not Python leave timm's."""
    imagenet = {"mean": (123.675 / 255, 116.28 / 255, 103.53 / 255), "std": (58.395 / 255, 57.12 / 255, 57.375 / 255)}
    assert mmaction_preprocessing(TSN_CONFIG.format(backbone="")) == imagenet
    assert mmaction_preprocessing(TSN_CONFIG.format(backbone="") + TSN_TEST_PIPELINE) == {**imagenet, "interpolation": "bilinear"}
    named = TSN_TEST_PIPELINE.replace("), type='Resize'", "), interpolation='bicubic', type='Resize'")
    assert mmaction_preprocessing(named) == {"interpolation": "bicubic"}
    typed = "train_pipeline = [dict(type='RandomResizedCrop'), dict(type='Resize', scale=(224, 224), keep_ratio=False, interpolation='nearest'), dict(type='Flip', flip_ratio=0.5)]"
    assert mmaction_preprocessing(typed) == {"interpolation": "nearest"}
    assert mmaction_preprocessing(typed.replace("nearest", "area")) == {}  # cv2's area filter: timm's stays
    assert mmaction_preprocessing(typed.replace("'nearest'", "interp")) == {}
    assert mmaction_preprocessing(TSN_TEST_PIPELINE + "]") == {}  # not Python
    # a later step's filter is not the Resize's
    assert mmaction_preprocessing("[dict(type='Resize', scale=(-1, 256)), dict(type='Other', interpolation='bicubic')]") == {"interpolation": "bilinear"}


def test_a_checkpoint_gives_the_mean_std_and_resize_its_weights_were_trained_with(tmp_path: Path):
    """What a checkpoint records of its preprocessing, where other than timm's for the model,
    becomes the model's data config: timm train.py's --mean/--std/--interpolation (one number
    for three, as it accepts), else the pretrained tag it trained from (tv_in1k: bilinear);
    the mean and std of an mmaction2 config (on 0-255 pixels: a CLIP backbone's) and its Resize's
    filter (mmcv's bilinear); an NSNet
    checkpoint's data config. The resolution and crop stay the run's. A file recording timm's
    own (mmaction2's ImageNet figures, 123.675 / 255), or nothing, changes nothing."""
    spec = ModelSpec("resnet18", weights="none", resolution=32)
    state = create_model(spec, 3, seed=5).state_dict()
    own = data_config(create_model(spec, 3, seed=0), spec)
    assert (own["mean"], own["std"], own["interpolation"], own["input_size"], own["crop_pct"]) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic", (3, 32, 32), 0.875)
    clip = (122.771, 116.746, 104.094), (68.5, 66.6, 70.3)
    saved = {
        "train_py": {"arch": "resnet18", "state_dict": state, "args": _timm_train_args("resnet18", mean=[0.5], std=[0.5, 0.5, 0.5], interpolation="bilinear")},
        "train_py_tagged": {"arch": "resnet18.tv_in1k", "state_dict": state, "args": _timm_train_args("resnet18.tv_in1k")},
        "train_py_plain": {"arch": "resnet18", "state_dict": state, "args": _timm_train_args("resnet18")},
        "mmaction_clip": {"meta": {"cfg": TSN_CONFIG.format(backbone="").replace("123.675, 116.28, 103.53", "122.771, 116.746, 104.094").replace("58.395, 57.12, 57.375", "68.5, 66.6, 70.3")}, "state_dict": {_mmaction_names(k): v for k, v in state.items()}},
        "mmaction_imagenet": {"meta": {"cfg": TSN_CONFIG.format(backbone="")}, "state_dict": {_mmaction_names(k): v for k, v in state.items()}},
        "mmaction_pipeline": {"meta": {"cfg": TSN_CONFIG.format(backbone="") + TSN_TEST_PIPELINE}, "state_dict": {_mmaction_names(k): v for k, v in state.items()}},
        "nsnet": make_checkpoint(create_model(spec, 3, seed=5), "resnet18", CLASSES, {**own, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}),
        "plain": state,
    }
    expected = {
        "train_py": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear"},
        "train_py_tagged": {"interpolation": "bilinear"},
        "train_py_plain": {},
        "mmaction_clip": {"mean": tuple(v / 255 for v in clip[0]), "std": tuple(v / 255 for v in clip[1])},
        "mmaction_imagenet": {},
        "mmaction_pipeline": {"interpolation": "bilinear"},
        "nsnet": {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)},
        "plain": {},
    }
    for name, obj in saved.items():
        torch.save(obj, tmp_path / f"{name}.pth")
        loaded = replace(spec, weights=str(tmp_path / f"{name}.pth"))
        cfg = data_config(create_model(loaded, 3, seed=0, classes=CLASSES), loaded)
        assert checkpoint_identity(loaded) == ({"preprocessing": {k: list(v) if isinstance(v, tuple) else v for k, v in expected[name].items()}} if expected[name] else {}), name
        assert cfg == {**own, **expected[name]}, name
    # the frames are normalised so: white is (1 - 0.5) / 0.25 = 2 under the NSNet checkpoint's
    white = np.full((1, 40, 40, 3), 255, dtype=np.uint8)
    nsnet = replace(spec, weights=str(tmp_path / "nsnet.pth"))
    x = to_model_input(white, frame_transform(data_config(create_model(nsnet, 3, seed=0, classes=CLASSES), nsnet)))
    assert x.shape == (1, 3, 32, 32) and torch.equal(x, torch.full_like(x, 2.0))
    assert checkpoint_identity(ModelSpec("resnet18", weights="imagenet")) == {} == checkpoint_identity(spec)
    # fine-tuning on the trunk of another dataset's checkpoint keeps the normalisation it learnt with
    kinetics = tmp_path / "kinetics.pth.tar"
    torch.save({"arch": "resnet18", "state_dict": create_model(spec, 5, seed=6).state_dict(), "args": _timm_train_args("resnet18", mean=[0.4], std=[0.25])}, kinetics)
    model, start = create_finetune_model(replace(spec, weights=str(kinetics)), 3, seed=7, classes=CLASSES)
    assert start == f"{kinetics}: trunk, a new classifier for the dataset's 3 classes"
    assert data_config(model, spec) == {**own, "mean": (0.4, 0.4, 0.4), "std": (0.25, 0.25, 0.25)}
    torch.save({"arch": "resnet18", "state_dict": state, "args": _timm_train_args("resnet18", mean=[0.5, 0.5])}, tmp_path / "two_means.pth")
    with pytest.raises(WeightsError, match=r"two_means\.pth: the preprocessing in its training arguments cannot be read \(AssertionError\)"):
        create_model(replace(spec, weights=str(tmp_path / "two_means.pth")), 3, seed=0)


def test_a_checkpoint_with_averaged_weights_gives_them_as_timm_loads_it(tmp_path: Path):
    """timm's train.py with --model-ema keeps the raw weights in ``state_dict`` and the averaged
    ones in ``state_dict_ema`` (its best checkpoint is chosen by them); DeiT-style trainers keep
    ``model`` and ``model_ema``. The averaged weights are taken, as timm's own
    ``load_checkpoint`` takes them, and the identity says so; a file of averaged weights alone
    is the plain case (no choice made), as is an mmengine checkpoint: its EMAHook saves the
    averaged weights as ``state_dict`` and the raw ones in ``ema_state_dict``."""
    import timm

    spec = ModelSpec("test_resnet", weights="none", resolution=32)
    raw, ema = create_model(spec, 3, seed=1).state_dict(), create_model(spec, 3, seed=2).state_dict()
    files = {
        "model_best.pth.tar": ({"arch": "test_resnet", "state_dict": raw, "state_dict_ema": ema, "args": _timm_train_args("test_resnet"), "epoch": 3}, {"ema": "state_dict_ema"}),
        "deit.pth": ({"model": raw, "model_ema": ema, "epoch": 3}, {"ema": "model_ema"}),
        "ema_only.pth": ({"state_dict_ema": ema}, {}),
        "mmengine.pth": ({"meta": {"epoch": 3}, "state_dict": ema, "ema_state_dict": {"steps": torch.tensor(90), **{f"module.{k}": v for k, v in raw.items()}}}, {}),
    }
    for name, (obj, identity) in files.items():
        torch.save(obj, tmp_path / name)
        loaded = replace(spec, weights=str(tmp_path / name))
        model = create_model(loaded, 3, seed=0, classes=CLASSES)
        reference = timm.create_model("test_resnet", num_classes=3)
        timm.models.load_checkpoint(reference, str(tmp_path / name), weights_only=False)
        for key, value in model.state_dict().items():
            assert torch.equal(value, ema[key]) and torch.equal(value, reference.state_dict()[key]), (name, key)
        assert checkpoint_identity(loaded) == identity, name


def test_a_timm_hub_folder_gives_its_model_preprocessing_and_class_names(tmp_path: Path):
    """timm's ``save_for_hf`` (what ``push_to_hub`` uploads) writes ``model.safetensors`` /
    ``pytorch_model.bin`` with a ``config.json``: its architecture is checked, its preprocessing
    taken where other than timm's, and its ``label_names`` put the classifier's rows in the
    dataset's order where they are the dataset's classes (other names: taken by index, as a file
    naming none). A transformers ``config.json`` beside a file is not read. The folder given as
    weights is read as its weight file; a folder without one is said to be a folder."""
    import json

    from timm.models import save_for_hf

    spec = ModelSpec("resnet18", weights="none", resolution=32)
    trained = create_model(spec, 3, seed=5)
    trained.pretrained_cfg = {**trained.pretrained_cfg, "mean": (0.4, 0.4, 0.4), "std": (0.25, 0.25, 0.25)}  # a model fine-tuned with its own normalisation
    save_for_hf(trained, tmp_path / "hub", model_config={"label_names": ["c", "a", "b"]}, safe_serialization="both")
    for name in ("model.safetensors", "pytorch_model.bin"):
        loaded = replace(spec, weights=str(tmp_path / "hub" / name))
        model = create_model(loaded, 3, seed=0, classes=CLASSES)
        assert torch.equal(model.fc.weight, trained.fc.weight[[1, 2, 0]]) and torch.equal(model.layer1[0].conv1.weight, trained.layer1[0].conv1.weight), name
        assert data_config(model, loaded)["mean"] == (0.4, 0.4, 0.4) and checkpoint_identity(loaded) == {"preprocessing": {"mean": [0.4, 0.4, 0.4], "std": [0.25, 0.25, 0.25]}}
        with pytest.raises(WeightsError, match=r"checkpoint is for model 'resnet18', not 'test_resnet'"):
            create_model(ModelSpec("test_resnet", weights=str(tmp_path / "hub" / name)), 3, seed=0)
    assert checkpoint_path(str(tmp_path / "hub")) == str(tmp_path / "hub" / "model.safetensors")  # the folder as downloaded, safetensors first
    from stages.cli import backbone_overrides  # what --light-weights / --recognizer-weights give

    assert backbone_overrides({"light_model": None, "light_weights": str(tmp_path / "hub"), "recognizer_weights": "imagenet"}) == {"light_name": None, "light_weights": str(tmp_path / "hub" / "model.safetensors"), "recognizer_weights": "imagenet"}
    (tmp_path / "hub" / "model.safetensors").rename(tmp_path / "model.safetensors")
    assert checkpoint_path(str(tmp_path / "hub")) == str(tmp_path / "hub" / "pytorch_model.bin")
    (tmp_path / "model.safetensors").rename(tmp_path / "hub" / "model.safetensors")
    assert checkpoint_path(str(tmp_path / "x.pth")) == str(tmp_path / "x.pth") and checkpoint_path("none") == "none"
    with pytest.raises(WeightsError, match=r"hub: a folder; give its weight file, \S+hub/model.safetensors$"):  # a caller that did not apply it
        create_model(replace(spec, weights=str(tmp_path / "hub")), 3, seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match=r"empty: a folder without a checkpoint file timm writes \(model.safetensors or pytorch_model.bin\): give the checkpoint file itself"):
        create_model(replace(spec, weights=checkpoint_path(str(tmp_path / "empty"))), 3, seed=0)
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    (tmp_path / "hub" / "config.json").write_text(json.dumps({**config, "label_names": ["x", "y", "z"]}))
    model = create_model(replace(spec, weights=str(tmp_path / "hub" / "model.safetensors")), 3, seed=0, classes=CLASSES)
    assert torch.equal(model.fc.weight, trained.fc.weight)  # other names: by index
    (tmp_path / "hub" / "config.json").write_text(json.dumps({"model_type": "videomae", "id2label": {"0": "c", "1": "a", "2": "b"}}))
    plain = replace(spec, weights=str(tmp_path / "hub" / "model.safetensors"))
    assert torch.equal(create_model(plain, 3, seed=0, classes=CLASSES).fc.weight, trained.fc.weight) and checkpoint_identity(plain) == {}


def test_a_model_name_may_carry_a_pretrained_tag_whose_preprocessing_it_gets():
    """``resnet18.tv_in1k`` is timm's name for torchvision's weights, resized bilinearly as
    torchvision did (timm's default tag of resnet18 resizes bicubically)."""
    spec = ModelSpec("resnet18.tv_in1k", weights="none", resolution=32)
    tagged = create_model(spec, 3, seed=0)
    assert data_config(tagged, spec)["interpolation"] == "bilinear"
    assert data_config(create_model(replace(spec, name="resnet18"), 3, seed=0), replace(spec, name="resnet18"))["interpolation"] == "bicubic"
    assert weights_identity(replace(spec, weights="imagenet")) == "imagenet:timm/resnet18.tv_in1k"
    with pytest.raises(WeightsError, match=r"'resnet18.tv_in22k': timm has no pretrained tag 'tv_in22k' for resnet18 \(it has a1_in1k, a2_in1k, a3_in1k, fb_ssl_yfcc100m_ft_in1k, fb_swsl_ig1b_ft_in1k and 2 more\)"):
        create_model(replace(spec, name="resnet18.tv_in22k"), 3, seed=0)
    with pytest.raises(WeightsError, match="'hf-hub:timm/resnet18.a1_in1k': a model named by its hub repository is read from the hub at every load; name it as timm does"):
        create_model(replace(spec, name="hf-hub:timm/resnet18.a1_in1k"), 3, seed=0)


@pytest.mark.parametrize("name, architecture", [("resnet50", "resnet50"), ("resnet50.tv_in1k", "resnet50"), ("vit_base_patch16_224.augreg2_in21k_ft_in1k", "vit_base_patch16_224"), ("hf-hub:timm/resnet50.a1_in1k", "resnet50"), ("hf_hub:timm/mobilenetv2_100.ra_in1k", "mobilenetv2_100"), ("hf-hub:someone/my-net", None)])
def test_the_architecture_of_a_model_name(name, architecture):
    assert model_architecture(name) == architecture


def test_a_lightning_checkpoint_loads_without_its_wrappers_attribute_name(tmp_path: Path):
    """A LightningModule holding the timm model as ``self.model`` saves ``model.conv1.weight``
    ...; a loss's buffer beside it (``criterion.weight``) is not the model's."""
    spec = ModelSpec("test_resnet", weights="none", resolution=32)
    trained = create_model(spec, 3, seed=5)
    state = {f"model.{k}": v for k, v in trained.state_dict().items()} | {"criterion.weight": torch.ones(3)}
    path = tmp_path / "epoch=29-step=900.ckpt"
    torch.save({"epoch": 29, "global_step": 900, "pytorch-lightning_version": "2.4.0", "state_dict": state, "hyper_parameters": {"lr": 0.1, "arch": "test_resnet"}}, path)
    loaded = create_model(replace(spec, weights=str(path)), 3, seed=0, classes=CLASSES)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), trained(x))
    # a wrapper name that does not give the model's keys is not taken off
    torch.save({f"model.stem_{k}": v for k, v in trained.state_dict().items()}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="other.pth: does not fit test_resnet"):
        create_model(replace(spec, weights=str(tmp_path / "other.pth")), 3, seed=0)
