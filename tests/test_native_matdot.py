"""The int8 dot-product matmul kernel (convgen.mat_dot_plan / gen_matmul_dot): 8-bit a
(or 16-bit a, the int8 scheme's mixed-precision activations and the fixed scheme's
--act-dtype i16, as a high and a low byte) and b (8-bit, or 16-bit as two byte panels;
any b_zp: a's row sums correct it) summed as u8 x s8 groups of four k in i32 lanes
(AVX-512 VNNI vpdpbusd, or the runtime's plain fallback), 4-row x 64-column register
tiles over a packed b panel, a's zero point corrected in i64 from b's column sums.
ref == native (VNNI and the forced fallback, 1 and 2 threads) == VM on the kernel's
edges: K % 4, N % 64 and % 16, row tails 1..9 and past a 24-row work item, a_zp at the
extremes, u8 / i8 operands, broadcast and per-batch b, constant or input b, bias and
per-column requant epilogues, every product at the bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_native_dot import matmul_graph, run_native

from opmlc.backend.compile import compile_graph
from opmlc.backend.convgen import DPBUSD_DECL, MDC, MDM, MDN, mat_dot_plan
from opmlc.quantize.interp import evaluate_int
from opmlc_runtime.engines import Program


def _check(c: dict, vm: bool = True) -> None:
    g, x = matmul_graph(c)
    ref = evaluate_int(g, x)["y"]
    art = compile_graph(g)
    assert DPBUSD_DECL in art.llvm_ir  # the dot-product matmul, not the strip kernel
    assert [n["op"] for n in art.meta["nodes"]] == ["q.matmul_rq" if c["rq"] else "q.matmul"]
    runs = [run_native(art, x, t, v) for t, v in ((1, "1"), (2, "1"), (1, "0"), (2, "0"))]
    for r in runs:
        np.testing.assert_array_equal(r.outputs["y"], ref)
        assert r.node_roots == runs[0].node_roots and r.state_root == runs[0].state_root
    if vm:
        v = Program(art).run(x, "vm", trace=True)
        np.testing.assert_array_equal(v.outputs["y"], ref)
        assert v.node_roots == runs[0].node_roots and v.state_root == runs[0].state_root


@st.composite
def matdot_case(draw):
    ad = draw(st.sampled_from(["i8", "u8", "i16"]))
    bd = draw(st.sampled_from(["i8", "u8", "i16"]))
    alo, ahi = {"i8": (-128, 127), "u8": (0, 255), "i16": (-32768, 32767)}[ad]
    off = 128 if bd == "u8" else 0  # b's offset (symmetric weights), or any zero point
    b_zp = draw(st.sampled_from([off, off, off - 128, off + 127, off + 5] +
                                ([-32768, 32767] if bd == "i16" else [])))
    return dict(K=draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 17, 64, 130, 259])),
                N=draw(st.sampled_from([2, 3, 15, 16, 17, 33, 63, 64, 65, 130, 200])),
                M=draw(st.one_of(st.integers(1, 9), st.sampled_from([15, 16, 17, 33]))),
                batch=draw(st.sampled_from([(), (2,), (1, 2)])), ad=ad, bd=bd, b_zp=b_zp,
                bbatch=draw(st.booleans()), bconst=draw(st.booleans()),
                a_zp=draw(st.sampled_from([alo, ahi, 0, 5, -128, 127, alo + 1])),
                bias=draw(st.booleans()), rq=draw(st.sampled_from([None, "i8", "u8"])),
                extreme=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=matdot_case())
def test_dot_matmul_bit_exact(c: dict) -> None:
    """Random 8-bit q.matmul / q.matmul_rq on the dot-product kernel: ref == native with
    VNNI and with the plain fallback (1 and 2 threads) == the VM, every root the same."""
    _check(c)


@pytest.mark.parametrize("M,K,N,ad,a_zp", [(128, 768, 200, "i8", -128), (37, 771, 129, "u8", 255),
                                           (9, 4096, 70, "i8", 127),
                                           (128, 768, 200, "i16", -32768),
                                           (31, 4096, 65, "i16", 30001)])
@pytest.mark.parametrize("bd", ["i8", "i16"])
def test_dot_matmul_gpt2_like(M: int, K: int, N: int, ad: str, a_zp: int, bd: str) -> None:
    """Bigger shapes (GPT-2's K, many row tiles and work items, the largest K): VNNI ==
    fallback == ref, 1 and 2 threads."""
    _check(dict(K=K, N=N, M=M, batch=(), ad=ad, bd=bd, bbatch=False, bconst=True,
                a_zp=a_zp, bias=True, rq="i8", extreme=False, seed=M * K + N), vm=False)


def test_mat_dot_plan_rule() -> None:
    """8-bit a (or contiguous i16 a: two byte pseudo-rows) and 8-bit b (any zero point: BZ
    = b_zp - b's offset) and K * 255 * 128 < 2^31 (and K <= MDK_MAX): the dot kernel; a
    32-bit a or b, a strided a or b, too large a K: the strip kernel."""
    from dataclasses import replace

    from opmlc.backend.convgen import _DOT_BOUND, MDK_MAX
    from opmlc.backend.kernel import Addr, Const, Load, Var

    ms_args = dict(batch=(), rows=3, cols=5, red=7, a=Load("i8", Addr(0, ((0, 7), (2, 1)))),
                   a_zp=-3, b=Load("i8", Addr(100, ((2, 5), (1, 1)))), b_zp=0, init=Const(0),
                   value=Var("acc"), y=Addr(200, ((0, 40), (1, 8))), y_dtype="i64",
                   bound=255 * 128)
    from opmlc.backend.kernel import MatSpec

    ms = MatSpec(**ms_args)
    p = mat_dot_plan(ms)
    assert p is not None and p.a_flip and not p.b_flip and p.a_zp_u8 == 125
    assert p.b_zp_s8 == 0 and mat_dot_plan(replace(ms, b_zp=1)).b_zp_s8 == 1
    ub = replace(ms, b=Load("u8", ms.b.addr))
    assert mat_dot_plan(ub).b_zp_s8 == -128 and mat_dot_plan(replace(ub, b_zp=128)).b_flip
    assert mat_dot_plan(replace(ms, a=Load("i16", ms.a.addr))) is None  # not contiguous
    a16 = mat_dot_plan(replace(ms, a=Load("i16", Addr(0, ((0, 14), (2, 2))))))
    assert a16 is not None and a16.a_bytes == 2 and a16.a_flip and a16.a_zp_u8 == 32765
    assert mat_dot_plan(replace(ms, a=Load("i32", Addr(0, ((0, 28), (2, 4)))))) is None
    b16 = mat_dot_plan(replace(ms, b=Load("i16", Addr(100, ((2, 10), (1, 2))))))
    assert b16.b_bytes == 2 and b16.b_zp_s8 == -128  # b = 256 bh + bl' + 128
    assert mat_dot_plan(replace(ms, b=Load("i16", Addr(100, ((2, 10), (1, 1)))))) is None
    assert mat_dot_plan(replace(ms, b=Load("i32", Addr(100, ((2, 20), (1, 4)))))) is None
    assert mat_dot_plan(replace(ms, a=Load("u8", Addr(0, ((0, 7), (2, 2)))))) is None
    assert mat_dot_plan(replace(ms, red=MDK_MAX)) is not None
    assert mat_dot_plan(replace(ms, red=MDK_MAX + 1)) is None
    assert MDK_MAX * _DOT_BOUND < 1 << 31
    assert (MDN, MDM) == (64, 6) and MDC % MDM == 0
