"""The job descriptor and the DRAM byte formats the accelerator's DMA reads: defined once, here.

A compiled program is a chain of *jobs*; each job is one run of a layer mode (PW, DW, CONV3,
DW_PW, PW_DW_PW) over one tile. The DMA top reads a job's descriptor from DRAM, loads the
weights and tables it points to, streams the input (and residual) tensor in and the output
tensor out, then follows the chain until a descriptor with ``last`` set. The layouts below are
amaranth `data.StructLayout`s so the gateware can view a descriptor word as a struct; the
pure-Python `pack` / `unpack` turn the same layouts into bytes, for the compiler and the golden
backend.

Terms (see hdl/config.py): a *word* is ``config.lanes`` int8 channels of one pixel; a *chunk* is
the index of a word within its pixel. Activations in DRAM are NHWC, channels padded to a
multiple of ``lanes``: the byte of (row y, column x, channel c) of a tensor access is
``base + y * row_pitch + x * pixel_pitch + c`` for ``c < chunks * lanes``. A column tile has a
``row_pitch`` larger than ``width * pixel_pitch``; an output-channel tile writes ``chunks``
words of a pixel whose ``pixel_pitch`` is wider. Every byte a job touches lies inside its
windows ``[base, base + length)`` (inputs, residual, output: the `TensorAccess`; weights, tables
and depthwise parameters: ``weights``), so the hardware can check every DMA access.

DRAM formats of the parameters (all little-endian, each item padded to ``config.bus_bytes``):

- *PE weights*: `weight_words` words of ``lanes * pe_cols`` bytes each, exactly the integers of
  `hdl.pointwise.pack_weights` (word ``t * k_words + k``), as little-endian byte strings.
- *PE tables*: one `table_row_layout` per output tile of ``pe_cols`` channels (bias int32,
  multiplier int32, shift), the ``tload`` payload of `PointwiseArray` without its address.
- *DW parameters*: one `dw_param_layout` per chunk, the ``pload`` payload of `DepthwiseEngine`
  without its chunk index (`hdl.depthwise.pack_params`).

im2col order of a CONV3 job (the PE array's K for a 3x3 conv): the line buffer emits, per output
pixel and chunk, the 9 taps ``dy * 3 + dx``; the PE array's input word ``k = chunk * 9 + tap``
carries channels ``chunk * lanes + r``, so K = 9 * chunks_in * lanes and the weight matrix
column ``(chunk * 9 + tap) * lanes + r`` holds filter ``[o, dy, dx, chunk * lanes + r]``.
Dense variant (``dense_cin`` = I > 0, first layers with I <= lanes channels, one chunk): the
window's 9 * I real values are packed in TFLite's own order, column ``tap * I + c`` holding
``[o, dy, dx, c]``, over k_words = ceil(9 * I / lanes) words (an RGB input: 4 words at 8 lanes
instead of 9).
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

from .config import Config
from .residual_add import PARAMS_LAYOUT

__all__ = [
    "MODES", "MODE_CODES", "ADDRESS_BITS", "pe_context_layout", "dw_context_layout", "TensorAccess",
    "descriptor_layout", "table_row_layout", "dw_param_layout", "item_bytes", "pack", "unpack",
    "pack_bytes", "unpack_bytes",
]

#: Layer modes, in the order of their 3-bit code.
MODES = ("PW", "DW", "CONV3", "DW_PW", "PW_DW_PW")
MODE_CODES = {m: k for k, m in enumerate(MODES)}

#: DRAM byte addresses and lengths.
ADDRESS_BITS = 32

_ADDR = unsigned(ADDRESS_BITS)
_S8 = signed(8)

#: A tensor the job reads or writes: its window and how pixels are laid out in it.
TensorAccess = data.StructLayout({
    "base": _ADDR,
    "length": _ADDR,
    "row_pitch": _ADDR,
    "pixel_pitch": unsigned(16),
})

_ZERO_POINTS = {"in_zp": _S8, "out_zp": _S8, "act_min": _S8, "act_max": _S8}


def pe_context_layout():
    """One PE-array stage of a job: where its weights and tables are, and its quantization."""
    return data.StructLayout({
        "weight_addr": _ADDR,
        "weight_words": unsigned(24),     # = out_tiles * k_words, words of lanes * pe_cols bytes
        "table_addr": _ADDR,
        "k_words": unsigned(16),
        "out_tiles": unsigned(16),
        **_ZERO_POINTS,
    })


def dw_context_layout():
    """The depthwise stage of a job: where its per-chunk parameters are, and its quantization."""
    return data.StructLayout({"param_addr": _ADDR, **_ZERO_POINTS})


def descriptor_layout():
    """One job. Unused stages of a mode are zero. See the module docstring for the terms.

    ``width``/``height`` are the input (tile) size in pixels, ``out_width``/``out_height`` the
    output's; ``chunks_in``/``chunks_mid``/``chunks_out`` are words per pixel of the input, of
    the tensor between the first PE stage and the depthwise stage (PW_DW_PW), and of the output
    this job writes. ``pe0`` is the first PE stage (PW, CONV3, PW_DW_PW expand), ``pe1`` the
    last (DW_PW, PW_DW_PW project). With ``residual`` set, the last stage's requantized output
    is added to the residual tensor with TFLite ADD arithmetic (``add``; its ``a_zp`` is the
    PE stage's ``out_zp``) and the output clamp becomes ``add``'s.
    """
    return data.StructLayout({
        "mode": unsigned(3),
        "last": unsigned(1),
        "residual": unsigned(1),
        "stride": unsigned(2),
        "pad_top": unsigned(2),
        "pad_bottom": unsigned(2),
        "pad_left": unsigned(2),
        "pad_right": unsigned(2),
        "width": unsigned(16),
        "height": unsigned(16),
        "out_width": unsigned(16),
        "out_height": unsigned(16),
        "chunks_in": unsigned(16),
        "chunks_mid": unsigned(16),
        "chunks_out": unsigned(16),
        "dense_cin": unsigned(6),
        "pe0": pe_context_layout(),
        "dw": dw_context_layout(),
        "pe1": pe_context_layout(),
        "add": PARAMS_LAYOUT,
        "input": TensorAccess,
        "residual_in": TensorAccess,
        "output": TensorAccess,
        "weights": data.StructLayout({"base": _ADDR, "length": _ADDR}),
        "wbuf_base": unsigned(16),
    })


def _check(config):
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")


def table_row_layout(config):
    """Per-channel bias, multiplier and shift of one output tile (``pe_cols`` channels)."""
    _check(config)
    C = config.pe_cols
    return data.StructLayout({
        "bias": data.ArrayLayout(signed(32), C),
        "multiplier": data.ArrayLayout(signed(32), C),
        "shift": data.ArrayLayout(signed(6), C),
    })


def dw_param_layout(config):
    """One chunk's depthwise weights (9 taps x lanes), bias, multiplier and shift."""
    _check(config)
    lanes = config.lanes
    return data.StructLayout({
        "weights": data.ArrayLayout(data.ArrayLayout(signed(8), lanes), 9),
        "bias": data.ArrayLayout(signed(32), lanes),
        "multiplier": data.ArrayLayout(signed(32), lanes),
        "shift": data.ArrayLayout(signed(6), lanes),
    })


def item_bytes(layout, config):
    """Bytes one `layout` item takes in DRAM: its bits rounded up to whole bus beats."""
    beats = -(-Shape.cast(layout).width // (8 * config.bus_bytes))
    return beats * config.bus_bytes


def pack(layout, value, *, missing_ok=True):
    """A nested dict/list `value` in `layout` (or a plain shape and an int) → one unsigned
    integer of ``layout.size`` bits, LSB-first as Amaranth lays out a view.

    Missing struct fields are zero (``missing_ok=False``: a KeyError naming the field, for
    testbenches driving a port); a value that does not fit its field raises ValueError naming
    the field (a descriptor must never silently wrap an address or a size).
    """
    return _pack(layout, value, "", missing_ok)


def _pack(layout, value, where, missing_ok):
    if isinstance(layout, data.StructLayout):
        value = value or {}
        unknown = set(value) - {name for name, _ in layout}
        if unknown:
            raise ValueError(f"{where or 'struct'}: unknown fields {sorted(unknown)}")
        bits = 0
        for name, field in layout:
            path = f"{where}.{name}".lstrip(".")
            if name in value:
                bits |= _pack(field.shape, value[name], path, missing_ok) << field.offset
            elif not missing_ok:
                raise KeyError(f"{path}: missing")
        return bits
    if isinstance(layout, data.ArrayLayout):
        value = list(value)
        if len(value) != layout.length:
            raise ValueError(f"{where}: {len(value)} elements, layout has {layout.length}")
        width = Shape.cast(layout.elem_shape).width
        bits = 0
        for k, v in enumerate(value):
            bits |= _pack(layout.elem_shape, v, f"{where}[{k}]", missing_ok) << (k * width)
        return bits
    shape = Shape.cast(layout)
    v = int(value)
    lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"{where}: {v} does not fit {shape}")
    return v & ((1 << shape.width) - 1)


def unpack(layout, bits):
    """The inverse of `pack`: nested dicts (structs), lists (arrays) and ints."""
    bits = int(bits)
    if isinstance(layout, data.StructLayout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in layout}
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, bits >> (k * width)) for k in range(layout.length)]
    shape = Shape.cast(layout)
    v = bits & ((1 << shape.width) - 1)
    if shape.signed and v >> (shape.width - 1):
        v -= 1 << shape.width
    return v


def pack_bytes(layout, value, config):
    """`pack` as the `item_bytes` little-endian bytes the DMA reads."""
    return pack(layout, value).to_bytes(item_bytes(layout, config), "little")


def unpack_bytes(layout, raw):
    """`unpack` from little-endian bytes (at least the layout's size)."""
    return unpack(layout, int.from_bytes(bytes(raw), "little"))
