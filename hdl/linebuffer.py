"""Line buffer: turns a stream of activation words into 3x3 windows, on chip.

Why it exists: a depthwise 3x3 conv reads every input pixel up to 9 times. Keeping the last few
rows in block RAM means each pixel crosses the DRAM bus once, and in a fused MobileNetV2 block the
PE array's expand output goes straight in here, so the widest tensor of the block never leaves the
chip. The same windows, read as one 9 x channels vector, are the im2col input of a standard 3x3
conv on the PE array.

Dataflow (one run; NHWC, a *word* is `lanes` int8 channels of one pixel):

- input: ``width * height * chunks`` words in (row, column, chunk) order, one per cycle at best;
- output: one window per (out_row, out_col, chunk) in that order, one per cycle at best; its 9
  taps are in TFLite filter order (``dy * 3 + dx``) and padded positions hold ``pad_value`` (the
  input zero point, so they add nothing once the engine subtracts it).

Memory organisation. ``line_rows`` row *slots* (input row ``r`` lives in slot ``r % line_rows``),
each split into 3 *banks* by ``column % 3``: the 3 columns of a window always sit in 3 different
banks, and its 3 rows in 3 different slots, so one cycle's 9 taps come from 9 different memories.
Each (slot, bank) pair is one `BlockRAM` of `bank_depth` words with one write port and one
registered, non-transparent read port (a pseudo-dual-port block RAM); column ``c``, chunk ``k``
sits at address ``(c // 3) * chunks + k``. Packing by the run-time ``chunks`` (not by
``max_chunks``) means a row fits when ``ceil(width / 3) * chunks <= bank_depth``, so narrow rows
may have many channels and wide rows few (see `LineBuffer.fits`).

Flow control works at (row, column) granularity rather than whole rows, which is what lets 4 slots
sustain one window per cycle:

- a window is issued only when the producer (input side) has written every column it needs of
  the bottom-most row it needs, i.e. row ``min(r0 + 2, height - 1)`` up to column
  ``min(c0 + 2, width - 1)`` (``r0``, ``c0``: the window's top-left input coordinates);
- an input word for row ``j`` overwrites row ``j - line_rows`` in the same slot, so it is
  accepted only when no window still to be issued reads that row at that column: the row is above
  the current out-row's first row, or it is finished by the current out-row (one of its first
  ``stride`` rows) and the word's column is left of the current window's first column.

Since a window needs rows up to ``r0 + 2`` and the producer can only be blocked on rows at least
``r0 + line_rows >= r0 + 3``, the two conditions never wait on each other (no deadlock).

Timing. A window issued in cycle t reads the memories in t; the words sit in the RAMs' read
latches in t+1 and in their output registers in t+2 (`BlockRAM`: an ECP5 block RAM read
straight from its latch has a ~6 ns clock-to-out); the slot/bank muxes and padding fill the
output register, valid from t+3. Input words are written one cycle after they are taken (the
RAM write port is registered), and a window is issued at the earliest the cycle after its last
input word is written, so the latency from that word to the window is 5 cycles. With no
stalls, stride 1 sustains one window per cycle while the input takes one word per cycle
(``out_width * chunks`` windows per ``width * chunks`` words: exactly 1 for SAME;
``(width - 2) / width`` for VALID, where the input is the bottleneck). Stride 2 emits about a
quarter as many windows as it takes words and, in steady state, never refuses input: the 4th
slot fills while the other three are read, and an out-row's windows are done before the second
of its two new rows is complete.

Measured (ecp5 preset, ``ram="ecp5"``, ``python scripts/synth.py --config ecp5 --target ecp5
--design linebuffer``, LFE5U-85F, in the synthesis harness): 24 DP16KD, 4.7k TRELLIS_COMB,
1.3k flip-flops; 121.9 MHz (110.6 in the previous session with inferred RAMs, read without
their output register; 94.9 with DP16KD output registers but the write port unregistered). The
critical path is now the flow control: a run-time compare of a consumer counter with the
producer's progress (carry chain) → ``issue`` → the counters' enables. 150 MHz needs
``data_ready`` and ``slot_free`` computed a cycle ahead into flip-flops (for the current and the
next pixel, selected by whether this cycle's window moves on), not these compares in front of
the enables.
"""

from typing import NamedTuple

from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from .block_ram import RAM_PRIMITIVES, BlockRAM
from .config import Config

