"""Stage ``nsnet ablations``: the paper's Tables 6a-6d, B.1 and B.2 from config switches.

Every variant is an ordinary ``nsnet train`` run (idempotent, so a second call trains nothing)
scored like ``nsnet evaluate`` scores its samplers, on the cached recognizer logits of the
chosen frames (the fast path, identical to decoding them: see ``nsnet evaluate``). mAP in %.

* 6a: NS for each module. Rows baseline (FSM: video labels; VGM: no ``L_ns``, C classes),
  "+ non-salient class" (C+1 classes, no NS supervision), "+ NS" (the paper); columns: the
  VGM's and the FSM's saliency alone.
* 6b: K and 2K sampled frames, VGM alone, FSM alone and fused.
* 6c: the FEM's message passing (1D conv, LSTM, MLP, transformer), fused.
* 6d: the FSM objective (baseline, regression, ranking, baseline+, NS), FSM alone.
* B.1: prototype-based vs recognizer-response guiding score, FSM alone.
* B.2: the six fusion rules of A.3 on the paper's model.

Writes ``<features cache>.ablations-<fingerprint>/`` (``ablations.json``, ``ablations.md``), keyed
by the cache, the prototypes, the base train config and the evaluation config; the same again
returns the stored tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import cache as cache_mod
from pipeline.cache import FeatureCache
from pipeline.checked_files import checked_json, made_again
from pipeline.config import EvalConfig, TrainConfig
from pipeline.datasets.manifest import identity_split
from pipeline.environment import environment
from pipeline.evaluation import fused_positions
from pipeline.fusion import FUSION_RULES, top_k
from pipeline.prototypes import GuidingScorer
from pipeline.shared_caches import output_beside
from pipeline.wording import videos_said
from stages.evaluate import EvalData
from stages.evaluate_report import text_table
from stages.prototypes import run_prototypes
from stages.train import OBJECTIVES_VERSION, load_sampler_inputs, load_trained_sampler, run_train


class Variants:
    """Trains (or finds) sampler variants and scores their frame choices."""

    def __init__(self, features: Path, prototypes: Path, base: TrainConfig, cfg: EvalConfig, device: str, progress: bool):
        self.features, self.prototypes, self.base, self.cfg = Path(features), Path(prototypes), base, cfg
        self.device, self.progress = device, progress
        self.inputs = load_sampler_inputs(self.features, self.prototypes)
        self.data = EvalData(self.inputs, self.features)
        cfg.check_k(self.data.t)

    def saliency(self, prototypes: Path | None = None, **changes: Any) -> tuple[np.ndarray, np.ndarray]:
        """(s_f, s_v) on the evaluation videos of the base config with ``changes``."""
        run = run_train(self.features, prototypes or self.prototypes, replace(self.base, **changes), device=self.device, progress=self.progress)
        model, objective, _ = load_trained_sampler(Path(run.path), self.inputs.content_fingerprint, self.inputs.shape, torch.device(self.device))
        return self.data.saliency(model, objective, torch.device(self.device))

    def alone(self, scores: np.ndarray, k: int | None = None) -> float:
        return self.data.score([top_k(s, k or self.cfg.k) for s in scores])[0].map

    def fused(self, s_f: np.ndarray, s_v: np.ndarray, k: int | None = None, rule: str | None = None) -> float:
        return self.data.score(fused_positions(s_f, s_v, k or self.cfg.k, rule or self.cfg.fusion, self.cfg.alpha))[0].map


def ablations_dir_for(features: Path, prototypes: Path, base: TrainConfig, cfg: EvalConfig, features_fp: str, split: str | None = None) -> Path:
    """Where the tables of these inputs and configs go (the variant runs are ``nsnet train``'s);
    the evaluation split is named only where the cache has two, as evaluate names it."""
    identity = {"features": features_fp, "prototypes": Path(prototypes).name, "train": asdict(base), "eval": asdict(cfg), "objectives": OBJECTIVES_VERSION}
    fp = cache_mod.fingerprint(identity if split is None else {**identity, "split": split})
    return output_beside(features, f"{features.name}.ablations-{fp[:16]}", ablations_finished)


def ablations_finished(out: Path) -> bool:
    """Whether the ablation tables ``out`` are there whole (written whole, ``ablations.json`` in it)."""
    return (out / "ablations.json").is_file()


def run_ablations(features: Path, prototypes: Path, base: TrainConfig, cfg: EvalConfig = EvalConfig(), device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """The tables (written as ``ablations.json`` and ``.md``), computed unless they are there
    for these inputs and configs; one process computes them at a time (:func:`pipeline.cache.sole_writer`)."""
    features = Path(features)
    with FeatureCache(features) as cache:
        out = ablations_dir_for(features, Path(prototypes), base, cfg, cache.content_fingerprint, identity_split(v["split"] for v in cache.attrs["manifest"]["videos"]))
    with cache_mod.sole_writer(out, lambda: ablations_finished(out)) as computing:
        if computing:
            return {**_write(out, {**_tables(features, prototypes, base, cfg, device, progress), "environment": environment(device), "output": str(out)}), "computed": True}
    return {**checked_json(out / "ablations.json", made_again(out, "ablations")), "output": str(out), "computed": False}  # where it lies now (a folder moved, a shared one's)


def _write(out: Path, report: dict[str, Any]) -> dict[str, Any]:
    """ablations.json and ablations.md, both or neither."""
    with cache_mod.written_whole(out) as tmp:
        (tmp / "ablations.json").write_text(json.dumps(report, indent=1))
        (tmp / "ablations.md").write_text(render_ablations(report, markdown=True))
    return report


def _tables(features: Path, prototypes: Path, base: TrainConfig, cfg: EvalConfig, device: str, progress: bool) -> dict[str, Any]:
    """Every table, its variants trained where they are not yet."""
    v = Variants(features, prototypes, base, cfg, device, progress)
    paper = v.saliency(fsm_target="ns", vgm_target="ns")
    tables: dict[str, dict[str, Any]] = {}

    rows = []
    for name, target in (("baseline", "video"), ("+ non-salient class", "video_ns_class"), ("+ NS", "ns")):
        s_f, s_v = v.saliency(fsm_target=target, vgm_target=target)
        rows.append([name, v.alone(s_v), v.alone(s_f)])
    tables["6a"] = {"title": "Table 6a: the NS mechanism in each module", "header": ["method", "VGM", "FSM"], "rows": rows}

    tables["6b"] = {
        "title": "Table 6b: number of sampled frames",
        "header": ["#F", "VGM", "FSM", "NSNet"],
        "rows": [[str(k), v.alone(paper[1], k), v.alone(paper[0], k), v.fused(*paper, k=k)] for k in (cfg.k, 2 * cfg.k)],
    }
    tables["6c"] = {
        "title": "Table 6c: message passing in the FEM (fused)",
        "header": ["network", "mAP"],
        "rows": [[name, v.fused(*v.saliency(fem=fem))] for name, fem in (("1D Conv", "conv1d"), ("LSTM", "lstm"), ("MLP", "mlp"), ("Transformer", "transformer"))],
    }
    tables["6d"] = {
        "title": "Table 6d: FSM objectives (FSM alone)",
        "header": ["FS objective", "mAP"],
        "rows": [[name, v.alone(v.saliency(fsm_target=target)[0])] for name, target in (("Baseline", "video"), ("Regression", "regression"), ("Ranking", "ranking"), ("Baseline+", "baseline_plus"), ("Ours", "ns"))],
    }
    params = GuidingScorer().get_params()
    response = Path(run_prototypes(v.features, GuidingScorer(**{**params, "guide": "response"}), progress=v.progress).path)
    prototype = Path(run_prototypes(v.features, GuidingScorer(**{**params, "guide": "prototype"}), progress=v.progress).path)
    tables["B.1"] = {
        "title": "Table B.1: guiding saliency score (FSM alone)",
        "header": ["guiding saliency score", "mAP"],
        "rows": [["Response-based", v.alone(v.saliency(prototypes=response)[0])], ["Prototype-based", v.alone(v.saliency(prototypes=prototype)[0])]],
    }
    tables["B.2"] = {"title": f"Table B.2: fusion strategies (alpha {cfg.alpha})", "header": ["fusion", "mAP"], "rows": [[rule, v.fused(*paper, rule=rule)] for rule in FUSION_RULES]}
    report = {
        "features": str(features),
        "prototypes": str(prototypes),
        "base_config": asdict(base),
        "eval_config": asdict(cfg),
        "videos": int(len(v.data.videos)),
        "left_out": v.data.left_out,
        "split": v.data.split,
        "tables": tables,
    }
    return report


def _cells(row: list[Any]) -> tuple[str, ...]:
    return tuple(f"{c:.1f}" if isinstance(c, float) else str(c) for c in row)


def render_ablations(report: dict[str, Any], markdown: bool = False) -> str:
    videos = videos_said(report)
    lines = [f"# NSNet ablations ({videos}, K={report['eval_config']['k']}, mAP %)" if markdown else f"ablations on {videos}, K={report['eval_config']['k']}, mAP %"]
    for table in report["tables"].values():
        rows = [_cells(r) for r in table["rows"]]
        lines += ["", f"## {table['title']}" if markdown else table["title"], ""]
        if markdown:
            lines += ["| " + " | ".join(table["header"]) + " |", "|" + "---|" * len(table["header"]), *["| " + " | ".join(r) + " |" for r in rows]]
        else:
            lines += text_table(tuple(table["header"]), rows)
    return "\n".join(lines) + "\n"
