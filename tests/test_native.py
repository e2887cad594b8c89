"""The packed native contraction kernels: bit-exact against the integer reference on
random shapes (odd sizes, groups, strides, dilations, padding, zero points, bias, dtypes
that do and do not fit the 32-bit product path), identical under any thread count, and
the native engine's reused buffer, lazy root and JIT object cache change no byte.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmlc.backend.compile import compile_graph
from opmlc.backend.convgen import _fits32
from opmlc.ir.graph import Graph, Node, TensorType
from opmlc.quantize.interp import evaluate_int, verify_int
from opmlc_runtime import native
from opmlc_runtime.engines import Program

NP = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32, "i64": np.int64}


def _rand(rng: np.random.Generator, dtype: str, shape, lim: int | None = None) -> np.ndarray:
    info = np.iinfo(NP[dtype])
    lo, hi = info.min, info.max
    if lim is not None:
        lo, hi = max(lo, -lim), min(hi, lim)
    return rng.integers(lo, hi, shape, endpoint=True).astype(NP[dtype])


def conv_graph(x_t: TensorType, w: np.ndarray, bias: np.ndarray | None, attrs: dict) -> Graph:
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = x_t
    g.consts["w"] = w
    g.types["w"] = TensorType.of(w)
    args = ["x", "w"]
    if bias is not None:
        g.consts["b"] = bias
        g.types["b"] = TensorType.of(bias)
        args.append("b")
    from opmlc.ir.ops import infer_types

    g.types["y"] = infer_types("q.conv", [g.types[a] for a in args], attrs)[0]
    g.nodes = [Node("q.conv", tuple(args), ("y",), attrs)]
    g.outputs = ["y"]
    return verify_int(g)


def run_threads(prog: Program, x: dict, counts=(1, 2, 3)) -> list:
    out = []
    try:
        for n in counts:
            native.set_threads(n)
            out.append(prog.run(x, "native", trace=True))
    finally:
        native.set_threads(None)
    return out


@st.composite
def conv_case(draw):
    nd = draw(st.integers(1, 2))
    G = draw(st.integers(1, 3))
    Cg, Mg = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    kern = [draw(st.integers(1, 3)) for _ in range(nd)]
    s = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    pb = [draw(st.integers(0, 2)) for _ in range(nd)]
    pe = [draw(st.integers(0, 2)) for _ in range(nd)]
    H = [max(draw(st.integers(1, 11)), d[i] * (kern[i] - 1) + 1 - pb[i] - pe[i])
         for i in range(nd)]
    xd = draw(st.sampled_from(["i8", "u8", "i16", "i32", "i64"]))
    wd = draw(st.sampled_from(["i8", "i16", "i32"]))
    x_zp = draw(st.sampled_from([0, 3, -128, 1 << 20]))
    w_zp = draw(st.sampled_from([0, -1, 7]))
    return dict(nd=nd, N=draw(st.integers(1, 2)), G=G, Cg=Cg, Mg=Mg, kern=kern, s=s, d=d,
                pads=pb + pe, H=H, xd=xd, wd=wd, x_zp=x_zp, w_zp=w_zp,
                bias=draw(st.sampled_from([None, "i32", "i64"])),
                seed=draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=conv_case())
def test_conv_native_bit_exact(c: dict) -> None:
    """Random q.conv: ref == native under 1, 2 and 3 threads (same node roots); the VM too
    when the node is small enough for the reference stepper."""
    rng = np.random.default_rng(c["seed"])
    M = c["G"] * c["Mg"]
    x_t = TensorType(c["xd"], (c["N"], c["G"] * c["Cg"], *c["H"]))
    lim = 1 << 40 if c["xd"] == "i64" else None
    w = _rand(rng, c["wd"], (M, c["Cg"], *c["kern"]))
    bias = None if c["bias"] is None else _rand(rng, c["bias"], (M,))
    attrs = {"strides": c["s"], "pads": c["pads"], "dilations": c["d"], "group": c["G"],
             "x_zp": c["x_zp"], "w_zp": c["w_zp"]}
    g = conv_graph(x_t, w, bias, attrs)
    x = {"x": _rand(rng, c["xd"], x_t.shape, lim)}
    ref = evaluate_int(g, x)["y"]
    prog = Program(compile_graph(g))
    assert prog.art.meta["nodes"][0]["parallel"]
    runs = run_threads(prog, x)
    for r in runs:
        np.testing.assert_array_equal(r.outputs["y"], ref)
        assert r.node_roots == runs[0].node_roots and r.state_root == runs[0].state_root
    if prog.art.meta["total_steps"] < 150_000:
        vm = prog.run(x, "vm", trace=True)
        np.testing.assert_array_equal(vm.outputs["y"], ref)
        assert vm.node_roots == runs[0].node_roots and vm.state_root == runs[0].state_root


def test_fits32_rule() -> None:
    """The 32-bit product path is taken only when every dtype value minus the zero point
    fits: i32 with zero point 0 yes, with any other zero point or i64 no."""
    assert _fits32("i32", 0) and _fits32("i16", -5) and _fits32("u8", 255)
    assert not _fits32("i32", 1) and not _fits32("i32", -1) and not _fits32("i64", 0)


def test_conv_wide_layer_threads_deterministic() -> None:
    """A layer with many panels and a row tail (Mg % 4 != 0), i32 x i16 as in the fixed
    scheme, and the extreme values of both dtypes: every thread count, same bytes."""
    rng = np.random.default_rng(7)
    x_t = TensorType("i32", (1, 6, 23, 19))
    w = _rand(rng, "i16", (10, 6, 3, 3))
    w[0] = -(1 << 15)
    attrs = {"strides": [1, 2], "pads": [1, 0, 2, 1], "dilations": [1, 1], "group": 1,
             "x_zp": 0, "w_zp": 0}
    g = conv_graph(x_t, w, _rand(rng, "i64", (10,)), attrs)
    x = {"x": _rand(rng, "i32", x_t.shape)}
    x["x"][0, :, :4] = np.iinfo(np.int32).min
    ref = evaluate_int(g, x)["y"]
    prog = Program(compile_graph(g))
    runs = run_threads(prog, x, (1, 2, 4, 7))
    for r in runs:
        np.testing.assert_array_equal(r.outputs["y"], ref)
        assert r.node_roots == runs[0].node_roots


def _two_node_program() -> tuple[Graph, Program]:
    rng = np.random.default_rng(3)
    g = Graph()
    g.inputs = ["x"]
    g.types["x"] = TensorType("i8", (1, 3, 9, 9))
    g.consts["w"] = _rand(rng, "i8", (4, 3, 3, 3))
    g.consts["m"] = np.array([3], np.int64)
    g.consts["s"] = np.array([9], np.int64)
    for c in ("w", "m", "s"):
        g.types[c] = TensorType.of(g.consts[c])
    g.types["acc"] = TensorType("i64", (1, 4, 7, 7))
    g.types["y"] = TensorType("i8", (1, 4, 7, 7))
    g.nodes = [Node("q.conv", ("x", "w"), ("acc",), {"strides": [1, 1], "pads": [0, 0, 0, 0],
                                                     "dilations": [1, 1], "group": 1,
                                                     "x_zp": 2, "w_zp": 0}),
               Node("q.requant", ("acc", "m", "s"), ("y",), {"x_zp": 0, "zp": 1,
                                                            "dtype": "i8"})]
    g.outputs = ["y"]
    return verify_int(g), Program(compile_graph(verify_int(g)))


def test_reused_buffer_and_lazy_root_match_fresh_runs() -> None:
    """Runs on one Program reuse its buffer: outputs, S0, every node root and the final
    root equal those of a fresh Program, and a plain run's lazy root is settled before
    the next run can change the buffer."""
    g, prog = _two_node_program()
    rng = np.random.default_rng(11)
    xs = [{"x": _rand(rng, "i8", (1, 3, 9, 9))} for _ in range(3)]
    plain = prog.run(xs[0], "native")  # kept: its root must survive the next runs
    for x in xs[1:] + xs[:1]:
        got = prog.run(x, "native", trace=True)
        want = Program(prog.art).run(x, "native", trace=True)
        np.testing.assert_array_equal(got.outputs["y"], evaluate_int(g, x)["y"])
        assert (got.initial_root, got.node_roots, got.state_root) == (
            want.initial_root, want.node_roots, want.state_root)
    assert plain.state_root == Program(prog.art).run(xs[0], "native").state_root
    assert prog.run(xs[1], "vm").state_root == prog.run(xs[1], "native").state_root


def test_jit_object_cache(tmp_path, monkeypatch) -> None:
    """The second load of the same IR comes from the cache and computes the same bytes."""
    monkeypatch.setenv("OPMLC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("OPMLC_JIT_CACHE", raising=False)
    _, prog = _two_node_program()
    x = {"x": _rand(np.random.default_rng(5), "i8", (1, 3, 9, 9))}
    a = prog.run(x, "native", trace=True)
    assert not prog.native().cache_hit and list(tmp_path.iterdir())
    p2 = Program(prog.art)
    b = p2.run(x, "native", trace=True)
    assert p2.native().cache_hit
    assert a.node_roots == b.node_roots and a.state_root == b.state_root


@pytest.mark.parametrize("n", [0, 1, 5, 100])
def test_set_threads_bounds(n: int) -> None:
    try:
        native.set_threads(n)
        assert 1 <= native.threads() <= native.MAX_THREADS
    finally:
        native.set_threads(None)


def test_trace_driver_equals_node_by_node_and_vm(monkeypatch) -> None:
    """Node roots hashed by the native trace driver (one call per thread, every node's
    writes rehashed after it, wide levels split over the threads) equal the node-by-node
    path's (run_node + Memory.root) at every thread count, and the VM's; so do the
    restored S0 (the image's tree copied back, not rehashed) and the final root."""
    rng = np.random.default_rng(21)
    x_t = TensorType("i8", (1, 3, 50, 50))  # 8 x 48 x 48 i64: 4,608 dirty leaves
    w = _rand(rng, "i8", (8, 3, 3, 3))
    attrs = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1,
             "x_zp": 3, "w_zp": -2}
    prog = Program(compile_graph(conv_graph(x_t, w, None, attrs)))
    xs = [{"x": _rand(rng, "i8", x_t.shape)} for _ in range(2)]
    want = []
    with monkeypatch.context() as m:
        m.setattr(Program, "_trace_native", lambda self, nat, mem: [])
        for x in xs:
            want.append(Program(prog.art).run(x, "native", trace=True))
    for x, w_ in zip(xs + xs, want + want, strict=True):
        for r in run_threads(prog, x, (1, 2, 3)):
            assert (r.initial_root, r.node_roots, r.state_root) == (
                w_.initial_root, w_.node_roots, w_.state_root)
    g, small = _two_node_program()
    x = {"x": _rand(rng, "i8", (1, 3, 9, 9))}
    vm = small.run(x, "vm", trace=True)
    for r in run_threads(small, x, (1, 2)):
        assert (r.initial_root, r.node_roots, r.state_root) == (
            vm.initial_root, vm.node_roots, vm.state_root)


