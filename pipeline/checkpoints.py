"""Checkpoint files: NSNet's own format, read safely, and fitted into a timm model (the
classifier's rows in the dataset's class order, other trainers' names made timm's)."""

from __future__ import annotations

import argparse
import codecs
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.checked_files import ZIP_START, checked_torch_load
from pipeline.checkpoint_keys import TSN_ARCHITECTURES, TSN_PREPROCESSING, is_tsn, mmaction_preprocessing, mmaction_refusal, temporal_shift_refusal, timm_names
from pipeline.config import ModelSpec, model_architecture
from pipeline.datasets.class_names import class_key, read_class_names
from pipeline.datasets.manifest import ManifestError
from pipeline.decoders import first_line
from pipeline.output_kinds import CHECKPOINT, FINETUNING_RUN, named, output_kind
from pipeline.wording import first_few

CHECKPOINT_FORMAT = "nsnet-checkpoint-v1"
# What a checkpoint may hold besides tensors and plain data and still be read with
# weights_only: the arguments timm's train.py keeps in its checkpoints (attributes only).
CHECKPOINT_GLOBALS = [argparse.Namespace]
# What of a frame's preprocessing a checkpoint may record and its weights depend on: the
# normalisation it was trained with and the resize filter. The resolution and crop stay the
# run's (ModelSpec), as with timm's pretrained weights.
PREPROCESSING_KEYS = ("mean", "std", "interpolation")
# The weight files timm's save_for_hf / push_to_hub writes, with its config.json beside them.
TIMM_HUB_FILES = ("model.safetensors", "pytorch_model.bin")
# What a sampler run's model.pth holds (stages.train), given where a backbone's weights belong.
SAMPLER_HEADS = {"model", "config", "features_fingerprint"}
# A training checkpoint's averaged weights, taken before its raw ones where it has both, as timm's
# own loading does (``timm.models.load_checkpoint``, ``create_model(checkpoint_path=...)``):
# timm's train.py with --model-ema, DeiT-style trainers. Its best checkpoint is chosen by them.
# mmengine's EMAHook saves the averaged weights as the checkpoint's ``state_dict`` itself (the
# raw ones in ``ema_state_dict``), so they are taken as its state dict.
EMA_KEYS = ("state_dict_ema", "model_ema")
# Recorded values this close to timm's are timm's (mmaction2 states the ImageNet mean on 0-255
# pixels: 123.675 / 255).
PREPROCESSING_TOLERANCE = 1e-4


class WeightsError(Exception):
    """Weights that cannot be loaded; the message says which and what to do."""


def checkpoint_path(weights: str) -> str:
    """Weights given as a timm hub folder (what ``huggingface-cli download timm/<model>
    --local-dir DIR`` or timm's ``save_for_hf`` writes) as the weight file in it, safetensors
    first (:data:`TIMM_HUB_FILES`), or as a fine-tuning run's folder (``nsnet finetune``'s) as
    its ``model.pth``; any other value as given."""
    folder = Path(weights)
    if not folder.is_dir():
        return weights
    held = TIMM_HUB_FILES + (("model.pth",) if output_kind(folder) == FINETUNING_RUN else ())
    return next((str(folder / name) for name in held if (folder / name).is_file()), weights)


