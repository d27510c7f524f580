"""A pseudo-dual-port block RAM whose read data is registered twice: inferred, or ECP5 DP16KD.

Why: an ECP5 block RAM read without its output register has a ~5.8 ns clock-to-out, and Yosys'
``synth_ecp5`` never maps the DP16KD output register (``REGMODE`` stays ``NOREG``), so every
component that registered RAM data in the fabric was capped near 110 MHz (LineBuffer 110.6,
DepthwiseEngine 114.8 MHz on an LFE5U-85F). The components already read "RAM, then a register":
read latency 2. This component keeps exactly that behaviour and, with ``primitive="ecp5"``,
makes the second register the DP16KD's own (``REGMODE_B = "OUTREG"``), as `RegisteredMultiplier`
does for the DSPs.

Behaviour (both primitives, cycle for cycle):

* write: on a clock edge with ``w_en`` high, ``w_data`` goes to ``w_addr``;
* read: on an edge with ``r_en`` high the word at ``r_addr`` is latched (a write to the same
  address on the same edge is not seen: the old word is latched); on an edge with ``r_oe``
  high that latched word moves to ``r_data``. So a word addressed at edge t with both enables
  high appears on ``r_data`` after edge t+1: latency 2. ``r_en`` and ``r_oe`` are separate so
  a stalling pipeline can hold each stage on its own enable (`LineBuffer`).
* contents start at zero; ``r_data`` starts at zero and has no reset (a DP16KD's reset would
  need ``RSTB`` on the output register; nothing here relies on the power-up value).

``primitive="ecp5"`` tiles the memory into DP16KD blocks, each 512 x 36 (pseudo-dual-port:
write on port A, read on port B, data split across both ports' pins as Yosys' own mapping does),
1024 x 18 or 2048 x 9, whichever needs the fewest blocks for the shape and depth (fewer depth
tiles on a tie). Words deeper than one block are spread over several blocks; their outputs are
selected by the block index of the address, registered alongside the data (one 2:1..n:1 mux
after the output register). Simulating needs ``verif/models/DP16KD.v``.
"""

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["BlockRAM", "RAM_PRIMITIVES", "ecp5_tiling"]

#: Accepted values of ``primitive``.
RAM_PRIMITIVES = ("infer", "ecp5")

#: Blocks sharing one copy of the registered inputs (``input_regs``, ``primitive="ecp5"``).
DUP_GROUP = 8

#: DP16KD aspect ratios used: (data bits, words). 36 is the pseudo-dual-port mode.
DP16KD_MODES = ((36, 512), (18, 1024), (9, 2048))