def test_small_program_one_thread(monkeypatch) -> None:
    """A program whose split nodes add up to fewer than PROGRAM_SPLIT_MIN_STEPS runs its
    drivers on one thread (no node flagged, one part), a larger one splits; the bytes and
    every root are the same either way."""
    rng = np.random.default_rng(5)
    x_t = TensorType("i8", (1, 3, 50, 50))
    w = _rand(rng, "i8", (8, 3, 3, 3))
    attrs = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1,
             "x_zp": 3, "w_zp": -2}
    art = compile_graph(conv_graph(x_t, w, None, attrs))
    x = {"x": _rand(rng, "i8", x_t.shape)}
    steps = sum(int(n["steps"]) for n in art.meta["nodes"])
    runs = []
    for limit in (steps + 1, 0):  # the conftest default is 0: always split
        monkeypatch.setattr(native, "PROGRAM_SPLIT_MIN_STEPS", limit)
        prog = Program(art)
        small = limit > steps
        assert any(prog._split_flags()) is not small  # noqa: SLF001
        assert prog._driver_parts() == (1 if small else None)  # noqa: SLF001
        runs += run_threads(prog, x, (1, 2))  # node roots: the trace driver
        runs.append(Program(art).run(x, "native"))  # the plain driver
    for r in runs:
        np.testing.assert_array_equal(r.outputs["y"], runs[0].outputs["y"])
        assert r.state_root == runs[0].state_root


