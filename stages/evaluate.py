"""Stage ``nsnet evaluate``: NSNet against the hand-crafted samplers, with counted GFLOPs.

On the evaluation videos (every finished video of the val split, or of test where there is no
val or it is asked for) of a feature cache:
the trained heads score the T observed frames, A.3's fusion picks K, and the recognizer runs
on those K frames only — decoded from the video again at the recognizer's resolution (the real
path; its logits kept in ``<features>.decoded-<fingerprint>.zarr`` a shard of videos at a time,
so an interrupted evaluation goes on where it stopped; ``--nsnet-from-cache`` reads them from
the feature cache instead). Every other sampler, the ablation variants and the K curve read the recognizer's
logits of the chosen frames from the feature cache (the fast path); the report shows how far
the two paths are apart for NSNet (they agree to float precision, and a test checks the
predictions are identical). Table 1's baselines over all frames of each video (UNIFORM-10,
RANDOM-10, DENSE, TOP-K-10) come from one cached recognizer pass over every frame
(:mod:`stages.all_frames`); with a preset (:mod:`pipeline.presets`) the paper's figures stand
beside ours.

Torchrun ranks and ``--shard`` jobs divide the decoding (:func:`evaluate_share`): each fills its
share of the two stores, and one run then writes the report from them.

Writes ``<features cache>.eval-<fingerprint>/``: ``results.json``, ``report.md``,
``predictions.jsonl`` (NSNet's chosen frames and top-5 per video), ``per_class_ap.csv`` (each class's AP under NSNet and the samplers it is compared with), ``budget_curve.png`` (Fig. 3), ``class_saliency.png`` (Fig. 5) and ``selected_frames.png`` (Fig. 4: the frames UNIFORM, NSNet w/o NS and NSNet choose in four videos). Same inputs and config
again: the stored report is printed, nothing is recomputed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from pipeline import cache as cache_mod
from pipeline.baselines import dense_positions, oracle_positions, random_positions, top_confidence_positions, uniform_positions
from pipeline.cache import CacheError, FeatureCache, read_rows
from pipeline.checked_files import checked_json, made_again
from pipeline.config import DECODE_TIMEOUT_S, EvalConfig, FeaturesConfig, TrainConfig
from pipeline.datasets import Manifest
from pipeline.datasets.manifest import identity_split
from pipeline.evaluation import Recognition, all_frame_scores, class_mean_saliency, ema, fused_positions, recognition, scores_at, top_classes
from pipeline.extract import workers_within_shared_memory
from pipeline.flops import ComputeCost, compute_cost
from pipeline.metrics import multi_hot
from pipeline.fusion import fused_scores, top_k
from pipeline.plots import matplotlib_available, plot_budget_curve, plot_class_saliency, plot_showcase
from pipeline.backends import DEFAULT_EXPORT_DIR, backend_identity, resolve_backend
from pipeline.recognition import RECOGNIZED_VIDEOS_PER_BATCH, ChosenFrameDecoder, recognized
from pipeline.distributed import WHOLE, Share
from pipeline.environment import environment
from pipeline.row_store import RowComputer, StoredRows, fill_rows, finished_rows, rows_digest
from pipeline.shared_caches import output_beside
from pipeline.showcase import SALIENT_G, ShowcaseInput, ShowcaseVideo, chosen_guidance, showcase_video, showcase_videos
from stages.all_frames import AllFrameScores, fill_all_frames, run_all_frames
from stages.evaluate_report import markdown_report, per_class_csv
from pipeline.sampler import NSNetSampler
from pipeline.sampler_training import FrameObjective
from pipeline.video import broken_link
from pipeline.wording import first_few
from stages.features import cached_runner
from stages.train import SamplerInputs, cached_saliency, load_sampler_inputs, load_trained_sampler, run_train

WITHOUT_NS = {"fsm_target": "video", "vgm_target": "video"}


def eval_dir_for(features: Path, prototypes: Path, run_dir: Path, cfg: EvalConfig, features_fp: str, preset: dict[str, Any] | None = None, backend: str = "torch", nsnet_from_cache: bool = False, split: str | None = None) -> Path:
    """Where an evaluation's outputs go; the recognizer's backend (resolved) is named only
    when it is not torch, NSNet's row from the cache only when asked, and the evaluation split
    only where the cache has two (val and test), so evaluations made before there was a choice
    keep their folders."""
    identity = {"features": features_fp, "prototypes": Path(prototypes).name, "run": Path(run_dir).name, "eval": asdict(cfg), **backend_identity(backend)}
    if nsnet_from_cache:
        identity["nsnet_logits"] = "cache"
    if split is not None:
        identity["split"] = split
    fp = cache_mod.fingerprint(identity if preset is None else {**identity, "preset": preset})
    return output_beside(features, f"{features.name}.eval-{fp[:16]}", evaluation_finished)


def evaluation_finished(out: Path) -> bool:
    """Whether the evaluation ``out`` is there whole (written whole, its ``results.json`` in it)."""
    return (out / "results.json").is_file()


class EvalData:
    """Everything the samplers are scored on: the evaluation videos' cached logits (float32,
    read a shard at a time for those videos only, when first asked for), their labels and guiding scores;
    :meth:`saliency` reads their light features from the cache and scores them a batch at a
    time, holding none of them after."""

    def __init__(self, inputs: SamplerInputs, features: Path, split: str | None = None):
        self.inputs, self.features = inputs, Path(features)
        self.videos, self.split = inputs.evaluated(split)
        self.left_out = inputs.left_out(self.split)
        if not len(self.videos):
            raise CacheError(f"{features}: no finished video in the {self.split} split to evaluate on")
        with FeatureCache(features) as cache:
            self.num_frames = np.asarray(cache["num_frames"][:])[self.videos]
        self.frame_indices = inputs.frame_indices[self.videos]
        self.g = inputs.g[self.videos]
        self.labels = [inputs.videos[i]["labels"] for i in self.videos]
        self.t = inputs.shape.num_frames
        self.manifest = Manifest.from_json(json.dumps(inputs.attrs["manifest"]))
        self.synthetic = "synthetic" in inputs.attrs["identity"]

    @cached_property
    def logits(self) -> np.ndarray:
        """The recognizer's cached logits [V, T, C] of the evaluation videos (float32)."""
        with FeatureCache(self.features) as cache:
            return read_rows(cache["rec_logits"], self.videos)

    def saliency(self, model: torch.nn.Module, objective: FrameObjective, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        """(s_f, s_v) [V, T] of trained heads on the evaluation videos."""
        return cached_saliency(model, objective, self.features, self.videos, device)

    def frames_at(self, positions: list[np.ndarray]) -> list[np.ndarray]:
        """The frame indices in each video at ``positions`` among its T observed frames."""
        return [ids[p] for ids, p in zip(self.frame_indices, positions)]

    def score(self, positions: list[np.ndarray]) -> tuple[Recognition, np.ndarray]:
        """Fast path: metrics and video scores from the cached logits of the chosen positions."""
        scores = scores_at(self.logits, positions)
        return recognition(scores, self.labels), scores


def _row(name: str, result: Recognition, gflops: float, frames: float, path: str, note: str = "") -> dict[str, Any]:
    return {"method": name, "map": result.map, "top1": result.top1, "gflops": gflops, "frames": frames, "path": path, "note": note}


def decoded_store_for(features: Path, features_fp: str, videos: np.ndarray, frame_ids: list[np.ndarray], backend: str) -> tuple[Path, str]:
    """The store of NSNet's decoded row (:func:`_recognizer_logits`): the recognizer's logits of
    the chosen frames of the evaluation videos, keyed by the feature cache, the videos, their
    chosen frames and the recognizer's backend (named only when it is not torch), and its
    fingerprint."""
    fp = cache_mod.fingerprint({"features": features_fp, "decoded": rows_digest(videos, np.stack(frame_ids)), **backend_identity(backend)})
    return output_beside(features, f"{features.name}.decoded-{fp[:16]}.zarr", finished_rows), fp


def _recognizer_logits(data: EvalData, root: Path, frame_ids: list[np.ndarray], device: torch.device, workers: int, progress: bool, backend: str, export_dir: Path, decode_timeout: float) -> np.ndarray:
    """The real path: decode exactly ``frame_ids`` of every evaluation video and run the
    recognizer: its logits [V, K, C], kept in a store beside the cache (:func:`decoded_store_for`)
    a shard of videos at a time, so that an interrupted evaluation goes on where it stopped."""
    stored = _decoded_rows(data, root, frame_ids, device, workers, progress, backend, export_dir, decode_timeout)
    if stored.errors:
        listed = first_few([stored.errors[i] for i in sorted(stored.errors)], 5, sep="; ")
        hint = "" if root.is_dir() else f" ({broken_link(root) or f'{root} does not exist'}: pass the data root the cache was built from, --data-root)"
        raise CacheError(f"{len(stored.errors)} evaluation video(s) could not be decoded again since the cache was built{hint} (the others are kept in {stored.path}; a new run decodes these again, or --nsnet-from-cache scores NSNet from the cached logits of its K frames instead of decoding them again): {listed}")
    return stored.arrays["logits"]


def _decoded_rows(data: EvalData, root: Path, frame_ids: list[np.ndarray], device: torch.device, workers: int, progress: bool, backend: str, export_dir: Path, decode_timeout: float, share: Share = WHOLE) -> StoredRows:
    """The store of :func:`_recognizer_logits` with the rows of ``share`` (:mod:`pipeline.row_store`)
    decoded; its failures are returned, not raised."""
    desc = "NSNet: recognizer on K frames"
    records = [data.manifest.videos[i] for i in data.videos]
    path, fp = decoded_store_for(data.features, data.inputs.content_fingerprint, data.videos, frame_ids, backend)
    arrays = {"logits": ((len(records), len(frame_ids[0]), len(data.manifest.classes)), "float32"), "status": ((len(records),), "int8")}

    def computer() -> RowComputer:  # the recognizer is loaded only where a video is to decode
        runner, transform = cached_runner(data.inputs.attrs, "recognizer", data.features, device, backend, export_dir)
        # a batch of videos' uint8 crops crosses from its decoder through shared memory
        batch_bytes = RECOGNIZED_VIDEOS_PER_BATCH * len(frame_ids[0]) * math.prod(data.inputs.attrs["data_configs"]["recognizer"]["input_size"])
        fitting = workers_within_shared_memory(workers, batch_bytes, asked=False)

        def compute(rows: list[int]) -> Iterator[tuple[int, dict[str, np.ndarray] | str]]:  # a batch of videos at a time
            decoder = ChosenFrameDecoder(root, [records[r] for r in rows], [frame_ids[r] for r in rows], transform)
            for item, result in recognized(decoder, runner, device, RECOGNIZED_VIDEOS_PER_BATCH, fitting, desc, decode_timeout):
                yield rows[item], result if isinstance(result, str) else {"logits": result}

        return compute

    return fill_rows(path, fp, {"features": str(data.features), "video_ids": [r.video_id for r in records]}, arrays, computer, progress, desc, share)


def all_frame_methods(budget: int) -> dict[str, str]:
    """Table 1's rows over all frames: method name -> baseline of :mod:`pipeline.all_frames`."""
    return {f"UNIFORM-{budget} (all frames)": "uniform", f"RANDOM-{budget} (all frames)": "random", "DENSE (all frames)": "dense", f"TOP-K-{budget} (all frames)": "topk"}


def _quoted(row: dict[str, Any], preset: dict[str, Any] | None) -> dict[str, Any]:
    """The row with the paper's figure for it, when the preset quotes one."""
    figure = (preset or {}).get("figures", {}).get(row["method"])
    return row if figure is None else {**row, "paper": figure}


def _all_frame_rows(result: AllFrameScores, recognized: dict[str, Recognition], cost: ComputeCost, budget: int) -> dict[str, dict[str, Any]]:
    """Table 1's baselines (``recognized``: each one's results by method name), with GFLOPs from
    the mean frames the recognizer ran on: ``budget`` (or all, when fewer) for UNIFORM and
    RANDOM, all of them for DENSE and TOP-K."""
    every = float(np.mean(result.frames))
    few = float(np.mean(np.minimum(result.frames, budget)))
    frames = {"uniform": few, "random": few, "dense": every, "topk": every}
    notes = {"uniform": "Table 1", "random": "Table 1", "dense": "Table 1", "topk": f"Table 1: recognizer on all frames, top {budget} by confidence"}
    return {
        name: _row(name, recognized[name], cost.recognizer(frames[key]), frames[key], "decoded", notes[key])
        for name, key in all_frame_methods(budget).items()
    }


def _claims(rows: dict[str, dict[str, Any]], k: int, t: int, budget: int) -> list[dict[str, Any]]:
    """The orderings the paper's claims imply, with the measured figures."""
    nsnet = rows[f"NSNet (K={k})"]
    out = [
        ("NSNet mAP >= UNIFORM mAP + 5", nsnet["map"], rows[f"UNIFORM (K={k})"]["map"] + 5),
        ("NSNet mAP >= TOP-K mAP - 1", nsnet["map"], rows[f"TOP-K (K={k} of T={t})"]["map"] - 1),
        ("FSM with NS labels mAP >= FSM with video labels + 3", rows["FSM alone"]["map"], rows["FSM alone, video labels (w/o NS)"]["map"] + 3),
        ("NSNet (fused) mAP >= max(FSM alone, VGM alone)", nsnet["map"], max(rows["FSM alone"]["map"], rows["VGM alone"]["map"])),
    ]
    # Table 1: NSNet above every baseline over all frames
    out += [(f"NSNet mAP >= {name} mAP", nsnet["map"], rows[name]["map"]) for name in all_frame_methods(budget) if name in rows]
    claims = [{"claim": c, "value": v, "bound": b, "holds": bool(v >= b - 1e-9)} for c, v, b in out]
    # compute: Table 1's NSNet costs 73.2 of DENSE's 930.8 G over all frames (under 1/4); Tables
    # 2 and 4's 26.0 G at K=5 of T=16 is 0.40 of ResNet-50 on the 16 observed frames (65.6 G)
    for dense, share in ((f"DENSE (T={t})", 2), ("DENSE (all frames)", 4)):
        if dense in rows:
            bound = rows[dense]["gflops"] / share
            claims.append({"claim": f"NSNet GFLOPs <= 1/{share} of {dense}", "value": nsnet["gflops"], "bound": bound, "holds": bool(nsnet["gflops"] <= bound)})
    return claims


def _budget_curve(data: EvalData, s_f: np.ndarray, s_v: np.ndarray, cfg: EvalConfig, cost: ComputeCost) -> dict[str, list[dict[str, float]]]:
    """Fig. 3: mAP and GFLOPs of NSNet, UNIFORM and RANDOM for every K of the curve."""
    curve: dict[str, list[dict[str, float]]] = {"NSNet": [], "UNIFORM": [], "RANDOM": []}
    for k in cfg.curve_k:
        rng = np.random.default_rng([cfg.seed, k])
        samplers = {
            "NSNet": (fused_positions(s_f, s_v, k, cfg.fusion, cfg.alpha), cost.nsnet(min(k, data.t))),
            "UNIFORM": ([uniform_positions(data.t, k)] * len(data.videos), cost.recognizer(min(k, data.t))),
            "RANDOM": ([random_positions(data.t, k, rng) for _ in data.videos], cost.recognizer(min(k, data.t))),
        }
        for name, (positions, gflops) in samplers.items():
            result, _ = data.score(positions)
            curve[name].append({"k": k, "map": result.map, "top1": result.top1, "gflops": gflops})
    return curve


def _class_saliency(data: EvalData, variants: dict[str, np.ndarray], class_ap: np.ndarray) -> dict[str, Any]:
    """Fig. 5: per-class mean saliency over time of each variant, for the classes with the
    highest, median and lowest AP of NSNet's predictions (``class_ap``, [C]); and, over all
    classes, the mean Pearson correlation of each variant's class curve with the guiding
    score's. NSNet's curve is the score sum ``alpha s_f + (1 - alpha) s_v``: index fusion
    chooses a set, not a curve."""
    classes = data.manifest.classes
    means = {name: class_mean_saliency(s, data.labels, len(classes)) for name, s in variants.items()}
    present = [c for c in range(len(classes)) if not np.isnan(means["Guid."][c]).any()]
    ap = {c: 100.0 * float(class_ap[c]) for c in present}
    ranked = sorted(present, key=lambda c: -ap[c])
    chosen = list(dict.fromkeys([ranked[0], ranked[len(ranked) // 2], ranked[-1]])) if ranked else []
    panels = [{"class": classes[c], "ap": ap[c], "curves": {name: ema(m[c]).tolist() for name, m in means.items()}} for c in chosen]

    def correlation(name: str) -> float:
        return float(np.nanmean([np.corrcoef(means[name][c], means["Guid."][c])[0, 1] for c in present]))

    return {"panels": panels, "correlation_with_guid": {name: correlation(name) for name in variants if name != "Guid."}}


def run_evaluate(features: Path, prototypes: Path, run_dir: Path, data_root: Path, cfg: EvalConfig = EvalConfig(), device: str = "cpu", workers: int = 2, progress: bool = True, preset: dict[str, Any] | None = None, backend: str = "torch", export_dir: Path = DEFAULT_EXPORT_DIR, decode_timeout: float = DECODE_TIMEOUT_S, nsnet_from_cache: bool = False, split: str | None = None) -> dict[str, Any]:
    """Evaluate a trained sampler; returns the report (also written as ``results.json``).
    ``preset``: :meth:`pipeline.presets.Preset.quotes`, named in the report, whose paper
    figures are quoted beside ours. ``backend``: where the recognizer runs on decoded frames
    (NSNet's decoded row, the baselines over all frames); the samplers run in torch. A video
    whose decoder hangs ``decode_timeout`` seconds or dies on it fails (:mod:`pipeline.decode_watch`).
    ``nsnet_from_cache``: NSNet's row from the cached logits of its K frames, as the other rows
    of the T observed frames, instead of decoding those frames again for the recognizer.
    ``split``: the evaluation split, val or test (default: val where the manifest has val
    videos, else test)."""
    features, prototypes, run_dir = Path(features), Path(prototypes), Path(run_dir)
    backend = resolve_backend(backend, torch.device(device))
    inputs = load_sampler_inputs(features, prototypes)
    cfg.check_k(inputs.frame_indices.shape[1])
    _, split = inputs.evaluated(split)
    out = eval_dir_for(features, prototypes, run_dir, cfg, inputs.content_fingerprint, preset, backend, nsnet_from_cache, identity_split((v["split"] for v in inputs.videos), split))
    with cache_mod.sole_writer(out, lambda: evaluation_finished(out)) as computing:
        if computing:
            return {**_write(out, *_evaluate(inputs, features, prototypes, run_dir, data_root, cfg, device, workers, progress, preset, backend, export_dir, decode_timeout, nsnet_from_cache, split)), "computed": True}
    return {**checked_json(out / "results.json", made_again(out, "evaluate")), "output": str(out), "computed": False}  # where it lies now (a folder moved, a shared one's)


@dataclass
class SharePart:
    """What one share of an evaluation's decoding did (:func:`evaluate_share`): per store
    decoded, its path, the videos it computed now and those that failed (with the reasons)."""

    share: Share
    stores: dict[str, StoredRows]

    @property
    def failed(self) -> list[str]:
        """Why each video that failed in this share failed."""
        return [reason for stored in self.stores.values() for reason in stored.errors.values()]

    def summary(self) -> str:
        index, count = self.share
        lines = [f"share {index}/{count} of the evaluation's decoding:"]
        lines += [f"  {name}: {stored.computed} video(s) computed now, {len(stored.errors)} failed ({stored.path})" for name, stored in self.stores.items()]
        if not self.stores:
            lines.append("  nothing to decode (a synthetic cache, or NSNet's row from the cache without the baselines over all frames)")
        if self.failed:
            lines.append(f"  failed: {first_few(self.failed, 5, sep='; ')} (run again to retry them)")
        return "\n".join(lines)


def evaluate_share(features: Path, prototypes: Path, run_dir: Path, data_root: Path, share: Share, cfg: EvalConfig = EvalConfig(), device: str = "cpu", workers: int = 2, progress: bool = True, backend: str = "torch", export_dir: Path = DEFAULT_EXPORT_DIR, decode_timeout: float = DECODE_TIMEOUT_S, nsnet_from_cache: bool = False, split: str | None = None) -> SharePart:
    """``share`` (i, n) of the decoding :func:`run_evaluate` does — NSNet's decoded row and the
    baselines over all frames, their stores' shards s with s % n == i — so that torchrun ranks
    and ``--shard`` jobs divide it; run_evaluate then decodes only what the shares left. A
    video that fails is returned, not raised (a torchrun rank must reach the barrier)."""
    features, run_dir, root, dev = Path(features), Path(run_dir), Path(data_root), torch.device(device)
    backend = resolve_backend(backend, dev)
    data = EvalData(load_sampler_inputs(features, prototypes), features, split)
    cfg.check_k(data.t)
    stores: dict[str, StoredRows] = {}
    if data.synthetic:
        return SharePart(share, stores)
    if not nsnet_from_cache:
        _, _, s_f, s_v = _sampler_saliency(data, run_dir, dev)
        stores["NSNet's decoded row"] = _decoded_rows(data, root, data.frames_at(fused_positions(s_f, s_v, cfg.k, cfg.fusion, cfg.alpha)), dev, workers, progress, backend, export_dir, decode_timeout, share)
    if cfg.all_frames:
        stores["all frames"] = fill_all_frames(features, data.videos, root, cfg.all_frames_config(), dev, workers, progress, backend, export_dir, decode_timeout, share)
    return SharePart(share, stores)


def _sampler_saliency(data: EvalData, run_dir: Path, device: torch.device) -> tuple[NSNetSampler, TrainConfig, np.ndarray, np.ndarray]:
    """The trained sampler of ``run_dir``, its training config, and its s_f, s_v [V, T] on the
    evaluation videos."""
    model, objective, train_cfg = load_trained_sampler(run_dir, data.inputs.content_fingerprint, data.inputs.shape, device)
    return (model, train_cfg, *data.saliency(model, objective, device))


def _evaluate(inputs: SamplerInputs, features: Path, prototypes: Path, run_dir: Path, data_root: Path, cfg: EvalConfig, device: str, workers: int, progress: bool, preset: dict[str, Any] | None, backend: str, export_dir: Path, decode_timeout: float, nsnet_from_cache: bool, split: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[ShowcaseVideo]]:
    """The report of :func:`run_evaluate`, NSNet's predictions per video and Fig. 4's videos."""
    dev = torch.device(device)
    data = EvalData(inputs, features, split)
    k, t = min(cfg.k, data.t), data.t
    model, train_cfg, s_f, s_v = _sampler_saliency(data, run_dir, dev)
    plain_run = Path(run_train(features, prototypes, replace(train_cfg, **WITHOUT_NS), device=device, progress=progress).path)
    _, _, s_f0, s_v0 = _sampler_saliency(data, plain_run, dev)
    config = FeaturesConfig.from_dict(inputs.attrs["config"])
    cost = compute_cost(config.light, config.recognizer, model.cpu(), t, inputs.shape.dim, len(data.manifest.classes))

    nsnet_positions = fused_positions(s_f, s_v, k, cfg.fusion, cfg.alpha)
    plain_positions = fused_positions(s_f0, s_v0, k, cfg.fusion, cfg.alpha)
    uniform = [uniform_positions(t, k)] * len(data.videos)
    rng = np.random.default_rng([cfg.seed, k])
    cached = {
        f"UNIFORM (K={k})": (uniform, cost.recognizer(k), ""),
        f"RANDOM (K={k})": ([random_positions(t, k, rng) for _ in data.videos], cost.recognizer(k), f"seed {cfg.seed}"),
        f"DENSE (T={t})": ([dense_positions(t)] * len(data.videos), cost.recognizer(t), ""),
        f"TOP-K (K={k} of T={t})": ([top_confidence_positions(z, k) for z in data.logits], cost.recognizer(t), "recognizer on all T"),
        "Guiding score (oracle)": ([oracle_positions(g, k) for g in data.g], cost.recognizer(t), "uses the labels: upper bound"),
        "FSM alone": ([top_k(f, k) for f in s_f], cost.nsnet(k), ""),
        "VGM alone": ([top_k(v, k) for v in s_v], cost.nsnet(k), ""),
        "FSM alone, video labels (w/o NS)": ([top_k(f, k) for f in s_f0], cost.nsnet(k), ""),
        "VGM alone, w/o L_ns (w/o NS)": ([top_k(v, k) for v in s_v0], cost.nsnet(k), ""),
        "NSNet w/o NS": (plain_positions, cost.nsnet(k), ""),
    }
    rows: dict[str, dict[str, Any]] = {}
    class_ap: dict[str, np.ndarray] = {}  # of the samplers compared class by class (their scores are not held)
    for name, (positions, gflops, note) in cached.items():
        result = data.score(positions)[0]
        rows[name] = _row(name, result, gflops, float(len(positions[0])), "cache", note)
        if name in (f"UNIFORM (K={k})", f"DENSE (T={t})", f"TOP-K (K={k} of T={t})", "NSNet w/o NS"):
            class_ap[name] = result.class_ap

    root = Path(data_root)
    cached_result, cached_scores = data.score(nsnet_positions)
    skipped: list[str] = []
    if data.synthetic or nsnet_from_cache:
        real_scores, nsnet_result, path_check = cached_scores, cached_result, None
        rows[f"NSNet (K={k})"] = _row(f"NSNet (K={k})", cached_result, cost.nsnet(k), float(k), "cache", f"{cfg.fusion} fusion")
        why = "synthetic cache (no videos)" if data.synthetic else "asked for (--nsnet-from-cache)"
        skipped.append(f"{why}, skipped: NSNet's decoded row (the recognizer on the K frames decoded again): its logits come from the cache")
    else:
        real = _recognizer_logits(data, root, data.frames_at(nsnet_positions), dev, workers, progress, backend, export_dir, decode_timeout)
        real_scores = all_frame_scores(real)
        nsnet_result = recognition(real_scores, data.labels)
        rows[f"NSNet (K={k})"] = _row(f"NSNet (K={k})", nsnet_result, cost.nsnet(k), float(k), "decoded", f"{cfg.fusion} fusion")
        path_check = {
            "max_abs_score_difference": float(np.abs(real_scores - cached_scores).max()),
            "same_predictions": float(np.mean(real_scores.argmax(1) == cached_scores.argmax(1))),
            "map_cached": cached_result.map,
            "map_decoded": nsnet_result.map,
        }
    if cfg.all_frames and data.synthetic:
        skipped.append("synthetic cache (no videos), skipped: the baselines over all frames (Table 1's protocol): they decode every frame")
    elif cfg.all_frames:
        over_all = run_all_frames(features, data.videos, root, cfg.all_frames_config(), dev, workers, progress, backend, export_dir, decode_timeout)
        recognized = {name: recognition(over_all.scores[key], data.labels) for name, key in all_frame_methods(cfg.all_frames_budget).items()}
        rows.update(_all_frame_rows(over_all, recognized, cost, cfg.all_frames_budget))
        class_ap.update({name: result.class_ap for name, result in recognized.items()})

    nsnet = f"NSNet (K={k})"
    groups = [
        (f"Table 1's protocol: baselines over all frames, NSNet K={k} of T={t}", [*all_frame_methods(cfg.all_frames_budget), nsnet]),
        (f"K={k} of the T={t} observed frames", [f"UNIFORM (K={k})", f"RANDOM (K={k})", f"DENSE (T={t})", f"TOP-K (K={k} of T={t})", nsnet, "NSNet w/o NS", "FSM alone", "VGM alone", "FSM alone, video labels (w/o NS)", "VGM alone, w/o L_ns (w/o NS)", "Guiding score (oracle)"]),
    ]
    groups = [{"title": title, "methods": [name for name in names if name in rows]} for title, names in groups]
    groups = [g for g in groups if g["methods"] != [nsnet]]
    showcased = {f"UNIFORM (K={k})": uniform, "NSNet w/o NS": plain_positions, nsnet: nsnet_positions}
    showcase = _showcase(data, showcase_videos(data.g, plain_positions, nsnet_positions), showcased, None if data.synthetic or nsnet_from_cache else root)
    class_ap = {nsnet: nsnet_result.class_ap, **class_ap}
    saliency_fig = _class_saliency(data, {"Ours": fused_scores(s_f, s_v, "add", cfg.alpha), "Ours w/o NS": fused_scores(s_f0, s_v0, "add", cfg.alpha), "Guid.": data.g}, class_ap[nsnet])
    report = {
        "features": str(features),
        "prototypes": str(prototypes),
        "sampler_run": str(run_dir),
        "sampler_run_without_ns": str(plain_run),
        "config": asdict(cfg),
        "split": data.split,
        "videos": int(len(data.videos)),
        "left_out": data.left_out,
        "num_frames": t,
        "classes": len(data.manifest.classes),
        "models": {"light": asdict(config.light), "recognizer": asdict(config.recognizer)},
        "backend": backend,
        "environment": environment(device),
        "gflops": cost.to_dict(),
        "preset": preset,
        "methods": [_quoted(rows[name], preset) for name in dict.fromkeys(n for g in groups for n in g["methods"])],
        "groups": groups,
        "claims": _claims(rows, k, t, cfg.all_frames_budget),
        "real_vs_cached": path_check,
        "skipped": skipped,
        "budget_curve": _budget_curve(data, s_f, s_v, cfg, cost),
        "class_saliency": saliency_fig,
        "per_class_ap": _per_class(data, class_ap, f"UNIFORM (K={k})"),
        "selected_frames": {
            "rule": f"the {len(showcase)} evaluation videos where NSNet's chosen frames gain most in mean guiding score over NSNet w/o NS's; a frame is salient where g > {SALIENT_G}",
            "guidance": {name: chosen_guidance(data.g, positions) for name, positions in showcased.items()},
            "videos": [video.to_dict() for video in showcase],
        },
    }
    predictions = [
        {"video_id": data.manifest.videos[v].video_id, "video": data.manifest.videos[v].path, "frames": ids[p].tolist(), "positions": p.tolist(), "top5": [{"class": c, "score": v} for c, v in top_classes(s, data.manifest.classes)]}
        for v, ids, p, s in zip(data.videos, data.frame_indices, nsnet_positions, real_scores)
    ]
    return report, predictions, showcase


def _per_class(data: EvalData, class_ap: dict[str, np.ndarray], baseline: str) -> dict[str, Any]:
    """Each class's AP (%) under NSNet (the first of ``class_ap``) and the samplers it is
    compared with, its positive videos, and in how many classes NSNet is above ``baseline``
    (classes without a positive video: AP None)."""
    nsnet, ours = next(iter(class_ap.items()))
    return {
        "classes": list(data.manifest.classes),
        "positives": multi_hot(data.labels, len(data.manifest.classes)).sum(axis=0).tolist(),
        "ap": {name: [None if np.isnan(v) else 100.0 * float(v) for v in ap] for name, ap in class_ap.items()},
        "baseline": baseline,
        "nsnet_above_baseline": int(np.sum(ours > class_ap[baseline])),
        "classes_with_positives": int(np.sum(~np.isnan(ours))),
        "nsnet": nsnet,
    }


def _showcase(data: EvalData, chosen: np.ndarray, samplers: dict[str, list[np.ndarray]], root: Path | None) -> list[ShowcaseVideo]:
    """Fig. 4's rows for the evaluation videos ``chosen`` (:mod:`pipeline.showcase`), their
    chosen frames decoded under ``root`` for the thumbnails (none without a root)."""
    return [
        showcase_video(ShowcaseInput(data.manifest.videos[data.videos[i]], data.frame_indices[i], data.g[i], data.logits[i], {name: positions[i] for name, positions in samplers.items()}), data.manifest.classes, root)
        for i in chosen
    ]


def _write(out: Path, report: dict[str, Any], predictions: list[dict[str, Any]], showcase: list[ShowcaseVideo]) -> dict[str, Any]:
    """results.json, NSNet's predictions per video (predictions.jsonl), report.md and the plots
    (Fig. 4 from ``showcase``), all or nothing (a temporary folder, then a rename)."""
    with cache_mod.written_whole(out) as tmp:
        (tmp / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
        (tmp / "per_class_ap.csv").write_text(per_class_csv(report["per_class_ap"]))
        report = {**report, "output": str(out)}
        figures = []
        if matplotlib_available():  # a figure that cannot be drawn is a warning: the report is kept
            drawn = {
                "budget_curve.png": plot_budget_curve(report["budget_curve"], tmp / "budget_curve.png", f"GFLOPs-mAP, T={report['num_frames']} (Fig. 3)"),
                "class_saliency.png": bool(report["class_saliency"]["panels"]) and plot_class_saliency(report["class_saliency"]["panels"], tmp / "class_saliency.png"),
                "selected_frames.png": plot_showcase(showcase, tmp / "selected_frames.png", f"Chosen frames, K={report['config']['k']} of T={report['num_frames']} (Fig. 4): aqua salient, red non-salient (g > {SALIENT_G})"),
            }
            figures = [name for name, done in drawn.items() if done]
        report["figures"] = figures
        (tmp / "report.md").write_text(markdown_report(report))
        (tmp / "results.json").write_text(json.dumps(report, indent=1))
    return report
