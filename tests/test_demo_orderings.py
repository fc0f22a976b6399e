"""Issue 6's orderings on a smaller demo, end to end: generated videos -> fine-tuned recognizer
and light model -> features -> prototypes -> sampler -> evaluate (about 2-3 minutes on 2 cores,
by host and by what shares them: 120 s alone and 124-127 s beside the rest of ``make test``'s
suite with torch on one thread, as ``make test`` runs it (``TEST_THREADS``); on torch's two
threads 135 s alone, 141-177 s beside the suite, 181 s in the one-process suite; 2026-12-05, a
2-core Intel Xeon host; fine-tuning the recognizer took 50 of the 120 s, 69 of the 135).

The smaller demo keeps the generator's structure and defaults (untrimmed videos of 8-96 frames,
5-20% salient frames, shared non-salient scenes, distractors, difficulty 0.25); it has 6 classes,
24 train and 20 val videos per class, at 64 px. The backbones are timm's tiny test models
(recognizer ``test_resnet`` at 64 px, light ``test_efficientnet`` at 32 px, so the light model
costs about a quarter of a recognizer frame, as MobileNetV2 against ResNet at the paper's
settings). Fine-tuning validates on 2 frames a video: validation only reports, and the weights
are those of 16 frames bit for bit (checked), at 16 s less.

The generated videos are the same bytes on any machine; the models are not: fine-tuning
amplifies the CPU's rounding differences (and the thread count's: its sums split otherwise), and
the features, the sampler and every mAP after them change. Measured with generator seed 0 and
the recognizer fine-tuned 12 epochs (2026-12-05, a 2-core Intel Xeon host), natively / with ATen
and oneDNN held to SSE4.1 (``ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41``, another
CPU's kernels), on torch's two threads: NSNet 73.3 / 72.4 mAP, UNIFORM 48.2 / 46.9, TOP-K 69.4 /
71.4, FSM with NS 69.4 / 68.8 against video labels 47.0 / 44.8, the better module alone 71.8 /
69.5; 109 / 159 s; on one thread (``OMP_NUM_THREADS=1``, as ``make test`` runs): NSNet 71.1 /
72.9, UNIFORM 47.3 / 48.0, TOP-K 69.3 / 70.0, FSM with NS 68.3 / 68.9 against video labels 46.3
/ 46.8, the better module alone 68.7 / 71.8; 120 / 201 s. The other orderings hold with room (the
narrowest, NSNet >= TOP-K - 1, by 4.9 / 2.0 points on two threads, 2.9 / 3.9 on one) and are
asserted as stated. With 15 epochs (the sessions before, an AMD EPYC host): NSNet 85.0 / 84.1,
the narrowest margin 5.1 / 3.7, and about 30 s more. Fused >= max(FSM, VGM) is within this
demo's noise: over sampler seeds 0-4 (15 epochs) its margin was -0.25, +1.54, +0.79, +0.39, +1.96
/ -0.66, -0.14, +1.10, -0.21, +1.67 points (means +0.89 / +0.35), so it is asserted within
``FUSION_NOISE`` (here +1.6 / +2.9 on two threads, +2.4 / +1.1 on one).
"""


from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import EvalConfig, FeaturesConfig, ModelSpec, RunOptions
from pipeline.datasets import get_dataset
from pipeline.demo_data import DemoSpec, generate_demo
from pipeline.prototypes import GuidingScorer
from stages.evaluate import run_evaluate
from stages.features import run_features
from stages.finetune import run_finetune
from stages.prototypes import run_prototypes
from stages.train import run_train

SMALL_DEMO = DemoSpec(num_classes=6, train_per_class=24, val_per_class=20, size=64, seed=0)
SMALL_MODELS = FeaturesConfig(
    num_frames=16,
    light=ModelSpec("test_efficientnet", weights="none", resolution=32),
    recognizer=ModelSpec("test_resnet", weights="none", resolution=64),
)
RECOGNIZER_EPOCHS, LIGHT_EPOCHS = 12, 3
VAL_FRAMES = 2  # fine-tuning's validation only reports (module docstring)
FUSION_NOISE = 1.5  # mAP points; the measured margins are in the module docstring


@pytest.mark.slow
def test_small_demo_shows_the_papers_orderings(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_demo(root, SMALL_DEMO, workers=2, progress=False)
    demo = get_dataset("demo")
    options = RunOptions(cache_dir=tmp_path / "cache", device="cpu", workers=2, progress=False)
    weights = {}
    for role, spec, epochs in (("recognizer", SMALL_MODELS.recognizer, RECOGNIZER_EPOCHS), ("light", SMALL_MODELS.light, LIGHT_EPOCHS)):
        weights[role] = tmp_path / f"{role}.pth"
        run_finetune("demo", root, role, spec, replace(demo.finetune[role], epochs=epochs), VAL_FRAMES, options, weights[role])
    config = SMALL_MODELS.with_overrides(recognizer_weights=str(weights["recognizer"]), light_weights=str(weights["light"]))
    features = Path(run_features("demo", root, config, options).cache)
    prototypes = Path(run_prototypes(features, GuidingScorer()).path)
    run = Path(run_train(features, prototypes, demo.train, progress=False).path)
    report = run_evaluate(features, prototypes, run, root, EvalConfig(), workers=2, progress=False)

    claims = {c["claim"]: c for c in report["claims"]}
    for claim in (
        "NSNet mAP >= UNIFORM mAP + 5",
        "NSNet mAP >= TOP-K mAP - 1",
        "FSM with NS labels mAP >= FSM with video labels + 3",
        "NSNet GFLOPs <= 1/4 of DENSE (all frames)",
    ):
        assert claims[claim]["holds"], f"{claim}: {claims[claim]['value']:.2f} vs {claims[claim]['bound']:.2f}"
    fusion = claims["NSNet (fused) mAP >= max(FSM alone, VGM alone)"]
    assert fusion["value"] >= fusion["bound"] - FUSION_NOISE, f"fused {fusion['value']:.2f} vs the better module alone {fusion['bound']:.2f}"
    # The demo's light model and FEM cost more against its small recognizer than the paper's
    # MobileNetV2 against ResNet-50: NSNet is above half of DENSE over the 16 observed frames.
    assert not claims["NSNet GFLOPs <= 1/2 of DENSE (T=16)"]["holds"]
    methods = {m["method"]: m for m in report["methods"]}
    assert methods["NSNet (K=5)"]["path"] == "decoded"  # the recognizer ran on the decoded chosen frames
    assert report["real_vs_cached"]["same_predictions"] == 1.0