def test_split_jit_modules_same_results(monkeypatch, tmp_path) -> None:
    """Kernels compiled as several modules (one node each here) on parallel threads,
    called through the drivers' function table: the same outputs and roots as one module;
    each module holds the shared lines and only its own node functions."""
    monkeypatch.setenv("OPMLC_CACHE_DIR", str(tmp_path))
    g, _ = _two_node_program()
    prog = Program(compile_graph(g, options={"fuse": False}))
    assert len(prog.nodes) == 2
    parts = native.split_kernels(prog.art.llvm_ir, len(prog.nodes), 2)
    assert len(parts) == 2 and all(p.count("define void @node_") == 1 for p in parts)
    assert len(native.split_kernels(prog.art.llvm_ir, len(prog.nodes), 5)) == 2
    x = {"x": _rand(np.random.default_rng(9), "i8", (1, 3, 9, 9))}
    got = {}
    for n in ("1", "2"):
        monkeypatch.setenv("OPMLC_JIT_THREADS", n)
        p = Program(prog.art)
        assert len(p.native()._parts) == int(n) + 1  # noqa: SLF001 - kernels + drivers
        got[n] = [p.run(x, "native", **kw) for kw in ({}, {"trace": True})]
    for a, b in zip(got["1"], got["2"], strict=True):
        np.testing.assert_array_equal(a.outputs["y"], b.outputs["y"])
        assert (a.initial_root, a.node_roots, a.state_root) == (
            b.initial_root, b.node_roots, b.state_root)
    np.testing.assert_array_equal(got["2"][0].outputs["y"], evaluate_int(g, x)["y"])