def ecp5_tiling(width, depth):
    """``(mode_width, mode_depth, width_tiles, depth_tiles)`` of the fewest DP16KD blocks."""
    if width < 1 or depth < 1:
        raise ValueError(f"width and depth must be positive, not {width!r} x {depth!r}")
    options = []
    for bits, words in DP16KD_MODES:
        wt, dt = -(-width // bits), -(-depth // words)
        options.append((wt * dt, dt, bits, words, wt))
    blocks, dt, bits, words, wt = min(options)
    return bits, words, wt, dt


class BlockRAM(wiring.Component):
    """``depth`` words of ``shape``: one write port, one read port with read latency 2.

    Parameters
    ----------
    shape : shape-castable
        The word (a ``Shape`` or a ``data`` layout; ``r_data`` is a view of it).
    depth : int
    primitive : str
        ``"infer"`` (an Amaranth `Memory` + a fabric register; portable, what plain simulation
        runs) or ``"ecp5"`` (DP16KD instances with their output register).
    input_regs : bool
        Register every input but ``r_oe`` first (one set of address/enable registers per 8
        DP16KD, kept apart in synthesis: see `DUP_GROUP`): everything happens one edge later,
        so the read latency is 3 and a write lands on the edge after the one that samples it.
        For wide memories, whose address otherwise fans out from one flip-flop to every block
        across the device (13 ns of routing for the 114-block PE weight buffer).

    Attributes
    ----------
    w_addr, w_data, w_en : In
        Write port.
    r_addr : In(range(depth))
    r_en : In(1, init=1)
        Latch the word at ``r_addr`` on this edge.
    r_oe : In(1, init=1)
        Move the latched word to ``r_data`` on this edge.
    r_data : Out(shape)
    """

    #: Enabled edges from ``r_addr`` to ``r_data`` (one with ``r_en``, one with ``r_oe``).
    LATENCY = 2

    def __init__(self, shape, depth, *, primitive="infer", input_regs=False):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        if primitive not in RAM_PRIMITIVES:
            raise ValueError(f"primitive must be one of {RAM_PRIMITIVES}, not {primitive!r}")
        self._shape = shape
        self._width = Shape.cast(shape).width
        if self._width < 1:
            raise ValueError(f"shape must have at least one bit, not {shape!r}")
        self._depth = depth
        self._primitive = primitive
        self._input_regs = bool(input_regs)
        super().__init__({
            "w_addr": In(range(depth)),
            "w_data": In(shape),
            "w_en": In(1),
            "r_addr": In(range(depth)),
            "r_en": In(1, init=1),
            "r_oe": In(1, init=1),
            "r_data": Out(shape),
        })

    @property
    def depth(self):
        return self._depth

    @property
    def primitive(self):
        return self._primitive

    @property
    def input_regs(self):
        return self._input_regs

    @property
    def latency(self):
        """Edges from ``r_addr`` to ``r_data``: 2, or 3 with ``input_regs``."""
        return self.LATENCY + self._input_regs

    def blocks(self):
        """DP16KD blocks of the ``"ecp5"`` build (0 for ``"infer"``; Yosys decides there)."""
        if self._primitive != "ecp5":
            return 0
        _, _, wt, dt = ecp5_tiling(self._width, self._depth)
        return wt * dt

    def elaborate(self, platform):
        m = Module()
        w_data = Signal(self._width)
        m.d.comb += w_data.eq(self.w_data.as_value() if isinstance(self.w_data, data.View)
                              else self.w_data)
        r_data = Signal(self._width)
        m.d.comb += (self.r_data.as_value() if isinstance(self.r_data, data.View)
                     else self.r_data).eq(r_data)

        def inputs(name):
            """(w_addr, w_en, r_addr, r_en) as the RAM sees them, registered with input_regs.

            Copies are named ``*_dup*``: scripts/synth.py keeps such flip-flops apart (Yosys
            would merge identical ones), one set per group of DP16KD, so that no address
            register drives every block of a wide memory (114 for the PE weight buffer).
            """
            ports = (self.w_addr, self.w_en, self.r_addr, self.r_en)
            if not self._input_regs:
                return ports
            regs = [Signal.like(v, name=f"{n}_dup{name}", reset_less=True)
                    for v, n in zip(ports, ("w_addr", "w_en", "r_addr", "r_en"))]
            m.d.sync += [r.eq(v) for r, v in zip(regs, ports)]
            return regs

        if self._input_regs:   # the data has one sink per bit: one register, shared
            w_data_q = Signal(self._width, reset_less=True)
            m.d.sync += w_data_q.eq(w_data)
            w_data = w_data_q

        if self._primitive == "infer":
            m.submodules.mem = mem = Memory(shape=self._width, depth=self._depth, init=[])
            wr, rd = mem.write_port(), mem.read_port()
            w_addr, w_en, r_addr, r_en = inputs("")
            m.d.comb += [wr.addr.eq(w_addr), wr.data.eq(w_data), wr.en.eq(w_en),
                         rd.addr.eq(r_addr), rd.en.eq(r_en)]
            out = Signal(self._width, reset_less=True)
            with m.If(self.r_oe):
                m.d.sync += out.eq(rd.data)
            m.d.comb += r_data.eq(out)
            return m

        bits, words, wt, dt = ecp5_tiling(self._width, self._depth)
        low = ceil_log2(words)                        # address bits inside one block
        groups = {}   # input copies per group of DUP_GROUP blocks (when input_regs)
        _, _, r_addr0, r_en0 = inputs("_sel")
        if dt > 1:  # the block index rides along with the data: latched with r_en, out with r_oe
            sel1 = Signal(range(dt), reset_less=True)
            sel2 = Signal(range(dt), reset_less=True)
            with m.If(r_en0):
                m.d.sync += sel1.eq(r_addr0[low:])
            with m.If(self.r_oe):
                m.d.sync += sel2.eq(sel1)
        outs = []
        for d in range(dt):
            row = []
            for w in range(wt):
                g = (d * wt + w) // DUP_GROUP
                if g not in groups:
                    groups[g] = inputs(str(g))
                w_addr, w_en, r_addr, r_en = groups[g]
                w_block = w_addr[low:] if dt > 1 else Const(0, 1)
                di = Signal(bits, name=f"di_{d}_{w}")
                do = Signal(bits, name=f"do_{d}_{w}")
                m.d.comb += di.eq(w_data[w * bits:(w + 1) * bits])
                we = w_en & (w_block == d)
                self._dp16kd(m, f"bram_{d}_{w}", bits, w_addr[:low], di, we,
                             r_addr[:low], r_en, do)
                row.append(do)
            outs.append(Cat(*row)[:self._width])
        word = outs[0]
        for d in range(1, dt):
            word = Mux(sel2 == d, outs[d], word)
        m.d.comb += r_data.eq(word)
        return m

    def _dp16kd(self, m, name, bits, w_addr, di, we, r_addr, r_en, do):
        """One DP16KD: write port A, read port B (36 bits: data on both ports' pins)."""
        # The word address sits at the top of the 14 address pins; below it, in the 36- and
        # 18-bit modes, the write port's low pins are byte-write enables (all bytes written).
        shift = {36: 5, 18: 4, 9: 3}[bits]
        wa = Cat(Const(0, shift), w_addr)
        ra = Cat(Const(0, shift), r_addr)
        ports = {}
        for k in range(14):
            ports[f"i_ADA{k}"] = wa[k] if k < len(wa) else 0
            ports[f"i_ADB{k}"] = ra[k] if k < len(ra) else 0
        for k in range({36: 4, 18: 2, 9: 0}[bits]):
            ports[f"i_ADA{k}"] = we if bits == 36 else 1
        dia, dib = Signal(18, name=f"{name}_dia"), Signal(18, name=f"{name}_dib")
        doa, dob = Signal(18, name=f"{name}_doa"), Signal(18, name=f"{name}_dob")
        if bits == 36:   # pseudo-dual-port: low half on the A pins, high half on the B pins
            m.d.comb += [dia.eq(di[:18]), dib.eq(di[18:]), do.eq(Cat(doa, dob))]
        else:
            m.d.comb += [dia.eq(di), do.eq(dob[:bits])]
        for k in range(18):
            ports |= {f"i_DIA{k}": dia[k], f"i_DIB{k}": dib[k],
                      f"o_DOA{k}": doa[k], f"o_DOB{k}": dob[k]}
        for k in range(3):
            ports |= {f"i_CSA{k}": 0, f"i_CSB{k}": 0}
        # 36 bits: read data leaves through both ports' output registers, so both are OUTREG
        # with the same enable (nextpnr times DOA by REGMODE_A and DOB by REGMODE_B).
        wide = bits == 36
        m.submodules[name] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=bits, p_DATA_WIDTH_B=bits,
            p_REGMODE_A="OUTREG" if wide else "NOREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
            i_CLKA=ClockSignal(), i_CEA=we, i_OCEA=self.r_oe if wide else 0,
            i_WEA=1 if wide else we, i_RSTA=0,
            i_CLKB=ClockSignal(), i_CEB=r_en, i_OCEB=self.r_oe, i_WEB=0, i_RSTB=0,
            **ports,
        )