__all__ = ["LineBuffer", "WindowGeometry", "window_geometry", "MAX_PAD"]

#: Largest padding on any side. 1 covers 3x3 SAME / VALID / PAD(1,1); 2 costs nothing extra
#: (a window then still overlaps at least one real row and column, which the flow control needs).
MAX_PAD = 2


class WindowGeometry(NamedTuple):
    """Output size and padding of a 3x3 window over a ``width x height`` input."""

    out_width: int
    out_height: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int


def window_geometry(width, height, stride, padding):
    """Output size and pads of a 3x3 window pass, as TFLite defines them.

    Parameters
    ----------
    width, height : int
        Input size in pixels.
    stride : int
        1 or 2 (the same in both directions).
    padding : str or tuple
        ``"SAME"`` or ``"VALID"`` (TFLite's rules, via `verif.golden.ops.conv_padding`: SAME puts
        the odd extra row/column after), or explicit ``(top, bottom, left, right)`` as a PAD op
        folded into the conv gives.

    Returns
    -------
    WindowGeometry
        ``out = (in + before + after - 3) // stride + 1`` on each axis.

    Raises
    ------
    ValueError
        When a size, stride or pad is out of range or no window fits.
    """
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, not {stride!r}")
    if isinstance(padding, str):
        # One definition of SAME/VALID for software, tests and hardware configuration. Imported
        # here so that importing the gateware does not pull in numpy.
        from ..verif.golden.ops import conv_padding
        _, top, bottom = conv_padding(height, 3, stride, 1, padding)
        _, left, right = conv_padding(width, 3, stride, 1, padding)
    else:
        try:
            top, bottom, left, right = (int(p) for p in padding)
        except (TypeError, ValueError):
            raise ValueError(f"padding must be 'SAME', 'VALID' or (top, bottom, left, right), "
                             f"not {padding!r}") from None
    pads = (top, bottom, left, right)
    if any(p < 0 or p > MAX_PAD for p in pads):
        raise ValueError(f"pads must be in 0..{MAX_PAD}, not {pads!r}")
    if height + top + bottom < 3 or width + left + right < 3:
        raise ValueError(f"no 3x3 window fits {width}x{height} with pads {pads!r}")
    out_w = (width + left + right - 3) // stride + 1
    out_h = (height + top + bottom - 3) // stride + 1
    return WindowGeometry(out_w, out_h, top, bottom, left, right)


