"""cocotb testbench of `DepthwiseEngine`: random depthwise layers against verif/golden.

The pytest wrapper (tests/test_depthwise.py) builds the engine for a `Config` preset and passes
its name in ``DW_CONFIG``; everything else (shapes, zero points, parameters, stalls) comes from
cocotb's seed (``COCOTB_RANDOM_SEED``), which run_cocotb prints on failure.

Windows are made here in Python from a random input tensor, the way the `LineBuffer` makes them
(3x3 neighbourhood per output pixel and chunk, padded with the input zero point, (out_row,
out_col, chunk) order), and the expected words come from
``verif.golden.ops.depthwise_conv2d`` on the same tensor. The helpers (`random_layer`,
`make_windows`, `expected_words`, `LayerCase`) are importable for other benches.
"""

import json
import os
import random
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from dwfuse.hdl.config import preset
from dwfuse.hdl.depthwise import (cfg_layout, output_layout, pack_params, param_layout,
                                  window_layout)
from dwfuse.verif.golden.arithmetic import quantize_multiplier
from dwfuse.verif.golden.ops import conv_padding, depthwise_conv2d
from dwfuse.verif.streams import StreamSink, StreamSource, pack

__all__ = ["LayerCase", "random_layer", "make_windows", "expected_words", "run_layers"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass
class LayerCase:
    """One depthwise layer: input, parameters, and what the engine must output."""

    x: np.ndarray          # (H, W, C) int8
    weights: np.ndarray    # (1, 3, 3, C) int8
    bias: np.ndarray       # (C,) int32
    multiplier: np.ndarray  # (C,) int32
    shift: np.ndarray      # (C,)
    stride: int
    padding: str
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int

    def describe(self):
        h, w, c = self.x.shape
        return (f"{h}x{w}x{c} stride {self.stride} {self.padding} in_zp {self.in_zp} "
                f"out_zp {self.out_zp} act [{self.act_min}, {self.act_max}] "
                f"shift [{self.shift.min()}, {self.shift.max()}]")

    def cfg(self):
        return {"in_zp": self.in_zp, "out_zp": self.out_zp,
                "act_min": self.act_min, "act_max": self.act_max}


def _zero_point(rng):
    return int(rng.choice([-128, 127, rng.integers(-128, 128)]))


def _requant_params(rng, c, mode):
    """Per-channel (multiplier, shift): TFLite-style scales, scales >= 1, or the raw extremes."""
    if mode == "extreme":
        special = np.array([INT32_MIN, INT32_MAX, 0, 1, -1, 1 << 30, -(1 << 30)], np.int64)
        mult = np.where(rng.random(c) < 0.5, rng.choice(special, c),
                        rng.integers(INT32_MIN, INT32_MAX, c, endpoint=True))
        shift = rng.choice(np.array([-32, -31, 31, 30, 0, 1, -1]), c)
        shift = np.where(rng.random(c) < 0.5, shift, rng.integers(-32, 32, c))
        return mult.astype(np.int64), shift.astype(np.int64)
    lo, hi = (-6.0, 0.7) if mode == "tflite" else (0.0, 2.5)  # "large": effective scale >= 1
    reals = 10.0 ** rng.uniform(lo, hi, c)
    pairs = [quantize_multiplier(r) for r in reals]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def random_layer(rng, config, *, h=None, w=None, c=None, stride=None, padding=None,
                 requant=None, values=None):
    """A random depthwise layer for ``config``; keyword arguments pin single properties.

    ``values``: "random" int8 data, or "corner" (only -128 and 127, for the largest sums).
    """
    padding = padding or str(rng.choice(["SAME", "VALID"]))
    lo = 3 if padding == "VALID" else 1
    h = h or int(rng.integers(lo, 10))
    w = w or int(rng.integers(lo, 10))
    if c is None:
        c = int(rng.integers(1, min(config.max_channels, 6 * config.lanes) + 1))
        if c % config.lanes == 0 and rng.random() < 0.7:
            c = max(1, c - 1)  # mostly not a multiple of lanes
    stride = stride or int(rng.choice([1, 2]))
    values = values or str(rng.choice(["random", "random", "corner"]))
    requant = requant or str(rng.choice(["tflite", "large", "extreme"]))

    def int8(shape):
        if values == "corner":
            return rng.choice(np.array([-128, 127], np.int8), shape)
        return rng.integers(-128, 128, shape).astype(np.int8)

    x, weights = int8((h, w, c)), int8((1, 3, 3, c))
    bias = rng.integers(-(1 << 16), 1 << 16, c)
    if rng.random() < 0.3:  # near the int32 limits: the accumulator wraps as in C++
        bias = rng.choice(np.array([INT32_MIN, INT32_MIN + 5, INT32_MAX, INT32_MAX - 5]), c)
    mult, shift = _requant_params(rng, c, requant)
    act_min = int(rng.integers(-128, 128)) if rng.random() < 0.5 else -128
    act_max = int(rng.integers(act_min, 128)) if rng.random() < 0.5 else 127
    return LayerCase(x=x, weights=weights, bias=bias.astype(np.int64), multiplier=mult,
                     shift=shift, stride=stride, padding=padding, in_zp=_zero_point(rng),
                     out_zp=_zero_point(rng), act_min=act_min, act_max=act_max)


def make_windows(x, stride, padding, in_zp, config, rng=None):
    """The `LineBuffer`'s windows over ``x`` (H, W, C): a list of `window_layout` payload dicts.

    Channels are padded to a multiple of ``lanes`` with random junk when ``rng`` is given (their
    weights are zero, so the engine must ignore them), spatial padding holds ``in_zp``.
    """
    h, w, c = x.shape
    lanes = config.lanes
    chunks = -(-c // lanes)
    junk = (rng.integers(-128, 128, (h, w, chunks * lanes - c)) if rng is not None
            else np.zeros((h, w, chunks * lanes - c), np.int64))
    xc = np.concatenate([x.astype(np.int64), junk], axis=2)
    oh, top, bottom = conv_padding(h, 3, stride, 1, padding)
    ow, left, right = conv_padding(w, 3, stride, 1, padding)
    xp = np.pad(xc, ((top, bottom), (left, right), (0, 0)), constant_values=in_zp)
    out = []
    for r in range(oh):
        for col in range(ow):
            win = xp[r * stride:r * stride + 3, col * stride:col * stride + 3]  # (3, 3, C')
            taps = win.reshape(9, chunks, lanes)
            for k in range(chunks):
                out.append({"taps": taps[:, k].tolist(), "chunk": k, "last": 0})
    if out:
        out[-1]["last"] = 1
    return out


def expected_words(case, config):
    """The golden output as `output_layout` payload dicts, in window order.

    Padded lanes (channels past C) hold ``clip(out_zp, act_min, act_max)``: zero weights, bias
    and multiplier give a zero accumulator.
    """
    y = depthwise_conv2d(case.x[None], case.weights, case.bias, in_zp=case.in_zp,
                         out_zp=case.out_zp, multiplier=case.multiplier, shift=case.shift,
                         stride=(case.stride, case.stride), padding=case.padding,
                         act_min=case.act_min, act_max=case.act_max)[0]
    oh, ow, c = y.shape
    lanes = config.lanes
    chunks = -(-c // lanes)
    fill = int(np.clip(case.out_zp, case.act_min, case.act_max))
    yp = np.concatenate([y.astype(np.int64), np.full((oh, ow, chunks * lanes - c), fill)], axis=2)
    words = yp.reshape(oh * ow * chunks, lanes)
    out = [{"data": row.tolist(), "last": 0} for row in words]
    if out:
        out[-1]["last"] = 1
    return out


def _first_mismatch(got, want, chunks, ow):
    for n, (g, e) in enumerate(zip(got, want)):
        if g != e:
            pix, k = divmod(n, chunks)
            return f"word {n} (out row {pix // ow}, col {pix % ow}, chunk {k}): got {g}, want {e}"
    return f"{len(got)} words, want {len(want)}"


async def reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.pload__valid.value = 0
    dut.o__ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def run_layers(dut, config, cases, rng, *, idle=0.3, stall=0.3, pload_idle=None):
    """Run ``cases`` back to back, checking every word against the golden model.

    Each layer's parameters are sent as soon as the previous layer's last window has been taken
    (overlapping that layer's drain, which the engine must make safe); ``cfg`` changes once the
    previous layer's last word has been received.
    """
    src_i = StreamSource(dut, "i", window_layout(config), dut.clk, rng, idle=idle)
    src_p = StreamSource(dut, "pload", param_layout(config), dut.clk, rng,
                         idle=idle if pload_idle is None else pload_idle)
    sink = StreamSink(dut, "o", output_layout(config), dut.clk, rng, stall=stall)
    nprng = np.random.default_rng(rng.randrange(1 << 32))
    pending = None

    async def check(task, case, want):
        got = await task
        chunks = -(-case.x.shape[2] // config.lanes)
        ow = conv_padding(case.x.shape[1], 3, case.stride, 1, case.padding)[0]
        assert got == want, (f"layer {case.describe()}: "
                             f"{_first_mismatch(got, want, chunks, ow)}")

    for n, case in enumerate(cases):
        dut._log.info(f"layer {n}: {case.describe()}")
        await src_p.send(pack_params(case.weights, case.bias, case.multiplier, case.shift, config))
        if pending is not None:
            await check(*pending)
        dut.cfg.value = pack(cfg_layout(), case.cfg())
        windows = make_windows(case.x, case.stride, case.padding, case.in_zp, config, nprng)
        want = expected_words(case, config)
        task = cocotb.start_soon(sink.receive(len(want), timeout_cycles=40 * len(want) + 2000))
        await src_i.send(windows)
        pending = (task, case, want)
    await check(*pending)


def _setup():
    config = preset(os.environ.get("DW_CONFIG", "tiny"))
    seed = int(os.environ["COCOTB_RANDOM_SEED"])
    return config, random.Random(seed), np.random.default_rng(seed)


@cocotb.test()
async def random_layers_with_stalls(dut):
    """Three random layers back to back, reloaded parameters, stalls on i, pload and o."""
    config, rng, nprng = _setup()
    await reset(dut)
    cases = [random_layer(nprng, config) for _ in range(3)]
    await run_layers(dut, config, cases, rng, idle=rng.choice([0.2, 0.5]),
                     stall=rng.choice([0.2, 0.5]))


@cocotb.test()
async def corners(dut):
    """Largest sums, every requantization mode, and the last chunk of the parameter RAM."""
    config, rng, nprng = _setup()
    await reset(dut)
    cases = [
        random_layer(nprng, config, values="corner", requant="extreme"),
        random_layer(nprng, config, values="corner", requant="large", stride=2, padding="SAME"),
        # every chunk address: a 2x2 input with max_channels - 1 channels
        random_layer(nprng, config, h=2, w=2, c=config.max_channels - 1, padding="SAME",
                     stride=1, requant="tflite"),
        random_layer(nprng, config, h=3, w=4, padding="VALID", requant="extreme"),
    ]
    await run_layers(dut, config, cases, rng, idle=0.3, stall=0.3)


@cocotb.test()
async def reload_under_backpressure(dut):
    """Parameters reloaded while the previous layer's last windows sit in a frozen pipeline.

    One-chunk layers (every window and the first ``pload`` beat use chunk 0), windows and
    ``pload`` beats without gaps and an output that is mostly stalled, so the previous layer's
    last window creeps through every stage while the reload waits; then single-window layers,
    whose window is alone in the engine. A reload that overwrote a parameter a window has yet
    to read shows up as a wrong word.
    """
    config, rng, nprng = _setup()
    await reset(dut)
    # 36 windows: more than the engine holds (~26), so the pipeline does fill and freeze
    cases = [random_layer(nprng, config, h=6, w=6, c=int(nprng.integers(1, config.lanes + 1)),
                          stride=1, padding="SAME") for _ in range(6)]
    # single-window layers: the reload races a window that is alone in the pipeline
    cases += [random_layer(nprng, config, h=1, w=1, c=int(nprng.integers(1, config.lanes + 1)),
                           padding="SAME") for _ in range(6)]
    await run_layers(dut, config, cases, rng, idle=0.0, stall=0.85, pload_idle=0.0)


@cocotb.test()
async def throughput_without_stalls(dut):
    """No stalls: one window per cycle and the documented latency (a cycle count, not a timer).

    Checks the latency against ``$DW_LATENCY`` (`DepthwiseEngine.latency`) if set, and writes
    {"windows", "cycles", "latency", "cycles_per_window"} to ``$DW_BENCH_OUT`` if set.
    """
    config, rng, nprng = _setup()
    await reset(dut)
    case = random_layer(nprng, config, h=8, w=8, c=4 * config.lanes - 1, stride=1,
                        padding="SAME")
    n_windows = 8 * 8 * 4
    fire_i, fire_o = [], []

    async def monitor():
        cycle = 0
        while True:
            await ReadOnly()
            if dut.i__valid.value and dut.i__ready.value:
                fire_i.append(cycle)
            if dut.o__valid.value and dut.o__ready.value:
                fire_o.append(cycle)
            await RisingEdge(dut.clk)
            cycle += 1

    mon = cocotb.start_soon(monitor())
    await run_layers(dut, config, [case], rng, idle=0.0, stall=0.0)
    mon.cancel()
    latency = fire_o[0] - fire_i[0]
    cycles = fire_o[-1] - fire_i[0] + 1
    result = {"config": config.name, "windows": n_windows, "cycles": cycles, "latency": latency,
              "cycles_per_window": (fire_o[-1] - fire_o[0]) / (n_windows - 1)}
    dut._log.info(f"throughput: {result}")
    if os.environ.get("DW_BENCH_OUT"):
        with open(os.environ["DW_BENCH_OUT"], "w") as fh:
            json.dump(result, fh)
    assert len(fire_i) == len(fire_o) == n_windows
    assert fire_i[-1] - fire_i[0] == n_windows - 1, "input stalled without backpressure"
    assert fire_o[-1] - fire_o[0] == n_windows - 1, "output not one word per cycle"
    if os.environ.get("DW_LATENCY"):
        assert latency == int(os.environ["DW_LATENCY"]), f"latency {latency}"
