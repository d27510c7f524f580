"""What the FPGA flow can build: a registry of named designs, and the synthesis harness.

``scripts/generate_verilog.py`` and ``scripts/synth.py`` take ``--design NAME``; this module maps
the name to a constructor taking a `Config`, so the scripts, their tests and any benchmark agree
on what "pointwise at the ecp5 preset" means.

Registry
--------
Each entry names the ``hdl/`` module it needs. An entry whose module is not in the tree yet is
simply not *available* (components land one by one); a module that is there but fails to import
raises, as it should. ``available()`` lists what can be built now.

``datapath`` puts every available dataflow stage (line buffer, depthwise engine, PE array) side
by side in one component, unconnected: enough for a resource estimate of the datapath before the
top exists. The standalone ``requant`` is left out of it because the PE array and the depthwise
engine each contain their own requantizers.

Primitives: ``build(name, config, dsp=...)`` passes ``dsp`` (``"infer"`` or ``"ecp5"``, see
``hdl/multiplier.py``) to the components that take it, and with ``dsp="ecp5"`` also builds
their block RAMs as ECP5 primitives (``ram="ecp5"``, see ``hdl/block_ram.py``). Yosys packs no
registers into ECP5 DSPs and never maps a DP16KD output register, so ECP5 timing needs both
(explicit MULT18X18D and DP16KD with their own registers); Verilator then needs
``verif/models/MULT18X18D.v`` and ``DP16KD.v``. Xilinx synthesis packs by itself: "infer".
Which multiplier *roles* use LUTs instead of DSPs is the Config's choice
(``Config.lut_multipliers``), not the build's.

``engine`` is the `LayerEngine` (``hdl/engine.py``): line buffer, depthwise engine and PE array
connected per run-time layer mode. ``top`` is the `Accelerator` (``hdl/top.py``: the engine
behind its sequencer, DMA, AXI4-Lite registers and AXI4 master), the default design: what an
FPGA build instantiates. In the harness the engine's 3,860 input bits (weight, parameter and
table loads, cfg) come from one shift register; the top's are its 139 AXI and control bits.

Synthesis harness
-----------------
A datapath component has thousands of port bits, an LFE5U-85F on CABGA381 about 365 user I/O.
`SynthHarness` wraps a component so that only four pins remain (``clk``, ``rst``, ``si``,
``so``) while none of the component's logic can be optimised away:

* every input bit of the component is one bit of a serial-in shift register fed from pin
  ``si``: each input is a distinct register of unknown value, so no input is constant and no
  two inputs are equal (equal inputs would let Yosys merge duplicated lanes);
* every output bit goes into a registered XOR tree (4 bits per LUT4 per stage) whose last
  register drives pin ``so``: every output is observable, and the tree adds one LUT level per
  cycle, so it never limits Fmax;
* ``rst`` is registered once before it reaches the component, as a real top's reset would be.

Overhead, included in the figures: one flip-flop per input bit, about a third of a LUT4 and a
third of a flip-flop per output bit, plus one flip-flop for the reset. A design whose outputs
include the same signal twice would see those two cancel in the XOR; components do not do that.
"""

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Callable

from amaranth import Cat, ClockDomain, Module, Signal, Value
from amaranth.hdl import Elaboratable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, flipped

from .config import Config

__all__ = ["Design", "DESIGNS", "DSP_KINDS", "DATAPATH_STAGES", "DEFAULT_DESIGN", "available", "build",
           "Datapath", "SynthHarness", "port_bits", "ram_kind"]

_PACKAGE = __name__.rpartition(".")[0]  # "dwfuse.hdl"


def _load(module):
    return importlib.import_module(f"{_PACKAGE}.{module}")


@dataclass(frozen=True)
class Design:
    """One buildable design.

    Parameters
    ----------
    module : str
        The ``hdl/`` module it needs (the entry is available once that file exists).
    make : callable
        ``make(config, dsp) -> wiring.Component``; components without multipliers ignore ``dsp``.
    """

    module: str
    make: Callable[[Config, str], wiring.Component]

    def landed(self):
        return importlib.util.find_spec(f"{_PACKAGE}.{self.module}") is not None


#: Accepted values of ``dsp`` (as ``hdl/multiplier.py``'s ``DSP_KINDS``).
DSP_KINDS = ("infer", "ecp5")


def ram_kind(dsp):
    """The `BlockRAM` primitive that goes with multiplier kind ``dsp``: ECP5 builds use both."""
    return "ecp5" if dsp == "ecp5" else "infer"


def _requantizer(config, dsp):
    from amaranth import unsigned
    return _load("requant").Requantizer(config.requant_lanes, unsigned(1), dsp=dsp)


#: Named designs. ``datapath`` is handled by `build`; see the module docstring.
DESIGNS = {
    "requant": Design("requant", _requantizer),
    "linebuffer": Design("linebuffer",
                         lambda config, dsp: _load("linebuffer").LineBuffer(config, ram=ram_kind(dsp))),
    "depthwise": Design("depthwise",
                        lambda config, dsp: _load("depthwise").DepthwiseEngine(config, dsp=dsp)),
    "pointwise": Design("pointwise",
                        lambda config, dsp: _load("pointwise").PointwiseArray(config, dsp=dsp)),
    "engine": Design("engine", lambda config, dsp: _load("engine").LayerEngine(config, dsp=dsp)),
    "top": Design("top", lambda config, dsp: _load("top").Accelerator(config, dsp=dsp)),
}

#: Registry names that `Datapath` puts side by side (when available), in dataflow order.
DATAPATH_STAGES = ("linebuffer", "depthwise", "pointwise")


