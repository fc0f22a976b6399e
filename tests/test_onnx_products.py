"""The weights-first rewrite of products by a constant weight: the same outputs as the graph as
exported, every rewritable product turned round, and the others left as they were."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline.onnx_products import weights_first

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 5)).astype(np.float32)  # MatMul weight [K, N]
W2 = RNG.standard_normal((3, 5)).astype(np.float32)  # Gemm weight [N, K] with transB
C2 = RNG.standard_normal(3).astype(np.float32)


def _model(nodes, inputs, output, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], initializers)
    opsets = [helper.make_opsetid("", 23)]
    # the IR version opset 23 needs, not the onnx package's newest: ONNX Runtime 1.30 reads IR 13 at most
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def _two_products() -> onnx.ModelProto:
    """x [batch, 3, 4] -> MatMul by W -> [batch * 3, 5] -> Gemm by W2 (transB) + C2 -> [batch * 3, 3]."""
    return _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("Reshape", ["y", "rows"], ["y2"]),
            helper.make_node("Gemm", ["y2", "w2", "c2"], ["z"], transB=1),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
        "z",
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(W2, "w2"), numpy_helper.from_array(C2, "c2"), numpy_helper.from_array(np.array([-1, 5], np.int64), "rows")],
    )


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_weights_first_gives_the_products_by_hand_with_the_weight_as_left_operand():
    model = weights_first(_two_products())
    ops = [node.op_type for node in model.graph.node]
    assert "Gemm" not in ops and ops.count("MatMul") == 2
    constants = {tensor.name for tensor in model.graph.initializer}
    assert all(node.input[0] in constants and node.input[1] not in constants for node in model.graph.node if node.op_type == "MatMul")
    assert {"w", "w2", "c2"}.isdisjoint(constants)  # the originals are gone, not kept beside their rewrites
    for batch in (1, 2, 7):  # the batch stays dynamic
        x = RNG.standard_normal((batch, 3, 4)).astype(np.float32)
        expected = (x @ W).reshape(-1, 5) @ W2.T + C2
        got = _run(model, x)
        assert got.shape == (batch * 3, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got, _run(_two_products(), x), rtol=1e-5, atol=1e-6)


def test_a_small_case_by_hand():
    """x [1, 2, 2] @ w [[1, 2], [3, 4]]: rows (1, 1) and (0, 2) give (4, 6) and (6, 8)."""
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 2])],
        "y",
        [numpy_helper.from_array(np.array([[1, 2], [3, 4]], np.float32), "w")],
    )
    got = _run(weights_first(model), np.array([[[1, 1], [0, 2]]], np.float32))
    np.testing.assert_array_equal(got, [[[4, 6], [6, 8]]])


@pytest.mark.parametrize(
    ("case", "node", "x_dims"),
    [
        ("a Gemm with alpha", helper.make_node("Gemm", ["x", "w"], ["y"], alpha=0.5), [6, 4]),
        ("a Gemm with transA", helper.make_node("Gemm", ["x", "w"], ["y"], transA=1), [4, 6]),
        ("a product by a computed weight", helper.make_node("MatMul", ["x", "x_weight"], ["y"]), [6, 4]),
        ("an input of two unknown dimensions", helper.make_node("MatMul", ["x", "w"], ["y"]), ["a", "b", 4]),
    ],
)
def test_products_it_cannot_turn_round_are_left_as_they_were(case, node, x_dims):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims), helper.make_tensor_value_info("x_weight", TensorProto.FLOAT, [4, 5])]
    model = _model([node], inputs, "y", [numpy_helper.from_array(W, "w")])
    rewritten = weights_first(model)
    assert [n.op_type for n in rewritten.graph.node] == [node.op_type], case
    assert [t.name for t in rewritten.graph.initializer] == ["w"], case


def test_a_weight_a_subgraph_still_uses_is_kept():
    branch = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y_branch"])], "branch", [], [helper.make_tensor_value_info("y_branch", TensorProto.FLOAT, None)])
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y_main"]), helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 4]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        "y",
        [numpy_helper.from_array(W, "w")],
    )
    rewritten = weights_first(model)
    assert [n.op_type for n in rewritten.graph.node] == ["Transpose", "MatMul", "Transpose", "If"]
    assert "w" in {t.name for t in rewritten.graph.initializer}
