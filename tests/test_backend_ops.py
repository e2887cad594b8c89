"""Table-driven bit-exactness: every lowered op, crossed with engines.

Each record builds a one-node integer graph; the same record runs on the exact integer
reference (``evaluate_int``), the native kernels and the VM (reference stepper). Outputs
must be byte-identical, and native and VM must give the same node roots and final root
(the VM engine also checks it lands on the canonical boundary state after each node).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmlc.backend.compile import compile_graph
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.ir.ops import canonical_attrs, infer_types
from opmlc.quantize.interp import evaluate_int, verify_int
from opmlc_runtime.engines import Program

RNG = np.random.default_rng(1234)


def rand(dtype: str, shape: tuple[int, ...], lo: int | None = None, hi: int | None = None
         ) -> np.ndarray:
    info = np.iinfo(np.dtype({"i8": "int8", "u8": "uint8", "i16": "int16", "i32": "int32",
                              "i64": "int64"}[dtype]))
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return RNG.integers(lo, hi, shape, endpoint=True).astype(info.dtype)


@dataclass
class Rec:
    name: str
    op: str
    inputs: dict[str, np.ndarray]  # graph inputs, in order
    attrs: dict
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # node input order (names of inputs/consts); default inputs
    n_out: int = 1


def graph_of(r: Rec) -> Graph:
    g = Graph()
    for k, v in r.inputs.items():
        g.inputs.append(k)
        g.types[k] = TensorType.of(v)
    for k, v in r.consts.items():
        g.consts[k] = v
        g.types[k] = TensorType.of(v)
    args = r.args or tuple(r.inputs)
    outs = tuple(f"y{k}" for k in range(r.n_out))
    ts = infer_types(r.op, [g.types[a] for a in args], r.attrs)
    for o, t in zip(outs, ts, strict=True):
        g.types[o] = t
    g.nodes.append(Node(r.op, args, outs, r.attrs))
    g.outputs = list(outs)
    return verify_int(g)


def I(*a):  # noqa: E743
    return rand(*a)


RECORDS = [
    Rec("transpose", "transpose", {"x": I("i8", (2, 3, 4))}, {"perm": [2, 0, 1]}),
    Rec("transpose_i64", "transpose", {"x": I("i64", (3, 5))}, {"perm": [1, 0]}),
    Rec("slice_neg_step", "slice", {"x": I("i16", (5, 6))},
        {"starts": [4, 1], "ends": [-1, 6], "steps": [-2, 2]}),
    Rec("expand", "expand", {"x": I("i8", (3, 1))}, {"shape": [2, 3, 4]}),
    Rec("tile", "tile", {"x": I("i32", (2, 3))}, {"repeats": [2, 2]}),
    Rec("pad_const", "pad", {"x": I("i8", (2, 3))},
        {"pads": [1, 0, 0, 2], "mode": "constant", "value": -7.0}),
    Rec("pad_edge", "pad", {"x": I("u8", (3, 3))},
        {"pads": [1, 1, 1, 1], "mode": "edge", "value": 0.0}),
    Rec("depth_to_space", "depth_to_space", {"x": I("i8", (1, 8, 2, 3))},
        {"blocksize": 2, "mode": "CRD"}),
    Rec("concat", "concat", {"a": I("i8", (2, 3)), "b": I("i8", (2, 1)),
                             "c": I("i8", (2, 2))}, {"axis": 1}),
    Rec("split", "split", {"x": I("i16", (5, 4))}, {"axis": 0, "sizes": [2, 3]}, n_out=2),
    Rec("reshape_copy", "reshape", {"x": I("i8", (2, 6))}, {"shape": [3, 4]}),
    Rec("gather", "gather", {"x": I("i32", (4, 5, 2)),
                             "i": np.array([[0, -1], [3, 2]], np.int64)}, {"axis": 1}),
    Rec("gather_i32_idx", "gather", {"x": I("i8", (6, 3)),
                                     "i": np.array([5, 0, -6, 2], np.int32)}, {"axis": 0}),
    Rec("requant", "q.requant", {"x": I("i64", (2, 3), -(1 << 40), 1 << 40)},
        {"x_zp": 5, "zp": -3, "dtype": "i8"},
        {"m": np.array([1 << 30, 12345, -99], np.int64), "s": np.array([38], np.int64)},
        ("x", "m", "s")),
    Rec("requant_bias", "q.requant", {"x": I("i32", (4, 3))}, {"x_zp": 0, "zp": 0,
                                                               "dtype": "i16"},
        {"m": np.array([3], np.int64), "s": np.array([0, 1, 63], np.int64),
         "b": np.array([1, -2, 3], np.int64)}, ("x", "m", "s", "b")),
    Rec("add_bcast", "q.add", {"a": I("i8", (3, 4)), "b": I("i8", (4,))},
        {"a_zp": 3, "b_zp": -1, "a_mult": 77, "b_mult": -13, "shift": 4, "zp": 2,
         "dtype": "i8"}),
    Rec("mul", "q.mul", {"a": I("i16", (5,)), "b": I("i16", (5,))},
        {"a_zp": 1, "b_zp": 2, "mult": 3, "shift": 7, "zp": 0, "dtype": "i16"}),
    Rec("div_pos_shift", "q.div", {"a": I("i16", (6,)), "b": np.array([0, 1, -1, 7, -300, 2],
                                                                       np.int16)},
        {"a_zp": 0, "b_zp": 0, "shift": 5, "zp": 1, "dtype": "i32"}),
    Rec("div_neg_shift", "q.div", {"a": I("i32", (4,)), "b": I("i32", (4,), -50, 50)},
        {"a_zp": 3, "b_zp": 0, "shift": -3, "zp": 0, "dtype": "i8"}),
    Rec("clamp", "q.clamp", {"x": I("i16", (7,))}, {"lo": -100, "hi": 250}),
    Rec("where", "q.where", {"c": I("u8", (2, 3), 0, 1), "a": I("i8", (2, 3)),
                             "b": I("i8", (3,))}, {}),
    Rec("sqrt", "q.sqrt", {"x": I("i32", (9,))}, {"x_zp": -5, "shift": 3, "zp": 1,
                                                  "dtype": "i16"}),
    Rec("sqrt_neg_shift", "q.sqrt", {"x": I("i64", (5,), 0, 1 << 50)},
        {"x_zp": 0, "shift": -4, "zp": 0, "dtype": "i32"}),
    Rec("lut", "q.lut", {"x": I("i16", (3, 5))}, {"lo": -2000, "step_bits": 8,
                                                  "dtype": "i8"},
        {"t": I("i16", (17,), -300, 300)}, ("x", "t")),
    Rec("matmul", "q.matmul", {"a": I("i8", (3, 4)), "b": I("i8", (4, 5))},
        {"a_zp": 3, "b_zp": -2}),
    Rec("matmul_bias_const_w", "q.matmul", {"a": I("i16", (2, 3, 4))},
        {"a_zp": 0, "b_zp": 1}, {"w": I("i8", (4, 2)), "b": I("i32", (2,))}, ("a", "w", "b")),
    Rec("matmul_batch_bcast", "q.matmul", {"a": I("i8", (2, 1, 2, 3)), "b": I("i8", (3, 3, 2))},
        {"a_zp": 0, "b_zp": 0}),
    Rec("matmul_vec", "q.matmul", {"a": I("i8", (4,)), "b": I("i8", (4, 3))},
        {"a_zp": 1, "b_zp": 0}),
    Rec("reduce_sum", "q.reduce_sum", {"x": I("i8", (2, 3, 4))},
        {"axes": [0, 2], "keepdims": 1, "x_zp": 3}),
    Rec("reduce_max", "q.reduce_max", {"x": I("i16", (3, 4))}, {"axes": [1], "keepdims": 0}),
    Rec("argmax_first", "q.argmax", {"x": I("i8", (3, 6), -2, 2)},
        {"axis": 1, "keepdims": 1, "select_last_index": 0}),
    Rec("conv_pad_group", "q.conv", {"x": I("i8", (1, 4, 5, 5))},
        {"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2], "group": 2,
         "x_zp": 3, "w_zp": -1},
        {"w": I("i8", (6, 2, 3, 2)), "b": I("i32", (6,))}, ("x", "w", "b")),
    Rec("conv_1d_valid", "q.conv", {"x": I("u8", (2, 3, 7))},
        {"strides": [1], "pads": [0, 0], "dilations": [1], "group": 1, "x_zp": 128,
         "w_zp": 0}, {"w": I("i8", (2, 3, 3))}, ("x", "w")),
    # fused contraction + requant + clamp (opmlc/backend/fuse.py): per-channel mult/shift
    # with wrapping products, shift 0 and 62, saturation and a clamp inside the range
    Rec("conv_rq_per_channel", "q.conv_rq", {"x": I("i8", (1, 4, 6, 7))},
        {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1,
         "x_zp": 3, "w_zp": -1, "acc_zp": 5, "zp": -3, "dtype": "i8", "lo": -100, "hi": 90,
         "has_bias": 1, "has_rq_bias": 1},
        {"w": I("i8", (6, 4, 3, 3)), "b": I("i32", (6,)),
         "m": np.array([1, 1 << 40, -7, 3, (1 << 62) + 5, 1000], np.int64).reshape(6, 1, 1),
         "s": np.array([0, 62, 1, 9, 20, 5], np.int64).reshape(6, 1, 1),
         "rb": I("i64", (6, 1, 1), -(1 << 20), 1 << 20)}, ("x", "w", "b", "m", "s", "rb")),
    # fused residual block: conv_rq then add(residual, .) and clamp (opmlc/backend/fuse.py)
    Rec("conv_rq_add_residual", "q.conv_rq_add", {"x": I("i8", (1, 4, 6, 7)),
                                                  "r": I("i8", (1, 6, 6, 7))},
        {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1,
         "x_zp": 3, "w_zp": 0, "acc_zp": 5, "zp": -3, "dtype": "i8", "lo": -100, "hi": 90,
         "has_bias": 1, "has_rq_bias": 0, "res_a": 1, "add_a_zp": -4, "add_b_zp": 2,
         "add_a_mult": 3001, "add_b_mult": -2047, "add_shift": 12, "add_zp": 1,
         "add_dtype": "i8", "add_lo": -5, "add_hi": 120},
        {"w": I("i8", (6, 4, 3, 3)), "b": I("i32", (6,)),
         "m": I("i64", (6, 1, 1), 1, 1 << 20), "s": I("i64", (6, 1, 1), 10, 24)},
        ("x", "w", "b", "m", "s", "r")),
    Rec("conv_rq_i32_stride", "q.conv_rq", {"x": I("i32", (1, 3, 9, 8))},
        {"strides": [2, 2], "pads": [0, 1, 1, 0], "dilations": [1, 1], "group": 1,
         "x_zp": 0, "w_zp": 0, "acc_zp": 0, "zp": 0, "dtype": "i32", "lo": 0,
         "hi": (1 << 31) - 1, "has_bias": 0, "has_rq_bias": 0},
        {"w": I("i16", (16, 3, 3, 3)), "m": np.array(1, np.int64),
         "s": np.array(13, np.int64)}, ("x", "w", "m", "s")),
    Rec("conv_rq_group_u8", "q.conv_rq", {"x": I("u8", (2, 4, 5, 5))},
        {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 2,
         "x_zp": 128, "w_zp": 0, "acc_zp": 0, "zp": 7, "dtype": "u8", "lo": 0, "hi": 255,
         "has_bias": 0, "has_rq_bias": 0},
        {"w": I("i8", (8, 2, 3, 3)), "m": I("i64", (8, 1, 1), 1, 1 << 20),
         "s": I("i64", (8, 1, 1), 10, 24)}, ("x", "w", "m", "s")),
    Rec("matmul_rq", "q.matmul_rq", {"a": I("i16", (2, 3, 4))},
        {"a_zp": 2, "b_zp": 0, "acc_zp": -4, "zp": 1, "dtype": "i16", "lo": -30000,
         "hi": 32767, "has_bias": 1, "has_rq_bias": 1},
        {"w": I("i8", (4, 5)), "b": I("i32", (5,)), "m": I("i64", (5,), -(1 << 30), 1 << 30),
         "s": np.array(7, np.int64), "rb": I("i64", (3, 1), -999, 999)},
        ("a", "w", "b", "m", "s", "rb")),
    Rec("matmul_rq_vec", "q.matmul_rq", {"a": I("i8", (4,)), "b": I("i8", (4, 3))},
        {"a_zp": 1, "b_zp": 0, "acc_zp": 0, "zp": 0, "dtype": "i8", "lo": -128, "hi": 127,
         "has_bias": 0, "has_rq_bias": 0},
        {"m": I("i64", (3,), 1, 9), "s": I("i64", (3,), 0, 3)}, ("a", "b", "m", "s")),
    Rec("max_pool", "q.max_pool", {"x": I("i8", (1, 2, 5, 5))},
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
         "dilations": [1, 1], "ceil_mode": 0}),
    Rec("max_pool_ceil", "q.max_pool", {"x": I("i16", (1, 1, 6, 6))},
        {"kernel_shape": [2, 2], "strides": [4, 4], "pads": [0, 0, 0, 0],
         "dilations": [1, 1], "ceil_mode": 1}),
    Rec("sum_pool", "q.sum_pool", {"x": I("i8", (1, 2, 4, 4))},
        {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1],
         "dilations": [1, 1], "ceil_mode": 0, "x_zp": 2}),
    Rec("softmax", "q.softmax", {"x": I("i16", (2, 5, 3), -3000, 3000)},
        {"axis": 1, "lo": -4096, "step_bits": 8, "out_bits": 15, "zp": 0, "dtype": "i16"},
        {"t": np.sort(I("i32", (17,), 0, 1 << 30))}, ("x", "t")),
    Rec("mod", "q.mod", {"a": I("i16", (3, 4), -300, 300), "b": I("i8", (4,), -9, 9)},
        {"fmod": 0, "dtype": "i16"}),
    Rec("fmod", "q.mod", {"a": I("i32", (2, 5)), "b": I("i16", (2, 1))},
        {"fmod": 1, "dtype": "i32"}),
    Rec("cmp_lt", "q.cmp", {"a": I("i8", (3, 4)), "b": I("i8", (3, 4))}, {"kind": "lt"}),
    Rec("cmp_eq", "q.cmp", {"a": I("i8", (3, 4), -2, 2), "b": I("i16", (4,), -2, 2)},
        {"kind": "eq"}),
    Rec("cmp_xor", "q.cmp", {"a": I("u8", (6,), 0, 1), "b": I("u8", (6,), 0, 1)},
        {"kind": "xor"}),
    Rec("softmax_masked", "q.softmax", {"x": I("i16", (2, 5, 3), -3000, 3000),
                                        "k": I("u8", (5, 1), 0, 1)},
        {"axis": 1, "lo": -4096, "step_bits": 8, "out_bits": 7, "zp": -128, "dtype": "i8"},
        {"t": np.sort(I("i32", (17,), 0, 1 << 30))}, ("x", "t", "k")),
    Rec("layer_norm", "q.layer_norm", {"x": I("i16", (3, 8))},
        {"axis": 1, "x_zp": 1, "pre": 2, "eps": 5, "norm_bits": 12, "sd_bits": 8,
         "shift": 10, "zp": 0, "dtype": "i16"},
        {"g": I("i16", (8,)), "b": I("i32", (8,))}, ("x", "g", "b")),
    Rec("rms_norm", "q.rms_norm", {"x": I("i8", (2, 2, 6))},
        {"axis": 2, "x_zp": 0, "pre": 0, "eps": 1, "norm_bits": 10, "sd_bits": 6,
         "shift": 8, "zp": 3, "dtype": "i8"}, {"g": I("i16", (6,))}, ("x", "g")),
    Rec("einsum", "q.einsum", {"a": I("i8", (2, 3, 4)), "b": I("i8", (2, 4, 5))},
        {"equation": "bik,bkj->bij", "a_zp": 1, "b_zp": -2}),
    Rec("einsum_perm", "q.einsum", {"a": I("i8", (3, 4)), "b": I("i16", (5, 4))},
        {"equation": "ik,jk->ji", "a_zp": 0, "b_zp": 0}),
    Rec("argmax_last", "q.argmax", {"x": I("i8", (4, 3), -1, 1)},
        {"axis": 0, "keepdims": 0, "select_last_index": 1}),
    Rec("resize_linear", "q.resize", {"x": I("i16", (1, 2, 3, 4))},
        canonical_attrs("q.resize", {"sizes": [1, 2, 5, 7], "scales": [1.0, 1.0, 5 / 3, 7 / 4],
                                     "mode": "linear", "x_zp": 3, "zp": 3, "dtype": "i16"})),
    Rec("resize_cubic_crop", "q.resize", {"x": I("i8", (1, 1, 4, 4))},
        canonical_attrs("q.resize", {
            "sizes": [1, 1, 3, 3], "scales": [1.0, 1.0, 0.75, 0.75], "mode": "cubic",
            "roi": [0, 0, 0.4, 0.6, 1, 1, 1.2, 0.7],
            "coordinate_transformation_mode": "tf_crop_and_resize", "fill": -5, "x_zp": -1,
            "zp": -1, "dtype": "i8"})),
    Rec("resize_nearest", "q.resize", {"x": I("u8", (2, 3, 2))},
        canonical_attrs("q.resize", {"sizes": [2, 6, 5], "scales": [1.0, 2.0, 2.5],
                                     "coordinate_transformation_mode": "asymmetric",
                                     "nearest_mode": "floor", "dtype": "u8"})),
    Rec("sample_top3", "q.sample", {"x": I("i8", (2, 9), -3, 3), "s": I("i64", (1,))},
        {"lo": -64, "step_bits": 2, "top_k": 3, "counter": 4},
        {"t": np.sort(I("i32", (17,), 1, 1 << 30))}, ("x", "t", "s")),
    Rec("sample_all", "q.sample", {"x": I("i16", (3, 2, 11), -40, 40), "s": I("i64", (1,))},
        {"lo": -64, "step_bits": 2, "top_k": 0, "counter": 0},
        {"t": np.sort(I("i32", (17,), 1, 1 << 30))}, ("x", "t", "s")),
    Rec("topk_largest", "q.topk", {"x": I("i8", (3, 7), -2, 2)},
        {"axis": 1, "k": 4, "largest": 1}, n_out=2),
    Rec("topk_smallest", "q.topk", {"x": I("i16", (5, 2, 3), -3, 3)},
        {"axis": 0, "k": 3, "largest": 0}, n_out=2),
    Rec("scatter_elements_add", "scatter_elements",
        {"x": I("i16", (3, 4)), "i": I("i64", (2, 4), -4, 3), "u": I("i16", (2, 4))},
        {"axis": 1, "reduction": "add"}),
    Rec("scatter_nd_max", "scatter_nd",
        {"x": I("i8", (4, 3, 2)), "i": I("i64", (2, 2, 1), -4, 3), "u": I("i8", (2, 2, 3, 2))},
        {"reduction": "max"}),
    Rec("scatter_nd_none", "scatter_nd",
        {"x": I("i32", (4, 3)), "i": I("i32", (3, 2), -4, 3), "u": I("i32", (3,))},
        {"reduction": "none"}),
]

_PROGRAMS: dict[str, tuple[Graph, Program]] = {}


def program(r: Rec) -> tuple[Graph, Program]:
    if r.name not in _PROGRAMS:
        g = graph_of(r)
        _PROGRAMS[r.name] = (g, Program(compile_graph(g)))
    return _PROGRAMS[r.name]


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_op_bit_exact(rec: Rec) -> None:
    g, prog = program(rec)
    ref = evaluate_int(g, rec.inputs)
    nat = prog.run(rec.inputs, "native", trace=True)
    vm = prog.run(rec.inputs, "vm", trace=True)
    for o in g.outputs:
        assert ref[o].dtype == nat.outputs[o].dtype == vm.outputs[o].dtype
        np.testing.assert_array_equal(nat.outputs[o], ref[o], err_msg=f"native {o}")
        np.testing.assert_array_equal(vm.outputs[o], ref[o], err_msg=f"vm {o}")
    assert nat.node_roots == vm.node_roots
    assert nat.initial_root == vm.initial_root
    assert nat.state_root == vm.state_root and nat.steps == vm.steps


def test_all_integer_ops_have_a_record() -> None:
    """Every lowered q.* op is exercised by a record (so a new lowering needs a test)."""
    from opmlc.backend.lower import LOWER

    covered = {r.op for r in RECORDS}
    missing = sorted(o for o in LOWER if o.startswith("q.") and o not in covered)
    assert not missing, missing


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 4), cols=st.integers(1, 5), k=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1), zp=st.integers(-128, 127))
def test_matmul_requant_hypothesis(rows: int, cols: int, k: int, seed: int, zp: int) -> None:
    """matmul -> requant over random shapes and values: ref == native == vm."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.inputs = ["a"]
    g.types["a"] = TensorType("i8", (rows, k))
    g.consts["w"] = rng.integers(-128, 128, (k, cols)).astype(np.int8)
    g.consts["m"] = rng.integers(1, 1 << 31, (cols,)).astype(np.int64)
    g.consts["s"] = np.array([int(rng.integers(0, 40))], np.int64)
    for c in ("w", "m", "s"):
        g.types[c] = TensorType.of(g.consts[c])
    g.types["acc"] = TensorType("i64", (rows, cols))
    g.types["y"] = TensorType("i8", (rows, cols))
    g.nodes = [Node("q.matmul", ("a", "w"), ("acc",), {"a_zp": zp, "b_zp": 0}),
               Node("q.requant", ("acc", "m", "s"), ("y",), {"x_zp": 0, "zp": 1,
                                                            "dtype": "i8"})]
    g.outputs = ["y"]
    verify_int(g)
    x = {"a": rng.integers(-128, 128, (rows, k)).astype(np.int8)}
    prog = Program(compile_graph(g))
    ref = evaluate_int(g, x)["y"]
    nat, vm = prog.run(x, "native", True), prog.run(x, "vm", True)
    np.testing.assert_array_equal(nat.outputs["y"], ref)
    np.testing.assert_array_equal(vm.outputs["y"], ref)
    assert nat.node_roots == vm.node_roots and nat.state_root == vm.state_root