def available():
    """Names of the designs that can be built now (``datapath`` when any stage exists)."""
    names = [name for name, design in DESIGNS.items() if design.landed()]
    if any(name in names for name in DATAPATH_STAGES):
        names.append("datapath")
    return names


def _default():
    names = available()
    for name in ("top", "engine", "datapath", "requant"):
        if name in names:
            return name
    return names[0] if names else None


#: What the scripts build without ``--design``: the top once registered, else the engine.
DEFAULT_DESIGN = _default()


def build(name, config, *, dsp="infer"):
    """A fresh instance of design ``name`` for ``config``, multipliers of kind ``dsp``.

    Raises KeyError naming the available designs when ``name`` is unknown or not landed yet.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    if dsp not in DSP_KINDS:
        raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
    names = available()
    if name not in names:
        raise KeyError(f"unknown or not yet available design {name!r}; available: {', '.join(names)}")
    if name == "datapath":
        return Datapath(config, dsp=dsp)
    return DESIGNS[name].make(config, dsp)


class Datapath(wiring.Component):
    """Every available dataflow stage side by side, unconnected, for resource estimates.

    Each stage's interface is exposed unchanged under the stage's name (``pointwise__i__valid``
    etc. in Verilog), so nothing is left undriven or unobserved. Not a functional design: the
    top (issue 4) connects the stages; this only answers "what does the datapath cost".

    Parameters
    ----------
    config : Config
    stages : sequence of str, optional
        Registry names; default every available name in `DATAPATH_STAGES`.
    dsp : str
        Multiplier kind passed to every stage (see `build`).
    """

    def __init__(self, config, stages=None, *, dsp="infer"):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if stages is None:
            stages = [name for name in DATAPATH_STAGES if DESIGNS[name].landed()]
        stages = list(stages)
        if not stages:
            raise ValueError(f"no datapath stage is available, not {stages!r}")
        for name in stages:
            if name not in DESIGNS or name == "datapath":
                raise ValueError(f"stage must be a registered component, not {name!r}")
        self._config = config
        if dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {DSP_KINDS}, not {dsp!r}")
        self._stages = {name: DESIGNS[name].make(config, dsp) for name in stages}
        super().__init__({name: Out(sub.signature) for name, sub in self._stages.items()})

    @property
    def config(self):
        return self._config

    @property
    def stages(self):
        return tuple(self._stages)

    def elaborate(self, platform):
        m = Module()
        for name, sub in self._stages.items():
            m.submodules[name] = sub
            wiring.connect(m, flipped(getattr(self, name)), sub)
        return m


def port_bits(component):
    """``(inputs, outputs)``: lists of ``(name, Value)`` of a component's flattened ports."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be a wiring.Component, not {component!r}")
    inputs, outputs = [], []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        (inputs if member.flow == wiring.In else outputs).append((name, Value.cast(value)))
    return inputs, outputs


class SynthHarness(Elaboratable):
    """Four-pin wrapper that keeps all of a component's logic live (see the module docstring).

    Ports: ``clk``, ``rst``, ``si`` (serial input), ``so`` (XOR of every output bit, pipelined).

    Parameters
    ----------
    design : wiring.Component
        Uses only the ``sync`` clock domain.
    fan_in : int
        Output bits XORed per register of the reduction tree (4 = one ECP5 LUT4).
    """

    def __init__(self, design, fan_in=4):
        if not isinstance(design, wiring.Component):
            raise TypeError(f"design must be a wiring.Component, not {design!r}")
        if not isinstance(fan_in, int) or fan_in < 2:
            raise ValueError(f"fan_in must be an integer >= 2, not {fan_in!r}")
        self.design = design
        self.fan_in = fan_in
        self.clk = Signal()
        self.rst = Signal()
        self.si = Signal()
        self.so = Signal()
        inputs, outputs = port_bits(design)
        self.input_bits = sum(len(v) for _, v in inputs)
        self.output_bits = sum(len(v) for _, v in outputs)
        if self.output_bits == 0:
            raise ValueError(f"design {design!r} has no outputs to observe")

    @property
    def ports(self):
        return [self.clk, self.rst, self.si, self.so]

    def reduction_registers(self):
        """Flip-flops of the XOR tree (its stages' widths summed)."""
        total, width = 0, self.output_bits
        while True:
            width = -(-width // self.fan_in)
            total += width
            if width == 1:
                return total

    def overhead(self):
        """Harness cost in generic cells: flip-flops exactly, LUTs as XOR groups (upper bound)."""
        ffs = self.input_bits + self.reduction_registers() + 1
        return {"input_bits": self.input_bits, "output_bits": self.output_bits,
                "ff": ffs, "xor_luts": self.reduction_registers()}

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += cd.clk.eq(self.clk)
        rst_q = Signal(reset_less=True)
        m.d.sync += rst_q.eq(self.rst)
        m.d.comb += cd.rst.eq(rst_q)

        m.submodules.dut = dut = self.design
        inputs, outputs = port_bits(dut)

        if self.input_bits:
            chain = Signal(self.input_bits, reset_less=True)
            m.d.sync += chain.eq(Cat(self.si, chain[:-1]))
            offset = 0
            for _, value in inputs:
                m.d.comb += value.eq(chain[offset:offset + len(value)])
                offset += len(value)

        level = Cat(*(value for _, value in outputs))
        stage = 0
        while True:
            groups = [level[i:i + self.fan_in] for i in range(0, len(level), self.fan_in)]
            reg = Signal(len(groups), name=f"xor_stage{stage}", reset_less=True)
            m.d.sync += reg.eq(Cat(*(g.xor() for g in groups)))
            level, stage = reg, stage + 1
            if len(level) == 1:
                break
        m.d.comb += self.so.eq(level)
        return m
