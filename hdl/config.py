"""Build-time parameters of the accelerator and its named presets.

Every size in the gateware comes from one `Config`; nothing else in hdl/ holds a magic number.
The runtime (layer descriptors) chooses shapes up to these maxima; the compiler checks them and
raises `HardwareLimitError` naming the layer and the limit.

Dataflow terms used throughout hdl/:

- a *word* is `lanes` int8 values: `lanes` consecutive channels of one pixel (NHWC order,
  channels padded up to a multiple of `lanes`). Activation streams, line-buffer entries and the
  depthwise engine all move one word per cycle.
- the PE array multiplies one input word (`lanes` = R input channels) by an R x `pe_cols` weight
  block each cycle, accumulating `pe_cols` output channels of one pixel in int32.
"""

from dataclasses import asdict, dataclass

__all__ = ["Config", "PRESETS", "preset", "MULTIPLIER_ROLES", "LUT_MULTIPLIER_ROLES"]

#: The multipliers of the datapath, by role (who owns them, and their operand sizes):
#: ``dw_taps`` (DepthwiseEngine, 9 x lanes int9 x int8), ``dw_requant`` (its Requantizer, 4
#: 16x16 partial products per lane), ``pe`` (PointwiseArray, lanes x pe_cols int8 x int8),
#: ``pe_requant`` (its requantizers, 4 per lane), ``residual_add`` (12 per ADD lane).
MULTIPLIER_ROLES = ("dw_taps", "dw_requant", "pe", "pe_requant", "residual_add")

#: Roles whose component can build its multipliers from LUTs (``RegisteredMultiplier`` kind
#: ``"lut"``) instead of DSPs. Others take the ``dsp`` kind they are given.
LUT_MULTIPLIER_ROLES = ("dw_taps", "dw_requant")


