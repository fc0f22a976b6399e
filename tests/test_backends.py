"""The backbones and the sampler heads through ONNX Runtime: the same answers as torch
(exports, feature caches, predict), exports made once and keyed by what they depend on, and the
backend's choice."""

import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch

from conftest import flip_byte, visible_names
from pipeline.backends import OnnxHeads, OnnxRunner, TorchHeads, TorchRunner, compared_backends, export_heads, export_key, export_onnx, make_heads, make_runner, resolve_backend, run_count
from pipeline.cache import FeatureCache, file_lock, output_lock_path
from pipeline.config import EvalConfig, TrainConfig
from pipeline.models import FrameEncoder
from pipeline.sampler import FEM_KINDS, NSNetSampler, SamplerConfig
from pipeline.sampler_training import FSM_TARGETS, frame_objective
from stages.features import run_features
from stages.predict import run_predict
from stages.train import run_train

CPU = torch.device("cpu")


def _encoder(name: str, classes: int, seed: int = 0) -> FrameEncoder:
    torch.manual_seed(seed)
    return FrameEncoder(timm.create_model(name, pretrained=False, num_classes=classes).eval())


@pytest.mark.parametrize(("name", "classes"), [("test_efficientnet", 0), ("test_resnet", 5)])
def test_onnx_runner_equals_torch_at_any_batch_size(name, classes, onnx_exports):
    encoder = _encoder(name, classes)
    ort = make_runner(encoder, (3, 32, 32), CPU, "onnxruntime", onnx_exports)
    ref = TorchRunner(_encoder(name, classes), CPU)
    assert isinstance(ort, OnnxRunner) and ort.backend == "onnxruntime"
    for batch in (1, 3, 17):  # the export traced a batch of 2: the batch dimension is dynamic
        frames = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        (f_ort, z_ort), (f_ref, z_ref) = ort(frames), ref(frames)
        assert f_ort.shape == f_ref.shape == (batch, encoder.model.num_features)
        np.testing.assert_allclose(f_ort.numpy(), f_ref.numpy(), rtol=1e-4, atol=1e-5)
        if classes:
            assert z_ort.shape == (batch, classes)
            np.testing.assert_allclose(z_ort.numpy(), z_ref.numpy(), rtol=1e-4, atol=1e-5)
        else:
            assert z_ort is None and z_ref is None


def _record_runs(monkeypatch, owner, name: str, record) -> None:
    """``owner.<name>``, an ONNX Runtime session, replaced by one that calls ``record(feed)``
    before each of its runs."""
    session = getattr(owner, name)
    monkeypatch.setattr(owner, name, type("Spy", (), {"run": lambda _, names, feed: record(feed) or session.run(names, feed)})())


def test_onnx_runner_splits_large_batches_into_runs_with_the_same_outputs(onnx_exports, monkeypatch):
    runner = make_runner(_encoder("test_resnet", 5), (3, 32, 32), CPU, "onnxruntime", onnx_exports)
    frames = torch.randn(11, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    whole = runner(frames)
    monkeypatch.setattr("pipeline.backends.ONNX_PIXELS_PER_RUN", 4 * 32 * 32)  # 11 frames at about 4 a run: 6 + 5
    calls = []
    _record_runs(monkeypatch, runner, "session", lambda feed: calls.append(len(feed["frames"])))
    parts = runner(frames)
    assert calls == [6, 5]
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)


def test_runs_hold_at_least_their_size_the_rest_spread_over_them():
    assert [run_count(n, 2) for n in (1, 2, 3, 5, 16, 17)] == [1, 1, 1, 2, 8, 8]  # 5: 3 + 2, 17: 3 + 2 x 7
    assert [len(part) for part in np.array_split(np.arange(5), run_count(5, 2))] == [3, 2]


def test_exports_are_made_once_and_keyed_by_weights_and_input_size(tmp_path):
    first = export_onnx(_encoder("test_resnet", 5), (3, 32, 32), tmp_path)
    stamp = first.stat().st_mtime_ns
    assert export_onnx(_encoder("test_resnet", 5), (3, 32, 32), tmp_path) == first and first.stat().st_mtime_ns == stamp
    other_weights = export_onnx(_encoder("test_resnet", 5, seed=1), (3, 32, 32), tmp_path)
    other_size = export_onnx(_encoder("test_resnet", 5), (3, 40, 40), tmp_path)
    other_head = export_onnx(_encoder("test_resnet", 4), (3, 32, 32), tmp_path)
    assert len({first, other_weights, other_size, other_head}) == 4
    assert first.name.startswith("test_resnet-") and visible_names(tmp_path) == sorted(p.name for p in (first, other_weights, other_size, other_head))