class LineBuffer(wiring.Component):
    """3x3 window generator over a stream of NHWC activation words (see the module docstring).

    Parameters
    ----------
    config : Config
        Uses ``lanes``, ``max_width``, ``max_chunks`` and ``line_rows``.
    bank_depth : int, optional
        Words per (slot, bank) memory. Default ``config.line_buffer_depth``: the Config's
        ``line_bank_depth`` (456 words for the ecp5 preset: MobileNetV2-1.0-224's widest expanded
        row, 112 px x 96 ch at 8 lanes), else ``ceil(max_width / 3) * max_chunks``, which holds
        any row up to ``max_width`` x ``max_channels``. Rows need only
        ``ceil(width / 3) * chunks <= bank_depth``.
    max_height : int, optional
        Tallest input (sets counter widths only; rows are never stored beyond ``line_rows``).
    ram : str
        ``"infer"`` (Amaranth memories; portable) or ``"ecp5"`` (DP16KD with their output
        registers, which ECP5 timing needs; simulation then needs ``verif/models/DP16KD.v``).
        See `BlockRAM`.

    Attributes
    ----------
    cfg : In(cfg_layout)
        Run-time parameters, held stable from ``start`` until ``busy`` falls: ``width``,
        ``height`` (input pixels), ``chunks`` (words per pixel, 1..max_chunks), ``stride``
        (1 or 2), ``pad_top/bottom/left/right`` (0..MAX_PAD), ``pad_value`` (the input zero
        point), ``out_width``, ``out_height`` (from `window_geometry`; use `cfg_for`).
        ``pad_bottom`` and ``pad_right`` are implied by the output size and the input bounds; the
        gateware reads them nowhere, they are there so a descriptor says everything.
    start : In(1)
        Pulse to begin a run (all counters reset). Ignored while ``busy``.
    busy : Out(1)
        From the cycle after ``start`` until every input word is taken and the last window has
        left the output register.
    i : In(stream.Signature(word_layout))
        Exactly ``width * height * chunks`` input words per run.
    o : Out(stream.Signature(window_layout))
        ``taps`` (9 words), ``chunk`` (the words' index within the pixel), ``last`` (final window
        of the run).
    """

    def __init__(self, config, *, bank_depth=None, max_height=4096, ram="infer"):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if ram not in RAM_PRIMITIVES:
            raise ValueError(f"ram must be one of {RAM_PRIMITIVES}, not {ram!r}")
        self._ram = ram
        if bank_depth is None:
            bank_depth = config.line_buffer_depth
        if not isinstance(bank_depth, int) or bank_depth < 1:
            raise ValueError(f"bank_depth must be a positive integer, not {bank_depth!r}")
        if not isinstance(max_height, int) or max_height < 1:
            raise ValueError(f"max_height must be a positive integer, not {max_height!r}")
        self._config = config
        self._bank_depth = bank_depth
        self._max_height = max_height

        lanes, max_chunks = config.lanes, config.max_chunks
        self._word_layout = data.ArrayLayout(signed(8), lanes)
        self._window_layout = data.StructLayout({
            "taps": data.ArrayLayout(self._word_layout, 9),
            "chunk": unsigned(ceil_log2(max_chunks) or 1),
            "last": 1,
        })
        pad = unsigned(bits_for(MAX_PAD))
        self._cfg_layout = data.StructLayout({
            "width": unsigned(bits_for(config.max_width)),
            "height": unsigned(bits_for(max_height)),
            "chunks": unsigned(bits_for(max_chunks)),
            "stride": unsigned(2),
            "pad_top": pad,
            "pad_bottom": pad,
            "pad_left": pad,
            "pad_right": pad,
            "pad_value": signed(8),
            "out_width": unsigned(bits_for(config.max_width + 2 * MAX_PAD - 2)),
            "out_height": unsigned(bits_for(max_height + 2 * MAX_PAD - 2)),
        })
        super().__init__({
            "cfg": In(self._cfg_layout),
            "start": In(1),
            "busy": Out(1),
            "i": In(stream.Signature(self._word_layout)),
            "o": Out(stream.Signature(self._window_layout)),
        })

    @property
    def config(self):
        return self._config

    @property
    def ram(self):
        return self._ram

    @property
    def bank_depth(self):
        return self._bank_depth

    @property
    def max_height(self):
        return self._max_height

    @property
    def cfg_layout(self):
        return self._cfg_layout

    @property
    def word_layout(self):
        return self._word_layout

    @property
    def window_layout(self):
        return self._window_layout

    geometry = staticmethod(window_geometry)

    def fits(self, width, chunks):
        """Whether a ``width``-pixel row of ``chunks`` words per pixel fits one row slot."""
        return (1 <= width <= self._config.max_width and 1 <= chunks <= self._config.max_chunks
                and -(-width // 3) * chunks <= self._bank_depth)

    def cfg_for(self, width, height, chunks, stride, padding, pad_value):
        """The ``cfg`` port value (a dict, e.g. for `verif.streams.pack`) of one run.

        Raises ValueError when the run exceeds this build's limits.
        """
        g = window_geometry(width, height, stride, padding)
        if not self.fits(width, chunks):
            raise ValueError(
                f"a {width}-pixel row of {chunks} words does not fit the line buffer "
                f"(max_width {self._config.max_width}, max_chunks {self._config.max_chunks}, "
                f"bank_depth {self._bank_depth})")
        if height > self._max_height:
            raise ValueError(f"height {height} exceeds max_height {self._max_height}")
        if not -128 <= pad_value <= 127:
            raise ValueError(f"pad_value must be int8, not {pad_value!r}")
        return {"width": width, "height": height, "chunks": chunks, "stride": stride,
                "pad_top": g.pad_top, "pad_bottom": g.pad_bottom, "pad_left": g.pad_left,
                "pad_right": g.pad_right, "pad_value": pad_value,
                "out_width": g.out_width, "out_height": g.out_height}

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows = self._config.line_rows
        lanes = self._config.lanes
        depth = self._bank_depth
        abits = ceil_log2(depth) or 1
        hbits = bits_for(self._max_height + 2 * MAX_PAD)
        wbits = bits_for(self._config.max_width + 2 * MAX_PAD)
        kbits = bits_for(self._config.max_chunks - 1)
        stride, pad_top, pad_left = cfg.stride, cfg.pad_top, cfg.pad_left

        def wrap(value, modulus):
            # value in [0, 2 * modulus): value mod modulus without a divider
            return Mux(value >= modulus, value - modulus, value)

        # ---- memories: rows x 3 banks, one write port and one read port (latency 2) each
        banks = [[BlockRAM(unsigned(lanes * 8), depth, primitive=self._ram) for _ in range(3)]
                 for _ in range(rows)]
        for slot in range(rows):
            for bank in range(3):
                m.submodules[f"slot{slot}_bank{bank}"] = banks[slot][bank]

        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        begin = self.start & ~busy

        # Run constants, latched at start so no counter compare has a subtractor in front of it.
        h_m1 = Signal(hbits)        # height - 1
        w_m1 = Signal(wbits)        # width - 1
        k_m1 = Signal(kbits)        # chunks - 1
        ow_m1 = Signal(wbits)       # out_width - 1
        oh_m1 = Signal(hbits)       # out_height - 1
        chunks = Signal(kbits + 1)
        with m.If(begin):
            m.d.sync += [h_m1.eq(cfg.height - 1), w_m1.eq(cfg.width - 1), k_m1.eq(cfg.chunks - 1),
                         ow_m1.eq(cfg.out_width - 1), oh_m1.eq(cfg.out_height - 1),
                         chunks.eq(cfg.chunks)]

        # ---- producer: writes input row p_row, column p_col, chunk p_chunk
        p_row = Signal(hbits)
        p_col = Signal(wbits)
        p_chunk = Signal(kbits)
        p_slot = Signal(range(rows))
        p_bank = Signal(range(3))
        p_base = Signal(abits + 1)  # (p_col // 3) * chunks
        p_done = Signal()           # all height rows written (then p_row == height)

        # ---- consumer: issues the window at out (c_oy, c_ox), chunk c_k. Its top-left input
        # pixel is (r0, c0) = (oy * stride - pad_top, ox * stride - pad_left); the registers
        # below hold r0 and c0 in the offset forms the compares need, each updated by one add.
        c_oy = Signal(hbits)
        c_ox = Signal(wbits)
        c_k = Signal(kbits)
        c_r2 = Signal(hbits + 1)                # r0 + 2: the window's last row (>= 0)
        c_rR = Signal(signed(hbits + 2))        # r0 + rows: a row j's slot is free if j < this
        c_rsR = Signal(signed(hbits + 2))       # r0 + stride + rows: ... or free left of c0
        c_c0 = Signal(signed(wbits + 2))        # c0
        c_c2 = Signal(wbits + 1)                # c0 + 2: the window's last column (>= 0)
        c_slot0 = Signal(range(rows))           # slot of row r0 (r0 mod rows, also when < 0)
        c_mod3 = Signal(range(3))               # c0 mod 3: the bank of the first column
        # per bank: (the window's column in this bank // 3) * chunks, and that + c_k
        c_base = [Signal(signed(abits + 2), name=f"c_base{b}") for b in range(3)]
        c_addr = [Signal(signed(abits + 2), name=f"c_addr{b}") for b in range(3)]
        c_done = Signal()

        # ---- input side: row j overwrites row j - rows of the same slot
        slot_free = ((p_row < rows) | (p_row < c_rR) | ((p_row < c_rsR) & (p_col < c_c0))
                     | c_done)
        m.d.comb += self.i.ready.eq(busy & ~p_done & slot_free)
        write = self.i.valid & self.i.ready
        # The RAM writes are registered (address, data, one enable per memory): the accept
        # decision (compares, then i.ready) leaves no time to reach 12 block RAMs in one cycle.
        # A word therefore lands one cycle after it is taken; the consumer waits on w_row /
        # w_col / w_done, the producer's progress delayed to match.
        w_addr = Signal(abits, reset_less=True)
        w_data = Signal(lanes * 8, reset_less=True)
        m.d.sync += [w_addr.eq(p_base + p_chunk), w_data.eq(self.i.payload.as_value())]
        for slot in range(rows):
            for bank in range(3):
                ram = banks[slot][bank]
                w_en = Signal(name=f"w_en_slot{slot}_bank{bank}", reset_less=True)
                m.d.sync += w_en.eq(write & (p_slot == slot) & (p_bank == bank))
                m.d.comb += [ram.w_addr.eq(w_addr), ram.w_data.eq(w_data), ram.w_en.eq(w_en)]
        w_row = Signal(hbits, reset_less=True)
        w_col = Signal(wbits, reset_less=True)
        w_done = Signal(reset_less=True)
        m.d.sync += [w_row.eq(p_row), w_col.eq(p_col), w_done.eq(p_done)]
        with m.If(write):
            with m.If(p_chunk != k_m1):
                m.d.sync += p_chunk.eq(p_chunk + 1)
            with m.Else():
                m.d.sync += p_chunk.eq(0)
                with m.If(p_col != w_m1):
                    m.d.sync += p_col.eq(p_col + 1)
                    with m.If(p_bank == 2):
                        m.d.sync += [p_bank.eq(0), p_base.eq(p_base + chunks)]
                    with m.Else():
                        m.d.sync += p_bank.eq(p_bank + 1)
                with m.Else():
                    m.d.sync += [p_col.eq(0), p_bank.eq(0), p_base.eq(0),
                                 p_row.eq(p_row + 1), p_slot.eq(wrap(p_slot + 1, rows))]
                    with m.If(p_row == h_m1):
                        m.d.sync += p_done.eq(1)

        # ---- output pipeline: S0 issue (memory read) -> S1 read data (in the block RAMs'
        # read latches) -> S2 the same words in the RAMs' output registers -> S3 output
        # register. An ECP5 block RAM read without its output register has a ~6 ns
        # clock-to-out, which leaves no room for muxing at 150 MHz; `BlockRAM` makes S2 the
        # DP16KD's own output register (``ram="ecp5"``). The muxes and padding run between S2
        # and S3. Every stage holds while the next is full (the RAMs via r_en and r_oe).
        meta_layout = data.StructLayout({
            "slot": data.ArrayLayout(range(rows), 3),   # slot of window row dy
            "bank": data.ArrayLayout(range(3), 3),      # bank of window column dx
            "row_pad": 3,
            "col_pad": 3,
            "chunk": self._window_layout["chunk"].shape,
            "last": 1,
        })
        s1_valid, s2_valid = Signal(), Signal()
        s1_meta = Signal(meta_layout, reset_less=True)
        s2_meta = Signal(meta_layout, reset_less=True)
        s3_ready = ~self.o.valid | self.o.ready
        s2_ready = ~s2_valid | s3_ready
        s1_ready = ~s1_valid | s2_ready

        # The window needs its last row min(r0 + 2, height - 1) written up to its last column
        # min(c0 + 2, width - 1). Past the right edge (c0 + 2 > width - 1) no p_col exceeds
        # c0 + 2, so the whole row is awaited, as it should be; past the bottom the last row
        # (p_row == height - 1) is the one to wait for.
        last_row = (w_row == c_r2) | ((w_row == h_m1) & (c_r2 > h_m1))
        data_ready = w_done | (w_row > c_r2) | (last_row & (w_col > c_c2))
        issue = busy & ~c_done & data_ready & s1_ready
        last_k = c_k == k_m1
        last_x = c_ox == ow_m1
        last_y = c_oy == oh_m1

        for slot in range(rows):
            for bank in range(3):
                m.d.comb += [
                    banks[slot][bank].r_addr.eq(c_addr[bank]),
                    banks[slot][bank].r_en.eq(s1_ready),     # S0 -> S1: the RAM's read latch
                    banks[slot][bank].r_oe.eq(s2_ready),     # S1 -> S2: its output register
                ]

        with m.If(s1_ready):
            m.d.sync += [s1_valid.eq(issue), s1_meta.chunk.eq(c_k),
                         s1_meta.last.eq(last_k & last_x & last_y)]
            for d in range(3):
                row = c_r2 - (2 - d) if d < 2 else c_r2
                col = c_c0 + d
                above = (row < 0) if d < 2 else 0   # row r0 + 2 is never above the input
                m.d.sync += [
                    s1_meta.slot[d].eq(wrap(c_slot0 + d, rows)),
                    s1_meta.bank[d].eq(wrap(c_mod3 + d, 3)),
                    s1_meta.row_pad[d].eq(above | (row > h_m1)),
                    s1_meta.col_pad[d].eq((col < 0) | (col > w_m1)),
                ]

        s2_words = [[banks[slot][bank].r_data for bank in range(3)] for slot in range(rows)]
        with m.If(s2_ready):
            m.d.sync += [s2_valid.eq(s1_valid), s2_meta.eq(s1_meta)]

        # slot select per (window row, bank) first, shared by the 3 taps of the row, then the
        # bank rotation per tap: 9 R:1 and 9 3:1 muxes instead of 9 (3R):1
        row_words = []
        for dy in range(3):
            row = [Signal(lanes * 8, name=f"s2_row{dy}_bank{bank}") for bank in range(3)]
            for bank, word in enumerate(row):
                by_slot = Array(s2_words[slot][bank] for slot in range(rows))
                m.d.comb += word.eq(by_slot[s2_meta.slot[dy]])
            row_words.append(Array(row))
        pad_word = Cat(cfg.pad_value for _ in range(lanes))
        with m.If(s3_ready):
            m.d.sync += [self.o.valid.eq(s2_valid), self.o.payload.chunk.eq(s2_meta.chunk),
                         self.o.payload.last.eq(s2_meta.last)]
            for dy in range(3):
                for dx in range(3):
                    word = row_words[dy][s2_meta.bank[dx]]
                    m.d.sync += self.o.payload.taps[dy * 3 + dx].as_value().eq(
                        Mux(s2_meta.row_pad[dy] | s2_meta.col_pad[dx], pad_word, word))

        # ---- consumer counters
        def column_reset(n_chunks):
            # back to out column 0: c0 = -pad_left, pad_left in 0..2
            base = [0, Mux(pad_left == 2, -n_chunks, 0), Mux(pad_left != 0, -n_chunks, 0)]
            return [
                c_ox.eq(0),
                c_c0.eq(-pad_left),
                c_c2.eq(2 - pad_left),
                c_mod3.eq(Mux(pad_left == 0, 0, 3 - pad_left)),
                *(c_base[b].eq(base[b]) for b in range(3)),
                *(c_addr[b].eq(base[b]) for b in range(3)),
            ]

        with m.If(issue):
            with m.If(~last_k):
                m.d.sync += [c_k.eq(c_k + 1), *(a.eq(a + 1) for a in c_addr)]
            with m.Else():
                m.d.sync += c_k.eq(0)
                with m.If(~last_x):
                    # the window moves right by stride columns: the banks of the columns it
                    # leaves take the columns 3 further on
                    m.d.sync += [
                        c_ox.eq(c_ox + 1),
                        c_c0.eq(c_c0 + stride),
                        c_c2.eq(c_c2 + stride),
                        c_mod3.eq(wrap(c_mod3 + stride, 3)),
                    ]
                    for b in range(3):
                        leaves = (c_mod3 == b) | ((stride == 2) & (wrap(c_mod3 + 1, 3) == b))
                        moved = c_base[b] + chunks
                        with m.If(leaves):
                            m.d.sync += [c_base[b].eq(moved), c_addr[b].eq(moved)]
                        with m.Else():
                            m.d.sync += c_addr[b].eq(c_base[b])
                with m.Else():
                    m.d.sync += column_reset(chunks)
                    with m.If(~last_y):
                        m.d.sync += [
                            c_oy.eq(c_oy + 1),
                            c_r2.eq(c_r2 + stride),
                            c_rR.eq(c_rR + stride),
                            c_rsR.eq(c_rsR + stride),
                            c_slot0.eq(wrap(c_slot0 + stride, rows)),
                        ]
                    with m.Else():
                        m.d.sync += c_done.eq(1)

        # ---- run control
        with m.If(begin):
            m.d.sync += [
                busy.eq(1),
                p_row.eq(0), p_col.eq(0), p_chunk.eq(0), p_slot.eq(0), p_bank.eq(0),
                p_base.eq(0), p_done.eq(0), w_row.eq(0), w_col.eq(0), w_done.eq(0),
                c_oy.eq(0), c_k.eq(0), c_done.eq(0),
                c_r2.eq(2 - pad_top),
                c_rR.eq(rows - pad_top),
                c_rsR.eq(rows + stride - pad_top),
                c_slot0.eq(Mux(pad_top == 0, 0, rows - pad_top)),
                *column_reset(cfg.chunks),
            ]
        with m.Elif(busy & p_done & c_done & ~s1_valid & ~s2_valid & ~self.o.valid):
            m.d.sync += busy.eq(0)

        return m