@dataclass(frozen=True)
class Config:
    """Build-time parameters.

    Parameters
    ----------
    name : str
    lanes : int
        Channels per word: depthwise-engine lanes and PE-array rows (R).
    pe_cols : int
        PE-array columns (C): output channels computed in parallel.
    requant_lanes : int
        Requantizers behind the PE array (outputs per cycle); pe_cols must be a multiple.
    max_width : int
        Widest feature-map row the line buffer holds (pixels).
    max_channels : int
        Most channels of a line-buffer row (multiple of lanes).
    line_rows : int
        Row slots in the line buffer (3 window rows + rows being written).
    max_k : int
        Longest PE-array input vector (channels of a 1x1 conv or FC, 9 x channels of an im2col).
    weight_words : int
        Depth of the PE-array weight buffer, in words of lanes x pe_cols int8.
    max_out_channels : int
        Depth of the per-channel bias/multiplier/shift tables.
    bus_bytes : int
        AXI data width in bytes.
    residual_lanes : int or None
        TFLite ADDs per cycle of the PE array's residual add (each costs about three
        requantizers' multipliers); None means ``requant_lanes``, which must be a multiple.
    line_bank_depth : int or None
        Words per line-buffer memory (each of ``line_rows x 3`` banks). A row fits when
        ``ceil(width / 3) * ceil(channels / lanes) <= line_bank_depth`` (see
        `line_buffer_fits`), so narrow rows may have many channels and wide rows few. None means
        ``ceil(max_width / 3) * max_chunks``: any row up to max_width x max_channels, which for
        the ecp5 preset would be 75 x 160 = 12,000 words per bank (12 banks: ~340 DP16KD).
    lut_multipliers : tuple of str
        Roles (of `LUT_MULTIPLIER_ROLES`) whose multipliers are built from LUTs and carry
        chains rather than DSPs, whatever ``dsp`` kind the build asks for; see
        `multiplier_kind`. This is how a preset states its DSP budget.
    pe_lut_columns : int
        PE-array columns (the last ones) whose ``lanes`` multipliers are built from LUTs, the
        others taking the build's ``dsp`` kind (see `pe_column_kind`): the PE array's share of
        the DSP budget, in steps of one column (``lanes`` DSPs).
    """

    name: str
    lanes: int
    pe_cols: int
    requant_lanes: int
    max_width: int
    max_channels: int
    line_rows: int
    max_k: int
    weight_words: int
    max_out_channels: int
    bus_bytes: int
    residual_lanes: int | None = None
    line_bank_depth: int | None = None
    lut_multipliers: tuple = ()
    pe_lut_columns: int = 0

    def __post_init__(self):
        for field in ("lanes", "pe_cols", "requant_lanes", "max_width", "max_channels", "line_rows",
                      "max_k", "weight_words", "max_out_channels", "bus_bytes"):
            v = getattr(self, field)
            if not isinstance(v, int) or v <= 0:
                raise TypeError(f"Config.{field} must be a positive integer, not {v!r}")
        if self.max_channels % self.lanes:
            raise ValueError(f"max_channels {self.max_channels} is not a multiple of lanes {self.lanes}")
        if self.pe_cols % self.requant_lanes:
            raise ValueError(f"pe_cols {self.pe_cols} is not a multiple of requant_lanes {self.requant_lanes}")
        if self.residual_lanes is not None:
            if not isinstance(self.residual_lanes, int) or self.residual_lanes <= 0:
                raise TypeError(f"Config.residual_lanes must be a positive integer or None, not {self.residual_lanes!r}")
            if self.requant_lanes % self.residual_lanes:
                raise ValueError(f"requant_lanes {self.requant_lanes} is not a multiple of "
                                 f"residual_lanes {self.residual_lanes}")
        if self.line_rows < 3:
            raise ValueError(f"line_rows must be at least 3 for 3x3 windows, not {self.line_rows}")
        if self.line_bank_depth is not None and (not isinstance(self.line_bank_depth, int)
                                                 or self.line_bank_depth <= 0):
            raise TypeError(f"Config.line_bank_depth must be a positive integer or None, "
                            f"not {self.line_bank_depth!r}")
        if isinstance(self.lut_multipliers, str) or not isinstance(self.lut_multipliers, (tuple, list)):
            raise TypeError(f"Config.lut_multipliers must be a tuple of role names, "
                            f"not {self.lut_multipliers!r}")
        object.__setattr__(self, "lut_multipliers", tuple(self.lut_multipliers))  # from JSON too
        for role in self.lut_multipliers:
            if role not in LUT_MULTIPLIER_ROLES:
                raise ValueError(f"Config.lut_multipliers: {role!r} is not a role that can be built "
                                 f"from LUTs ({', '.join(LUT_MULTIPLIER_ROLES)})")
        if not isinstance(self.pe_lut_columns, int) or not 0 <= self.pe_lut_columns <= self.pe_cols:
            raise ValueError(f"Config.pe_lut_columns must be an integer from 0 to pe_cols "
                             f"({self.pe_cols}), not {self.pe_lut_columns!r}")

    @property
    def pe_macs_per_cycle(self):
        return self.lanes * self.pe_cols

    @property
    def dw_macs_per_cycle(self):
        return self.lanes * 9

    @property
    def max_chunks(self):
        """Words per pixel of the widest line-buffer row."""
        return self.max_channels // self.lanes

    @property
    def line_buffer_depth(self):
        """Words per line-buffer bank: ``line_bank_depth``, or the max_width x max_channels default."""
        if self.line_bank_depth is not None:
            return self.line_bank_depth
        return -(-self.max_width // 3) * self.max_chunks

    def line_buffer_fits(self, width, channels):
        """Whether a ``width``-pixel row of ``channels`` channels fits one line-buffer row slot.

        The compiler checks each 3x3 layer's input row with this (and tiles columns when not).
        """
        return (1 <= width <= self.max_width and 1 <= channels <= self.max_channels
                and -(-width // 3) * -(-channels // self.lanes) <= self.line_buffer_depth)

    def multiplier_kind(self, role, dsp):
        """The `RegisteredMultiplier` kind for ``role`` in a build asking for ``dsp``."""
        if role not in MULTIPLIER_ROLES:
            raise ValueError(f"role must be one of {MULTIPLIER_ROLES}, not {role!r}")
        return "lut" if role in self.lut_multipliers else dsp

    def pe_column_kind(self, column, dsp):
        """The `RegisteredMultiplier` kind of PE-array column ``column``: the last
        ``pe_lut_columns`` columns are ``"lut"``, the others ``dsp``."""
        if not 0 <= column < self.pe_cols:
            raise ValueError(f"column must be in 0..{self.pe_cols - 1}, not {column!r}")
        return "lut" if column >= self.pe_cols - self.pe_lut_columns else dsp

    def as_dict(self):
        """The fields as a dict (``Config(**d)`` rebuilds it, also after a JSON round trip)."""
        return asdict(self)


PRESETS = {
    # Lattice LFE5U-85F: 156 MULT18X18D, 208 x 18 Kbit DP16KD, 84k LUT4 (83,640 TRELLIS_COMB).
    #
    # DSP budget (all of LineBuffer + DepthwiseEngine + PointwiseArray + residual ADD):
    #   PE array 8 x 16 int8 MACs             80 MULT18X18D (pe_lut_columns 6: 48 MACs in
    #                                             LUTs, 211 LUT4-equivalents each, ~10.1k in all)
    #   PE requantizers, 8 lanes x 4          32
    #   residual ADD, 1 lane x 3 x 4          12
    #   depthwise requantizer, 8 lanes x 4    32
    #   depthwise taps, 72 int9 x int8         0  (lut_multipliers "dw_taps": ~15.2k LUT4-eq.)
    #   total                                156 of 156
    # Built with every multiplier in DSPs the datapath would need 276. Per-unit costs from
    # scripts/multiplier_cost.py: a DSP saved costs 211 LUT4-equivalents in a PE column or a
    # tap, ~630 in a requantizer (3,135 instead of 603 per lane). So the requantizers keep their
    # DSPs and PE columns go to LUTs. 8 PE requantizer lanes (2 cycles per 16-channel tile
    # instead of 4) keep narrow 1x1 convs (k_words 2-3: MobileNetV2's first expands) at one
    # k-step per cycle instead of waiting for the drain. (Before: the depthwise requantizer in
    # LUTs, the whole PE array in DSPs and 4 PE requantizers, 68.4k TRELLIS_COMB, 81 %, which
    # did not route in a session.)
    #
    # Block RAM: line buffer 12 banks x 456 words x 64 bits = 24 DP16KD (512 x 36 each 2 wide),
    # depthwise parameters 33 (weights 16, bias 8, multiplier/shift 9), PE array 146 (weight
    # buffer 2048 x 1024 bits = 114 at 2048 x 9, pixels, bias, scale of 8 lanes): 203 of 208.
    #
    # Measured (scripts/synth.py --config ecp5 --target ecp5 --design engine --lut-map abc
    # --router router2, LayerEngine in the synthesis harness, at commit 2f509b1): 156
    # MULT18X18D, 203 DP16KD (97 %), 57.5k TRELLIS_COMB (68 %; 68.4k, 81 %, with the depthwise
    # requantizer in LUTs and all PE columns in DSPs), 41.6k flip-flops. It places (HeAP 490 s +
    # annealing 571 s); router2 did not converge within the session (28-30k overused wires from
    # its 6th to 10th iteration). See build/synth/*.json.
    #
    # Line buffer sized for MobileNetV2-1.0-224 (line_bank_depth 456: the widest expanded row,
    # 112 px x 96 ch, needs ceil(112/3) * 12 words; every other 3x3 input row needs fewer, see
    # tests/test_config.py), 4 slots. One residual-ADD lane (12 DSPs instead of 48):
    # MobileNetV2-1.0's residual projections have K >= 144, so their k_words >= 18 cycles per
    # tile already cover the ADD's 16 (narrower models' residual layers wait for the ADD).
    "ecp5": Config(name="ecp5", lanes=8, pe_cols=16, requant_lanes=8, max_width=224, max_channels=1280,
                   line_rows=4, max_k=1280, weight_words=2048, max_out_channels=2048, bus_bytes=8,
                   residual_lanes=1, line_bank_depth=456, lut_multipliers=("dw_taps",),
                   pe_lut_columns=6),
    # Half the ecp5 datapath, every multiplier in DSPs: the configuration that routes on the
    # LFE5U-85F (the ecp5 preset does not, see README). 4 lanes x 16 PE columns (64 MACs per
    # cycle, 4 words per 16-channel tile), 36 depthwise MACs; DSPs: PE 64, PE requantizers 16,
    # residual ADD 12, depthwise requantizer 16, depthwise taps 36 = 144 of 156. Block RAM:
    # line buffer 12 banks x 912 words x 32 bits = 24, weight buffer 4096 x 512 bits (the same
    # 256 KiB as ecp5's), 190 DP16KD in all. A 32-bit bus (the sequencer needs lanes to be a
    # multiple of bus_bytes). Top, router1: 54.5 MHz at commit 2bb8f27 (the LayerEngine's
    # input arbitration one combinational path into the depthwise engine's handshake), 80.05
    # MHz at fa3b469 after register slices between the blocks (30.2k TRELLIS_COMB, 36 %;
    # build/synth/top-ecp5n-fa3b469.json), 84.77 MHz at c9af9ca, 88.17 at 132f9fd (see README).
    "ecp5_narrow": Config(name="ecp5_narrow", lanes=4, pe_cols=16, requant_lanes=4, max_width=224,
                          max_channels=1280, line_rows=4, max_k=1280, weight_words=4096, max_out_channels=2048,
                          bus_bytes=4, residual_lanes=1, line_bank_depth=912, lut_multipliers=(),
                          pe_lut_columns=0),
    # Xilinx DPU B4096 scale: 2048 MACs per cycle (32 x 64), for resource comparison.
    # Line buffer sized as ecp5's: MobileNetV2-1.0-224's rows at 32 lanes need at most
    # ceil(112/3) * 3 = 114 words per bank (the default would be 3,000).
    "b4096": Config(name="b4096", lanes=32, pe_cols=64, requant_lanes=16, max_width=224, max_channels=1280,
                    line_rows=4, max_k=1280, weight_words=1024, max_out_channels=2048, bus_bytes=16,
                    line_bank_depth=114),
    # Small configuration for fast component simulations.
    "tiny": Config(name="tiny", lanes=4, pe_cols=4, requant_lanes=2, max_width=32, max_channels=64,
                   line_rows=4, max_k=256, weight_words=256, max_out_channels=128, bus_bytes=4,
                   residual_lanes=1),
}


def preset(name):
    """The named preset; raises KeyError listing the presets otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown config {name!r}; presets: {', '.join(PRESETS)}") from None