def test_final_root_driver_after_any_run(monkeypatch) -> None:
    """commit=True hashes the writable ranges inside the driver call (ranges on the last
    node only): after plain, committed or traced runs on the same buffer (pending dirty
    leaves dropped, not hashed twice), at 1 and 2 threads, the final root is the one of
    the node-by-node path and of the VM."""
    rng = np.random.default_rng(33)
    x_t = TensorType("i8", (1, 3, 50, 50))
    w = _rand(rng, "i8", (8, 3, 3, 3))
    attrs = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1,
             "x_zp": 1, "w_zp": 0}
    prog = Program(compile_graph(conv_graph(x_t, w, None, attrs)))
    xs = [{"x": _rand(rng, "i8", x_t.shape)} for _ in range(3)]
    with monkeypatch.context() as m:
        m.setattr(Program, "_final_native", lambda self, nat, mem: False)
        m.setattr(Program, "_trace_native", lambda self, nat, mem: [])
        want = [Program(prog.art).run(x, "native", commit=True).state_root for x in xs]
    called = []
    orig = Program._final_native
    monkeypatch.setattr(Program, "_final_native",
                        lambda self, nat, mem: called.append(1) or orig(self, nat, mem))
    try:
        for n in (1, 2):
            native.set_threads(n)
            for i, kw in enumerate(({}, {"commit": True}, {"trace": True}, {"commit": True},
                                    {}, {}, {"commit": True})):
                r = prog.run(xs[i % 3], "native", **kw)
                assert r.state_root == want[i % 3]
    finally:
        native.set_threads(None)
    assert called
    g, small = _two_node_program()
    x = {"x": _rand(rng, "i8", (1, 3, 9, 9))}
    assert small.run(x, "native", commit=True).state_root == small.run(x, "vm").state_root


