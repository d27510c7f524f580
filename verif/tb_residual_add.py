"""cocotb testbench of `ResidualAdd` against verif/golden `add` (TFLite int8 ADD).

The pytest side writes a case (lanes, and per phase: the ADD parameters, int8 operand arrays,
stall probabilities, expected output from the golden model) with `write_case` to an ``.npz``
whose path arrives in ``$RADD_CASE``. Phases run back to back: the parameters change only
while the component is empty, as `PointwiseArray` guarantees (they are per-run constants).
"""

import json
import os
import random

import cocotb
import numpy as np
from amaranth import signed, unsigned
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from dwfuse.hdl.residual_add import PARAMS_LAYOUT
from dwfuse.verif.golden.arithmetic import quantize_multiplier_smaller_than_one_exp
from dwfuse.verif.golden.ops import add
from dwfuse.verif.streams import StreamSink, StreamSource, pack

__all__ = ["make_phase", "write_case", "read_case", "CASE_ENV"]

CASE_ENV = "RADD_CASE"
LEFT_SHIFT = 20  # TFLite's int8 ADD


def make_phase(rng, *, beats, lanes, kind="tflite", idle=0.3, stall=0.3):
    """Random operands and parameters; ``kind`` "tflite" derives them as TFLite's Prepare does,
    "extreme" takes any int32 multipliers and shifts in [-32, 31] (the golden model's domain)."""
    a = rng.integers(-128, 128, (beats, lanes), dtype=np.int8)
    b = rng.integers(-128, 128, (beats, lanes), dtype=np.int8)
    zp = [int(v) for v in rng.choice([-128, 127, *rng.integers(-128, 128, 4)], 3)]
    if kind == "tflite":
        s_a, s_b = np.exp(rng.uniform(-4, 0, 2))
        s_out = max(s_a, s_b) * np.exp(rng.uniform(-1, 2))
        twice = 2 * max(s_a, s_b)
        (am, ash), (bm, bsh), (om, osh) = (quantize_multiplier_smaller_than_one_exp(r) for r in (
            s_a / twice, s_b / twice, twice / ((1 << LEFT_SHIFT) * s_out)))
    elif kind == "extreme":
        m = [int(v) for v in rng.choice([0, 1 << 30, (1 << 31) - 1, -(1 << 31), *rng.integers(-(1 << 31), 1 << 31, 3)], 3)]
        s = [int(v) for v in rng.choice([-32, -31, -20, -1, 0, 1, 5, 31], 3)]
        (am, bm, om), (ash, bsh, osh) = m, s
    else:
        raise ValueError(f"kind must be 'tflite' or 'extreme', not {kind!r}")
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2)) if rng.random() < 0.3 else (-128, 127)
    params = dict(a_zp=zp[0], b_zp=zp[1], out_zp=zp[2], a_multiplier=am, a_shift=ash, b_multiplier=bm,
                  b_shift=bsh, out_multiplier=om, out_shift=osh, act_min=lo, act_max=hi)
    expected = add(a, b, left_shift=LEFT_SHIFT, **params)
    return dict(a=a, b=b, expected=expected, params=params, idle=idle, stall=stall)


def write_case(path, lanes, phases):
    arrays = {f"p{n}_{k}": ph[k] for n, ph in enumerate(phases) for k in ("a", "b", "expected")}
    meta = {"lanes": lanes, "phases": [{k: ph[k] for k in ("params", "idle", "stall")} for ph in phases]}
    np.savez(path, meta=json.dumps(meta), **arrays)


def read_case(path):
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        phases = [{**ph, **{k: f[f"p{n}_{k}"] for k in ("a", "b", "expected")}} for n, ph in enumerate(meta["phases"])]
    return meta["lanes"], phases


@cocotb.test()
async def residual_add_phases(dut):
    lanes, phases = read_case(os.environ[CASE_ENV])
    rng = random.Random(int(os.environ["COCOTB_RANDOM_SEED"]))
    in_layout = data.StructLayout({"a": data.ArrayLayout(signed(8), lanes),
                                   "b": data.ArrayLayout(signed(8), lanes), "tag": unsigned(8)})
    out_layout = data.StructLayout({"data": data.ArrayLayout(signed(8), lanes), "tag": unsigned(8)})
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    src = StreamSource(dut, "i", in_layout, dut.clk, rng)
    sink = StreamSink(dut, "o", out_layout, dut.clk, rng)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    for n, ph in enumerate(phases):
        dut.params.value = pack(PARAMS_LAYOUT, ph["params"])
        src.idle, sink.stall = ph["idle"], ph["stall"]
        beats = [{"a": [int(v) for v in a], "b": [int(v) for v in b], "tag": q % 256}
                 for q, (a, b) in enumerate(zip(ph["a"], ph["b"]))]
        feeder = cocotb.start_soon(src.send(beats))
        got = await sink.receive(len(beats), timeout_cycles=100 + 20 * len(beats))
        await feeder
        assert [g["tag"] for g in got] == [q % 256 for q in range(len(beats))], f"phase {n}: tags out of order"
        out = np.array([g["data"] for g in got])
        exp = ph["expected"].astype(np.int64)
        if not np.array_equal(out, exp):
            q, k = np.argwhere(out != exp)[0]
            raise AssertionError(
                f"phase {n} {ph['params']}: {int((out != exp).sum())} of {out.size} differ; beat {q} lane {k}: "
                f"a={ph['a'][q, k]} b={ph['b'][q, k]} got {out[q, k]}, golden {exp[q, k]}")
        await RisingEdge(dut.clk)