def no_checkpoint(path: Path) -> WeightsError:
    """The error for weights whose path is no checkpoint file: a folder said as such, with the
    weight file it holds where it holds one (:func:`checkpoint_path`, which the commands apply)."""
    if path.is_dir():
        held = checkpoint_path(str(path))
        if held != str(path):
            return WeightsError(f"{path}: a folder; give its weight file, {held}")
        return WeightsError(named(path, "a checkpoint", f"a folder without a checkpoint file timm writes ({' or '.join(TIMM_HUB_FILES)}): give the checkpoint file itself"))
    return WeightsError(f"{path}: checkpoint file not found (weights must be 'imagenet', 'none' or a checkpoint path)")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint file: an NSNet checkpoint (``format`` key, ``state_dict``, ``classes``,
    ``model_name``, ``data_config``), a training checkpoint with ``state_dict``/``model`` (with
    ``trainer_config``, the config text an mmengine or mmaction2 checkpoint keeps in its
    ``meta``; a TSN code base's with its ``arch`` as ``model_name`` and its bilinear resize,
    :func:`~pipeline.checkpoint_keys.is_tsn`), a timm hub folder's weights
    (:func:`timm_hub_config`: ``model_name``, ``label_names``), or a plain state dict.
    ``preprocessing`` holds what the file records of the :data:`PREPROCESSING_KEYS` its weights
    were trained with (absent where it records none);
    ``ema`` the key of the averaged weights taken where the file also holds raw ones
    (:data:`EMA_KEYS`)."""
    path = Path(path)
    if not path.is_file():
        raise no_checkpoint(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return {"state_dict": load_file(str(path)), **timm_hub_config(path)}
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            obj = checked_torch_load(path, "copy it again from where it came", WeightsError, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:
        other = _not_torch_file(path)
        if other is None and isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
            raise WeightsError(_pickled_objects_message(path, str(exc))) from exc
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))  # the line that says what, after torch's advice
        raise WeightsError(named(path, "a checkpoint", f"not a readable PyTorch checkpoint ({other or (detail[1] if detail else first_line(exc))})", itself=CHECKPOINT)) from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a state dict")
    if SAMPLER_HEADS <= obj.keys():
        raise WeightsError(f"{path}: a sampler run's trained heads (`nsnet train`'s model.pth; --run takes it or its folder); not a backbone's weights")
    hub = timm_hub_config(path)
    if hub:  # timm's plain state dict, described by its config.json
        return {"state_dict": obj, **hub}
    if obj.get("format") == CHECKPOINT_FORMAT:
        return {**obj, "preprocessing": preprocessing_values(obj.get("data_config") or {})}
    trained: dict[str, Any] = {}
    # timm's train.py saves its arguments beside the weights, and the model's name as "arch" then
    if isinstance(obj.get("args"), argparse.Namespace) and isinstance(obj.get("arch"), str):
        try:
            trained = {"model_name": obj["arch"], "preprocessing": timm_train_preprocessing(obj["arch"], obj["args"])}
        except (AssertionError, TypeError, ValueError) as exc:
            raise WeightsError(f"{path}: the preprocessing in its training arguments cannot be read ({first_line(exc) or type(exc).__name__})") from exc
    elif isinstance(obj.get("state_dict"), dict) and is_tsn(obj["state_dict"]):  # a TSN code base's (AR-Net's)
        trained = {"preprocessing": dict(TSN_PREPROCESSING)}
        if isinstance(obj.get("arch"), str):
            trained["model_name"] = TSN_ARCHITECTURES.get(obj["arch"], obj["arch"])
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    config = next((meta[key] for key in ("cfg", "config") if isinstance(meta.get(key), str)), None)  # mmengine's, mmaction2 0.x's
    if config is not None:
        trained["trainer_config"] = config
        trained["preprocessing"] = mmaction_preprocessing(config)
    weights = [key for key in EMA_KEYS + ("state_dict", "model") if isinstance(obj.get(key), dict)]
    if weights:
        chosen = {"ema": weights[0]} if weights[0] in EMA_KEYS and len(weights) > 1 else {}  # where there was a choice
        return {"state_dict": obj[weights[0]], **trained, **chosen}
    return {"state_dict": obj, **({"preprocessing": dict(TSN_PREPROCESSING)} if is_tsn(obj) else {})}


def timm_hub_config(path: Path) -> dict[str, Any]:
    """What the ``config.json`` that timm's ``save_for_hf`` / ``push_to_hub`` writes beside its
    weights (``model.safetensors``, ``pytorch_model.bin``) says of them: the model
    (``architecture``), its preprocessing (``pretrained_cfg``'s mean, std, interpolation) and its
    class names in output order (``label_names``, where given); {} for other files and for
    configs that are not timm's (a transformers model's)."""
    config = path.with_name("config.json")
    if path.name not in TIMM_HUB_FILES or not config.is_file():
        return {}
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("architecture"), str) or not isinstance(data.get("pretrained_cfg"), dict):
        return {}
    found: dict[str, Any] = {"model_name": data["architecture"], "preprocessing": preprocessing_values(data["pretrained_cfg"])}
    try:
        found["label_names"] = tuple(read_class_names(config))
    except ManifestError:  # no label names, or not in a form that gives them in output order
        pass
    return found


def preprocessing_values(data_config: dict[str, Any]) -> dict[str, Any]:
    """The :data:`PREPROCESSING_KEYS` a data config states, sequences as tuples of floats."""
    return {k: tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v for k, v in data_config.items() if k in PREPROCESSING_KEYS and v}


def timm_train_preprocessing(arch: str, args: argparse.Namespace) -> dict[str, Any]:
    """The preprocessing timm's ``train.py`` trained with, resolved as it resolves it: its
    ``--mean``, ``--std`` and ``--interpolation`` where given, else the pretrained config of the
    model it trained (``arch``, with its pretrained tag: ``resnet50.tv_in1k`` resizes bilinear
    where ``resnet50``'s default tag is bicubic); nothing for what neither states."""
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    try:
        pretrained = get_pretrained_cfg(arch)
    except RuntimeError:  # a tag this timm does not have
        pretrained = None
    pretrained_cfg = pretrained.to_dict() if pretrained is not None else {}
    given = {k for k in PREPROCESSING_KEYS if getattr(args, k, None)}
    if not given and not pretrained_cfg:
        return {}
    resolved = resolve_data_config(vars(args), pretrained_cfg=pretrained_cfg or None)
    return preprocessing_values({k: v for k, v in resolved.items() if k in given or pretrained_cfg.get(k)})


def preprocessing_override(recorded: dict[str, Any], model_name: str) -> dict[str, Any]:
    """The entries of a checkpoint's ``recorded`` preprocessing that differ from timm's for
    ``model_name`` (its pretrained tag's, else its default's): what the frames of those weights
    need other than the model's own. Numbers within :data:`PREPROCESSING_TOLERANCE` are the same."""
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    own = resolve_data_config(pretrained_cfg=get_pretrained_cfg(model_name).to_dict())

    def same(key: str, value: Any) -> bool:
        if isinstance(value, tuple):
            return len(value) == len(own[key]) and all(abs(a - b) <= PREPROCESSING_TOLERANCE for a, b in zip(value, own[key]))
        return value == own[key]

    return {k: v for k, v in recorded.items() if not same(k, v)}


def preprocessing_text(values: dict[str, Any]) -> str:
    """A preprocessing as a table says it: ``mean 0.5/0.5/0.5, std 0.5/0.5/0.5, bilinear resize``."""
    parts = [f"{key} " + "/".join(f"{x:.4g}" for x in values[key]) for key in ("mean", "std") if key in values]
    return ", ".join(parts + ([f"{values['interpolation']} resize"] if "interpolation" in values else []))


# How the files torch.save writes begin: its zip archive, and its legacy pickle (protocol 2).
TORCH_FILE_STARTS = (ZIP_START, b"\x80\x02")


def _not_torch_file(path: Path) -> str | None:
    """What a file torch could not load is, where it is no file torch.save writes (None where it
    begins as one): a text file's lines read as a pickle's made it "holds Python objects
    besides its weights (<its first two lines>)"."""
    with open(path, "rb") as file:
        head = file.read(1024)
    if head.startswith(TORCH_FILE_STARTS):
        return None
    try:  # a character cut at the end of the bytes read is no error (final=False)
        text = b"\0" not in head and codecs.getincrementaldecoder("utf-8")().decode(head, final=False) is not None
    except UnicodeDecodeError:
        text = False
    return "a text file" if text else "its first bytes are not those of a file torch.save writes"


def _pickled_objects_message(path: Path, error: str) -> str:
    """Why a checkpoint holding more than tensors (mmengine's keep its trainer's log objects in
    ``meta``) is not loaded, and how to keep its weights alone."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", error)
    what = f" ({found[1]})" if found else ""
    return (
        f"{path}: holds Python objects besides its weights{what}, which are not unpickled here (that can run code); "
        f"if you trust the file, save its weights alone and pass that file: python -c \"import torch; "
        f"c = torch.load('{path}', weights_only=False); torch.save(c.get('state_dict', c), 'weights.pth')\""
    )


def _classifier_names(model: nn.Module) -> list[str]:
    name = model.pretrained_cfg.get("classifier") or "fc"
    return list(name) if isinstance(name, (list, tuple)) else [name]


def _classifier_keys(model: nn.Module) -> list[str]:
    return [f"{n}.{p}" for n in _classifier_names(model) for p in ("weight", "bias")]


def head_order(trained: tuple[str, ...], wanted: tuple[str, ...], path: Path) -> list[int] | None:
    """Which of the ``trained`` classes' classifier rows give the ``wanted`` classes, in their
    order (None: the same order already). A checkpoint trained on the same classes in another
    order (a label map's order against the dataset's sorted names) is reordered, the names
    matched as across annotation files (case, quotes and spaces against underscores aside);
    other classes are an error naming some of them."""
    if trained == wanted:
        return None
    index = {class_key(name): i for i, name in enumerate(trained)}
    keys = [class_key(name) for name in wanted]
    wanted_keys = set(keys)
    if len(index) == len(trained) == len(wanted) and wanted_keys == index.keys():
        return [index[key] for key in keys]
    missing = [name for name in wanted if class_key(name) not in index]
    extra = [name for name in trained if class_key(name) not in wanted_keys]
    problems = [f"{label}: {first_few([repr(n) for n in names], 3)}" for label, names in (("not in the checkpoint", missing), ("not in the dataset", extra)) if names]
    raise WeightsError(f"{path}: checkpoint was trained on other classes than this dataset's ({len(trained)} vs {len(wanted)} classes; {'; '.join(problems) or 'a name given twice'})")


def load_weights(model: nn.Module, spec: ModelSpec, num_classes: int, classes: tuple[str, ...] | None, transfer: bool = False) -> bool:
    """Load the checkpoint ``spec.weights`` into ``model``; returns whether its classifier was
    kept. Its classifier must give the dataset's classes (reordered where it names them in
    another order); with ``transfer`` one that does not (other classes, or none) is left out and
    the model's own new classifier stays, the rest of the checkpoint loaded as strictly. What
    the checkpoint records of its preprocessing other than timm's for the model goes into the
    model's ``pretrained_cfg``, whence its data config is resolved."""
    path = Path(spec.weights)
    ckpt = read_checkpoint(path)
    trained_as = ckpt.get("model_name")
    if trained_as is not None and model_architecture(trained_as) not in (None, model_architecture(spec.name)):  # pretrained tags aside
        raise WeightsError(f"{path}: checkpoint is for model {trained_as!r}, not {spec.name!r}")
    refusal = mmaction_refusal(ckpt.get("trainer_config", ""))
    if refusal is not None:
        raise WeightsError(f"{path}: {refusal} (from the training config the checkpoint keeps)")
    state = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    refusal = temporal_shift_refusal(state)
    if refusal is not None:
        raise WeightsError(f"{path}: {refusal}")
    state = timm_names(state, _classifier_names(model)[0], model.state_dict().keys())
    head = _classifier_keys(model)
    keep = num_classes > 0 and (head[0] in state or not transfer)
    named = ckpt.get("classes")
    if named is None and classes is not None and ckpt.get("label_names") is not None and sorted(map(class_key, ckpt["label_names"])) == sorted(map(class_key, classes)):
        named = ckpt["label_names"]  # a hub config's names, used where they are the dataset's (else by index, as named none)
    if keep and classes is not None and named is not None:
        try:
            order = head_order(tuple(named), classes, path)
        except WeightsError:
            if not transfer:
                raise
            keep = False
        else:
            if order is not None:  # the classifier's rows put in the dataset's class order
                state = {k: v[order] if k in head else v for k, v in state.items()}
    if keep and head[0] in state and state[head[0]].shape[0] != num_classes:
        if not transfer:
            raise WeightsError(
                f"{path}: classifier has {state[head[0]].shape[0]} outputs but the dataset has {num_classes} classes; "
                "a recognizer checkpoint must be trained on the target dataset"
            )
        keep = False
    if not keep:
        state = {k: v for k, v in state.items() if k not in head}
    new_head = num_classes > 0 and not keep
    try:
        loaded = model.load_state_dict(state, strict=not new_head)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: does not fit {spec.name} ({str(exc).splitlines()[0]})") from exc
    unfit = list(loaded.unexpected_keys) + [k for k in loaded.missing_keys if k not in head]
    if unfit:
        raise WeightsError(f"{path}: does not fit {spec.name} (keys not matched: {first_few([repr(n) for n in unfit], 3)})")
    override = preprocessing_override(ckpt.get("preprocessing", {}), spec.name)
    if override:
        model.pretrained_cfg = model.default_cfg = {**model.pretrained_cfg, **override}
    return keep


def make_checkpoint(model: nn.Module, model_name: str, classes: tuple[str, ...], data_cfg: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An NSNet checkpoint: what ``--*-weights PATH`` loads, with the class list and the timm
    data config the model was trained with."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "classes": list(classes),
        "num_classes": len(classes),
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_cfg.items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