def test_trace_driver_hash_ranges_match_oracle() -> None:
    """opmlc_hash_range through the trace driver on arbitrary leaf ranges (unaligned,
    wide enough to split into subtrees, overlapping, one leaf) rewritten in place behind
    the tree's back: at 1..4 threads the tree equals the pure-Python oracle's."""
    from opmlc_runtime.keccak import update_address
    from opmlc_runtime.merkle import Memory, merkle_root_of

    rng = np.random.default_rng(41)
    x_t = TensorType("i8", (1, 3, 12, 12))
    w = _rand(rng, "i8", (4, 3, 3, 3))
    attrs = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1,
             "x_zp": 0, "w_zp": 0}
    prog = Program(compile_graph(conv_graph(x_t, w, None, attrs)))
    small = prog.memory({"x": _rand(rng, "i8", x_t.shape)})
    mem = Memory(20, size_hint=1 << 20)  # the program's layout at the bottom of 1 MiB
    mem.reserve(1 << 20)
    mem.write(0, small.read(0, small.allocated))
    nat, upd = prog.native(), update_address()
    leaves = mem.allocated // 32
    a, b = prog.nodes[0]["writes"][0]
    try:
        for n in (1, 2, 3, 4):
            native.set_threads(n)
            spans = [(int(rng.integers(300, 399)), int(rng.integers(20_000, leaves))),
                     (305, 306), (777, 9_999), (301, 30_001)]
            for lo, hi in spans:
                mem.buffer[32 * lo:32 * hi] = rng.integers(0, 256, 32 * (hi - lo), np.uint8)
            spans.append((a // 32, (a + b - 1) // 32 + 1))
            ptrs, top = mem.native_levels()
            roff = np.array([0, len(spans)], np.int64)
            rlh = np.array(spans, np.int64).reshape(-1)
            tops = np.zeros((1, 32), np.uint8)
            nat.trace_all(mem.buffer.ctypes.data, prog._split_flags(), upd, ptrs.ctypes.data,
                          top, roff.ctypes.data, rlh.ctypes.data, tops.ctypes.data)
            mem.levels_changed()
            assert mem.root_over_top(tops[0].tobytes()) == mem.root() == merkle_root_of(
                mem.read(0, mem.allocated), mem.depth)
    finally:
        native.set_threads(None)


def test_jit_part_disposes_its_engine_before_its_context(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A JIT module's engine must go before the LLVM context its module lives in (the
    other order is a use after free in LLVMPY_DisposeExecutionEngine)."""
    import gc

    import llvmlite.binding as llvm
    from llvmlite.binding.context import ContextRef
    from llvmlite.binding.executionengine import ExecutionEngine

    from opmlc_runtime import native

    order: list[str] = []
    ctx_dispose, ee_dispose = ContextRef._dispose, ExecutionEngine._dispose
    monkeypatch.setattr(ContextRef, "_dispose",
                        lambda self: (order.append("context"), ctx_dispose(self))[1])
    monkeypatch.setattr(ExecutionEngine, "_dispose",  # recorded once the engine is gone
                        lambda self: (ee_dispose(self), order.append("engine"))[0])
    native._init()
    target = llvm.Target.from_default_triple()
    part = native._Part(llvm, target, llvm.get_host_cpu_name(), "", 2,
                        "define void @node_0() {\n  ret void\n}\n")
    assert part.nodes == ["node_0"]
    del part
    gc.collect()
    assert order == ["engine", "context"]


@pytest.mark.parametrize("keep_shape", [(1, 1, 64, 64), (1, 4, 1, 64)])
def test_masked_softmax_rows_split(keep_shape) -> None:
    """A masked softmax over (1, 4, 64, 64) (a batch of 1: the top loop has one
    iteration) splits its 256 rows over the threads (Kernel.collapse: the row levels
    flattened); ref == native at 1, 2 and 3 threads == VM, every root the same."""
    from test_backend_hypothesis import one_node

    rng = np.random.default_rng(3)
    x = rng.integers(-5000, 5000, (1, 4, 64, 64)).astype(np.int16)
    keep = (rng.random(keep_shape) < 0.7).astype(np.uint8)
    table = np.sort(rng.integers(0, 1 << 30, 20)).astype(np.int32)
    g, ins = one_node("q.softmax", {"x": x, "k": keep}, {
        "axis": 3, "lo": -19 * 256, "step_bits": 8, "out_bits": 12, "zp": -3,
        "dtype": "i16"}, {"t": table}, ("x", "t", "k"))
    art = compile_graph(g)
    assert "urem i64" in art.llvm_ir  # the flattened rows' digits
    prog = Program(art)
    assert prog._split_flags() == b"\x01"  # noqa: SLF001 - split by the driver
    ref = evaluate_int(g, ins)["y0"]
    vm = prog.run(ins, "vm", trace=True)
    np.testing.assert_array_equal(vm.outputs["y0"], ref)
    for r in run_threads(prog, ins, (1, 2, 3)):
        np.testing.assert_array_equal(r.outputs["y0"], ref)
        assert (r.node_roots, r.state_root) == (vm.node_roots, vm.state_root)