def test_a_damaged_export_is_made_again_and_one_the_runtime_refuses_is_a_clear_error(tmp_path):
    """An export is checked against the digest written at its export: one byte changed ran as
    other weights (ONNX files carry no checksum), now it is exported again, with a warning, as
    is a file cut short; an export made before the digests is made again once, without a word.
    One whose digest matches and that ONNX Runtime still refuses is an error naming it."""
    import hashlib

    encoder = _encoder("test_resnet", 5)
    frames = torch.rand(3, 3, 32, 32)
    path = export_onnx(encoder, (3, 32, 32), tmp_path)
    expected = make_runner(encoder, (3, 32, 32), CPU, "onnxruntime", tmp_path)(frames)[1]
    whole = path.read_bytes()
    flip_byte(path, len(whole) // 2, 0x01)  # in the weights
    with pytest.warns(UserWarning, match=rf"{path.name}: damaged \(its bytes do not match the digest written at its export: a copy cut short, or a disk error\); exported again"):
        runner = make_runner(encoder, (3, 32, 32), CPU, "onnxruntime", tmp_path)
    torch.testing.assert_close(runner(frames)[1], expected)
    assert path.read_bytes() == whole
    path.write_bytes(whole[:100])  # a file cut short
    with pytest.warns(UserWarning, match="damaged"):
        make_runner(encoder, (3, 32, 32), CPU, "onnxruntime", tmp_path)
    (tmp_path / f".{path.name}.sha256").unlink()  # an export made before the digests
    stamp = path.stat().st_mtime_ns
    make_runner(encoder, (3, 32, 32), CPU, "onnxruntime", tmp_path)
    assert path.stat().st_mtime_ns != stamp and (tmp_path / f".{path.name}.sha256").read_text() == hashlib.sha256(path.read_bytes()).hexdigest() + "\n"
    (tmp_path / f".{path.name}.sha256").write_bytes(b"\xff" * 64)  # the digest file damaged (a UnicodeDecodeError before 2026-12-07)
    with pytest.warns(UserWarning, match="damaged"):
        make_runner(encoder, (3, 32, 32), CPU, "onnxruntime", tmp_path)

    path.write_bytes(b"not an ONNX model")
    (tmp_path / f".{path.name}.sha256").write_text(hashlib.sha256(b"not an ONNX model").hexdigest())
    with pytest.raises(ValueError, match=rf"{path.name}: not a loadable ONNX model .*delete it and it is exported again"):
        make_runner(encoder, (3, 32, 32), CPU, "onnxruntime", tmp_path)


def test_a_failed_export_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    encoder = _encoder("test_resnet", 5)
    path = export_onnx(encoder, (3, 32, 32), tmp_path)

    def unsupported(*args, **kwargs):
        raise RuntimeError("no ONNX conversion for aten::made_up_op\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(ValueError, match=r"test_resnet: could not be exported to ONNX \(no ONNX conversion for aten::made_up_op\); run it with --backend torch"):
        export_onnx(encoder, (3, 40, 40), tmp_path)
    assert visible_names(tmp_path) == [path.name] and sorted(p.name for p in tmp_path.glob(".*.sha256")) == [f".{path.name}.sha256"]  # nothing left of the failed export


def test_an_export_is_made_by_one_process_and_what_a_killed_one_left_goes(tmp_path, monkeypatch):
    """One process exports at a time, holding the export's lock: one that finds it held waits,
    then takes the file the holder made and exports nothing (torchrun ranks starting together).
    The part-written copy a killed export left goes with the next export."""
    encoder = _encoder("test_resnet", 5)
    made = export_onnx(encoder, (3, 32, 32), tmp_path / "made")
    path = tmp_path / "onnx" / made.name
    held, exported = threading.Event(), []

    def another_rank() -> None:
        with file_lock(output_lock_path(path)):
            held.set()
            time.sleep(0.5)
            shutil.copyfile(made, path)
            shutil.copyfile(made.with_name(f".{made.name}.sha256"), path.with_name(f".{path.name}.sha256"))

    rank = threading.Thread(target=another_rank)
    rank.start()
    assert held.wait(timeout=60)
    with monkeypatch.context() as patched:
        patched.setattr(torch.onnx, "export", lambda *args, **kwargs: exported.append(args))
        assert export_onnx(encoder, (3, 32, 32), tmp_path / "onnx") == path and exported == []
    rank.join()

    other = tmp_path / "onnx" / f"test_resnet-{export_key(encoder, (3, 40, 40))[:20]}.onnx"
    left = other.with_name(other.name + ".4321.tmp")
    left.write_bytes(b"half an export")
    assert export_onnx(encoder, (3, 40, 40), tmp_path / "onnx") == other
    assert visible_names(tmp_path / "onnx") == sorted([path.name, other.name])


def _sampler(fem: str, seed: int = 0) -> NSNetSampler:
    torch.manual_seed(seed)
    return NSNetSampler(16, 6, 4, SamplerConfig(fem=fem, heads=2)).eval()


@pytest.mark.parametrize("fem", FEM_KINDS)
def test_onnx_heads_equal_torch_for_every_fem(fem, onnx_exports):
    heads = make_heads(_sampler(fem), "ns", 6, 16, CPU, "onnxruntime", onnx_exports)
    ref = make_heads(_sampler(fem), "ns", 6, 16, CPU, "torch", onnx_exports)
    assert isinstance(heads, OnnxHeads) and isinstance(ref, TorchHeads)
    for batch in (1, 5, 33):  # dynamic batch
        x = torch.randn(batch, 6, 16, generator=torch.Generator().manual_seed(batch))
        (f, v), (f_ref, v_ref) = heads(x), ref(x)
        assert f.shape == v.shape == (batch, 6)
        np.testing.assert_allclose(f, f_ref, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(v, v_ref, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(v.sum(axis=1), 1.0, rtol=1e-5)


def test_a_refused_weights_first_rewrite_is_not_blamed_on_the_export(onnx_exports, monkeypatch):
    sampler = _sampler("transformer")
    make_heads(sampler, "ns", 6, 16, CPU, "onnxruntime", onnx_exports)  # the export, loadable
    broken = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("NoSuchOp", ["features"], ["s_f"])], "g", [], []))
    monkeypatch.setattr("pipeline.onnx_products.weights_first", lambda model: broken)
    with pytest.raises(ValueError, match=r"nsnet-heads-\w+\.onnx: ONNX Runtime refused the rewrite of it made at load \(.+\); run with --backend torch"):
        make_heads(sampler, "ns", 6, 16, CPU, "onnxruntime", onnx_exports)


def test_onnx_heads_run_few_rows_with_the_weights_first(onnx_exports, monkeypatch):
    heads = make_heads(_sampler("transformer"), "ns", 6, 16, CPU, "onnxruntime", onnx_exports)
    calls = []
    for name in ("session", "few_rows_session"):
        _record_runs(monkeypatch, heads, name, lambda feed, name=name: calls.append(name))
    for batch in (1, 5, 6, 33):  # 6 frames a video: 6 and 30 rows up to WEIGHTS_FIRST_MAX_ROWS = 32, 36 and 198 above
        heads(torch.randn(batch, 6, 16))
    assert calls == ["few_rows_session", "few_rows_session", "session", "session"]


def test_transformer_fem_attention_is_exported_as_one_operator_a_layer(onnx_exports):
    sampler = _sampler("transformer")
    graph = onnx.load(export_heads(sampler, "ns", 6, 16, onnx_exports)).graph
    assert [node.op_type for node in graph.node].count("Attention") == len(sampler.fem.body.layers) == 2


@pytest.mark.parametrize("fsm_target", FSM_TARGETS)
def test_onnx_heads_carry_the_objectives_saliency(fsm_target, onnx_exports):
    x = torch.randn(3, 6, 16, generator=torch.Generator().manual_seed(0))
    s_f, _ = make_heads(_sampler("transformer"), fsm_target, 6, 16, CPU, "onnxruntime", onnx_exports)(x)
    with torch.no_grad():
        expected = frame_objective(fsm_target).saliency(_sampler("transformer")(x).frame_logits).numpy()
    np.testing.assert_allclose(s_f, expected, rtol=1e-5, atol=1e-7)


def test_heads_exports_are_keyed_by_weights_objective_and_shape(tmp_path):
    first = export_heads(_sampler("transformer"), "ns", 6, 16, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert export_heads(_sampler("transformer"), "ns", 6, 16, tmp_path) == first and first.stat().st_mtime_ns == stamp
    others = {export_heads(_sampler("transformer", seed=1), "ns", 6, 16, tmp_path), export_heads(_sampler("transformer"), "regression", 6, 16, tmp_path), export_heads(_sampler("mlp"), "ns", 6, 16, tmp_path)}
    assert first not in others and len(others) == 3 and first.name.startswith("nsnet-heads-")


def test_backend_choice():
    cuda = torch.device("cuda:0")
    assert resolve_backend("auto", CPU) == "onnxruntime" and resolve_backend("auto", cuda) == "torch"
    assert resolve_backend("torch", CPU) == "torch"
    assert compared_backends(CPU) == ("torch", "onnxruntime") and compared_backends(cuda) == ("torch",)
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_backend("onnxruntime", cuda)
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", CPU)


def test_feature_cache_through_onnxruntime_equals_torch_within_float16(tiny_videos, tiny_config, run_options):
    caches = {}
    for backend in ("torch", "onnxruntime"):
        summary = run_features("demo", tiny_videos, tiny_config, replace(run_options, backend=backend))
        assert summary.complete and summary.failed == 0
        caches[backend] = FeatureCache(summary.cache)
    torch_cache, ort_cache = caches["torch"], caches["onnxruntime"]
    # the fingerprint says which backend wrote the cache; torch's identity is as before there was a choice
    assert torch_cache.fingerprint != ort_cache.fingerprint
    assert ort_cache.attrs["identity"]["backend"] == "onnxruntime" and "backend" not in torch_cache.attrs["identity"]
    for name in ("light_features", "rec_features"):
        a, b = (np.asarray(c[name][:], dtype=np.float32) for c in (torch_cache, ort_cache))
        # float16 storage: at most one rounding step apart (2**-10 relative), mostly identical
        np.testing.assert_allclose(b, a, rtol=2**-10, atol=1e-6)
        assert np.mean(a == b) > 0.9
    np.testing.assert_allclose(ort_cache["rec_logits"][:], torch_cache["rec_logits"][:], rtol=1e-4, atol=1e-5)
    for name in ("frame_indices", "num_frames", "status"):
        np.testing.assert_array_equal(ort_cache[name][:], torch_cache[name][:])


def test_predict_through_onnxruntime_chooses_the_frames_torch_chooses(tiny_pipeline, tmp_path, onnx_exports):
    features, prototypes, truth = tiny_pipeline
    run = Path(run_train(features, prototypes, TrainConfig(epochs=2, batch_size=4, lr=0.001, milestones=(1,), seed=1), progress=False).path)
    with FeatureCache(features) as cache:
        videos = [truth.parent / v["path"] for v in cache.attrs["manifest"]["videos"] if v["split"] != "train"]
    cfg = EvalConfig(k=2, all_frames=False)
    results = {
        backend: run_predict(videos, run, tmp_path / backend, cfg, workers=0, progress=False, backend=backend, export_dir=onnx_exports)
        for backend in ("torch", "onnxruntime")
    }
    assert "backbones on onnxruntime" in results["onnxruntime"].table()
    for p_torch, p_ort in zip(results["torch"].shown, results["onnxruntime"].shown):
        assert p_torch.ok and p_ort.ok and p_torch.path == p_ort.path
        np.testing.assert_array_equal(p_ort.positions, p_torch.positions)
        assert p_ort.scores.argmax() == p_torch.scores.argmax()
        np.testing.assert_allclose(p_ort.scores, p_torch.scores, atol=1e-4)
        np.testing.assert_allclose(p_ort.s_f, p_torch.s_f, atol=1e-4)
    lines = {b: [json.loads(line) for line in r.jsonl.read_text().splitlines()] for b, r in results.items()}
    assert [e["frames"] for e in lines["torch"]] == [e["frames"] for e in lines["onnxruntime"]]
