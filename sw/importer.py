"""Read an int8 TFLite flatbuffer into the graph IR (`dwfuse.ir`).

The importer checks everything the rest of the project relies on (int8 activations, symmetric
int8 weights, supported operators, consistent buffers) and raises `ModelError` naming the op or
tensor otherwise. It also derives, once, the integer parameters TFLite's Prepare computes
(per-channel multipliers and shifts, activation clamps, ADD and SOFTMAX scaling), using the
reference arithmetic of `dwfuse.verif.golden.arithmetic`.
"""

import os

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from .errors import ModelError, UnsupportedOpError
from .ir import Graph, Op, Tensor
from .verif.golden import arithmetic as ar

__all__ = ["load", "SUPPORTED_OPS"]

SUPPORTED_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "PAD", "PADV2", "AVERAGE_POOL_2D",
    "MEAN", "RESHAPE", "SOFTMAX", "TRANSPOSE", "SHAPE", "STRIDED_SLICE", "PACK", "QUANTIZE",
    "DEQUANTIZE",
)

_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT16: np.int16,
    tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64,
    tflite.TensorType.BOOL: np.bool_,
}
_ACTIVATIONS = {getattr(tflite.ActivationFunctionType, n): n for n in
                ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")}
_PADDING = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}


def load(model):
    """Load an int8 TFLite model.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        A .tflite path, or the flatbuffer itself. A name of the built-in zoo
        (`dwfuse.zoo.names()`) is accepted too.

    Returns
    -------
    Graph

    Raises
    ------
    ModelError
        Malformed file, float or uint8 model, asymmetric weights, inconsistent shapes.
    UnsupportedOpError
        An operator outside `SUPPORTED_OPS` (the message names its index and name).
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, name = bytes(model), "<bytes>"
    else:
        path = os.fspath(model)
        if not os.path.exists(path):
            from . import zoo
            if zoo.is_zoo_name(path):
                return _parse(zoo.build(path), path)
            raise ModelError(f"{path}: no such file, and not a zoo model name")
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
    return _parse(data, name)


def _parse(data, name):
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{name}: not a TFLite flatbuffer (missing 'TFL3' identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        return _Reader(model, data, name).graph()
    except ModelError:
        raise
    except Exception as e:  # flatbuffers raises IndexError/struct.error on truncated data
        raise ModelError(f"{name}: truncated or corrupt TFLite file ({type(e).__name__}: {e})") from None


class _Reader:
    def __init__(self, model, data, name):
        self.model, self.data, self.name = model, data, name

    def graph(self):
        m = self.model
        if m.SubgraphsLength() != 1:
            raise ModelError(f"{self.name}: {m.SubgraphsLength()} subgraphs; dwfuse runs single-subgraph models")
        sg = m.Subgraphs(0)
        tensors = [self._tensor(sg.Tensors(i), i) for i in range(sg.TensorsLength())]
        ops = [self._op(sg.Operators(i), i, tensors) for i in range(sg.OperatorsLength())]
        g = Graph(name=self.name, tensors=tensors, ops=ops,
                  inputs=[int(i) for i in sg.InputsAsNumpy()], outputs=[int(i) for i in sg.OutputsAsNumpy()])
        _check_int8(g)
        for op in ops:
            _derive(op, tensors)
        return g

    def _buffer(self, index, tname):
        if index == 0 or index >= self.model.BuffersLength():
            return None
        buf = self.model.Buffers(index)
        if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
            start, size = buf.Offset(), buf.Size()
            if start + size > len(self.data):
                raise ModelError(f"{self.name}: tensor {tname!r}: buffer {index} extends past the end of the file")
            return self.data[start:start + size]
        if buf.DataLength() == 0:
            return None
        return buf.DataAsNumpy().tobytes()

    def _tensor(self, t, i):
        tname = t.Name().decode(errors="replace") if t.Name() else f"t{i}"
        ttype = t.Type()
        if ttype not in _DTYPES:
            raise ModelError(f"{self.name}: tensor {i} ({tname!r}) has unsupported type {ttype}")
        dtype = np.dtype(_DTYPES[ttype])
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        scale = zero_point = None
        qdim = 0
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            scale = q.ScaleAsNumpy().astype(np.float32)
            zero_point = (q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength()
                          else np.zeros(scale.shape, np.int64))
            qdim = q.QuantizedDimension()
        data = None
        raw = self._buffer(t.Buffer(), tname)
        if raw is not None:
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if len(raw) != expected:
                raise ModelError(f"{self.name}: tensor {i} ({tname!r}): buffer holds {len(raw)} bytes, "
                                 f"shape {shape} needs {expected}")
            data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if any(s < 0 for s in shape):
            raise ModelError(f"{self.name}: tensor {i} ({tname!r}) has a dynamic shape {shape}")
        return Tensor(index=i, name=tname, shape=shape, dtype=dtype, scale=scale,
                      zero_point=zero_point, quantized_dimension=qdim, data=data)

    def _op(self, o, i, tensors):
        code = self.model.OperatorCodes(o.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
        if builtin == tflite.BuiltinOperator.CUSTOM:
            kind = f"CUSTOM({code.CustomCode().decode(errors='replace')})"
        if kind not in SUPPORTED_OPS:
            raise UnsupportedOpError(i, kind)
        inputs = [int(v) for v in o.InputsAsNumpy()] if o.InputsLength() else []
        outputs = [int(v) for v in o.OutputsAsNumpy()] if o.OutputsLength() else []
        for t in inputs + outputs:
            if t >= len(tensors):
                raise ModelError(f"{self.name}: op {i} ({kind}) refers to tensor {t}, model has {len(tensors)}")
        return Op(index=i, kind=kind, inputs=inputs, outputs=outputs, options=_options(o, kind, i))


def _table(o, cls):
    opts = o.BuiltinOptions()
    if opts is None:
        return None
    t = cls()
    t.Init(opts.Bytes, opts.Pos)
    return t


def _act(code, i, kind):
    if code not in _ACTIVATIONS or _ACTIVATIONS[code] in ("TANH", "SIGN_BIT"):
        raise UnsupportedOpError(i, kind, f"fused activation {_ACTIVATIONS.get(code, code)}")
    return _ACTIVATIONS[code]


def _options(o, kind, i):
    """The builtin options of one op as a plain dict (defaults where the model omits them)."""
    if kind == "CONV_2D":
        t = _table(o, tflite.Conv2DOptions)
        return dict(padding=_PADDING[t.Padding()], stride=(t.StrideH(), t.StrideW()),
                    dilation=(t.DilationHFactor(), t.DilationWFactor()),
                    activation=_act(t.FusedActivationFunction(), i, kind))
    if kind == "DEPTHWISE_CONV_2D":
        t = _table(o, tflite.DepthwiseConv2DOptions)
        return dict(padding=_PADDING[t.Padding()], stride=(t.StrideH(), t.StrideW()),
                    dilation=(t.DilationHFactor(), t.DilationWFactor()),
                    activation=_act(t.FusedActivationFunction(), i, kind))
    if kind == "FULLY_CONNECTED":
        t = _table(o, tflite.FullyConnectedOptions)
        if t is None:
            return dict(activation="NONE", keep_num_dims=False)
        if t.WeightsFormat() != 0:
            raise UnsupportedOpError(i, kind, "shuffled weights format")
        return dict(activation=_act(t.FusedActivationFunction(), i, kind), keep_num_dims=bool(t.KeepNumDims()))
    if kind == "ADD":
        t = _table(o, tflite.AddOptions)
        return dict(activation="NONE" if t is None else _act(t.FusedActivationFunction(), i, kind))
    if kind == "AVERAGE_POOL_2D":
        t = _table(o, tflite.Pool2DOptions)
        return dict(padding=_PADDING[t.Padding()], stride=(t.StrideH(), t.StrideW()),
                    filter_size=(t.FilterHeight(), t.FilterWidth()),
                    activation=_act(t.FusedActivationFunction(), i, kind))
    if kind == "MEAN":
        t = _table(o, tflite.ReducerOptions)
        return dict(keep_dims=bool(t.KeepDims()) if t is not None else False)
    if kind == "SOFTMAX":
        t = _table(o, tflite.SoftmaxOptions)
        return dict(beta=float(t.Beta()) if t is not None else 1.0)
    if kind == "STRIDED_SLICE":
        t = _table(o, tflite.StridedSliceOptions)
        opts = dict(begin_mask=t.BeginMask(), end_mask=t.EndMask(), shrink_axis_mask=t.ShrinkAxisMask())
        if t.EllipsisMask() or t.NewAxisMask():
            raise UnsupportedOpError(i, kind, "ellipsis_mask and new_axis_mask")
        if hasattr(t, "Offset") and t.Offset():
            raise UnsupportedOpError(i, kind, "offset=true")
        return opts
    if kind == "PACK":
        t = _table(o, tflite.PackOptions)
        return dict(axis=t.Axis(), values_count=t.ValuesCount())
    return {}


def _quant(t, what, op):
    if t.scale is None:
        raise ModelError(f"op {op.index} ({op.kind}): {what} tensor {t.index} ({t.name!r}) is not quantized")
    return t


def _check_int8(g):
    """Reject float and uint8 models with one clear message instead of a wrong answer later."""
    for op in g.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            x, w = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
            if x.dtype == np.float32 or w.dtype == np.float32:
                raise ModelError(f"op {op.index} ({op.kind}): float32 {'input' if x.dtype == np.float32 else 'weights'}; "
                                 "dwfuse runs int8-quantized models only (convert with full-integer quantization)")
            if x.dtype == np.uint8 or w.dtype == np.uint8:
                raise ModelError(f"op {op.index} ({op.kind}): uint8 asymmetric quantization; "
                                 "dwfuse runs int8 models with symmetric int8 weights")
            if x.dtype != np.int8 or w.dtype != np.int8:
                raise ModelError(f"op {op.index} ({op.kind}): {x.dtype} input with {w.dtype} weights; "
                                 "dwfuse runs int8 x int8 only")
            if not w.is_constant:
                raise ModelError(f"op {op.index} ({op.kind}): weights tensor {w.index} is not a constant")
            _quant(w, "weights", op)
            if np.any(w.zero_point != 0):
                raise ModelError(f"op {op.index} ({op.kind}): weights tensor {w.index} has non-zero zero points; "
                                 "dwfuse needs symmetric int8 weights")
        elif op.kind in ("ADD", "PAD", "PADV2", "AVERAGE_POOL_2D", "MEAN", "SOFTMAX"):
            x = g.tensors[op.inputs[0]]
            if x.dtype != np.int8:
                kind = "float32" if x.dtype == np.float32 else str(x.dtype)
                raise ModelError(f"op {op.index} ({op.kind}): {kind} input; dwfuse runs int8-quantized models only")


def _conv_like(op, ts, channel_count):
    """Per-channel multiplier/shift exactly as PopulateConvolutionQuantizationParams."""
    x, w, y = ts[op.inputs[0]], ts[op.inputs[1]], ts[op.outputs[0]]
    _quant(x, "input", op), _quant(y, "output", op)
    ws = w.scale if w.per_channel else np.repeat(w.scale, channel_count)
    if ws.size != channel_count:
        raise ModelError(f"op {op.index} ({op.kind}): weights have {ws.size} scales for {channel_count} channels")
    mult = np.empty(channel_count, np.int64)
    shift = np.empty(channel_count, np.int64)
    for c in range(channel_count):
        eff = float(x.scale[0]) * float(ws[c]) / float(y.scale[0])
        mult[c], shift[c] = ar.quantize_multiplier(eff)
    act_min, act_max = ar.activation_range(op.options.get("activation", "NONE"), y.scale[0], y.zp)
    bias = None
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = ts[op.inputs[2]]
        if b.dtype != np.int32 or not b.is_constant or b.data.size != channel_count:
            raise ModelError(f"op {op.index} ({op.kind}): bias tensor {b.index} must be a constant int32[{channel_count}]")
        bias = b.data.astype(np.int64)
    op.params.update(in_zp=x.zp, out_zp=y.zp, multiplier=mult, shift=shift,
                     act_min=act_min, act_max=act_max, bias=bias)


def _derive(op, ts):
    k = op.kind
    if k == "CONV_2D":
        w = ts[op.inputs[1]]
        _conv_like(op, ts, w.shape[0])
    elif k == "DEPTHWISE_CONV_2D":
        x, w = ts[op.inputs[0]], ts[op.inputs[1]]
        if w.shape[3] % x.shape[3]:
            raise ModelError(f"op {op.index} ({k}): {w.shape[3]} filter channels for {x.shape[3]} input channels")
        op.params["depth_multiplier"] = w.shape[3] // x.shape[3]
        _conv_like(op, ts, w.shape[3])
    elif k == "FULLY_CONNECTED":
        w = ts[op.inputs[1]]
        _conv_like(op, ts, w.shape[0])
    elif k == "ADD":
        a, b, y = (_quant(ts[i], n, op) for i, n in zip(op.inputs + op.outputs, ("input 1", "input 2", "output")))
        left_shift = 20
        twice_max = 2 * max(float(a.scale[0]), float(b.scale[0]))
        am, ash = ar.quantize_multiplier_smaller_than_one_exp(float(a.scale[0]) / twice_max)
        bm, bsh = ar.quantize_multiplier_smaller_than_one_exp(float(b.scale[0]) / twice_max)
        om, osh = ar.quantize_multiplier_smaller_than_one_exp(twice_max / ((1 << left_shift) * float(y.scale[0])))
        act_min, act_max = ar.activation_range(op.options["activation"], y.scale[0], y.zp)
        op.params.update(a_zp=a.zp, b_zp=b.zp, out_zp=y.zp, left_shift=left_shift,
                         a_multiplier=am, a_shift=ash, b_multiplier=bm, b_shift=bsh,
                         out_multiplier=om, out_shift=osh, act_min=act_min, act_max=act_max)
    elif k in ("PAD", "PADV2"):
        p = ts[op.inputs[1]]
        if not p.is_constant:
            raise ModelError(f"op {op.index} ({k}): paddings must be a constant")
        y = ts[op.outputs[0]]
        value = y.zp if y.scale is not None else 0
        if k == "PADV2" and len(op.inputs) > 2:
            value = int(ts[op.inputs[2]].data.reshape(-1)[0])
        op.params.update(paddings=p.data.reshape(-1, 2).astype(np.int64), pad_value=value)
    elif k == "AVERAGE_POOL_2D":
        x, y = ts[op.inputs[0]], ts[op.outputs[0]]
        if x.zp != y.zp or x.scale[0] != y.scale[0]:
            raise ModelError(f"op {op.index} ({k}): input and output quantization differ")
        op.params["act_min"], op.params["act_max"] = ar.activation_range(op.options["activation"], y.scale[0], y.zp)
    elif k == "MEAN":
        x, axis, y = ts[op.inputs[0]], ts[op.inputs[1]], ts[op.outputs[0]]
        if not axis.is_constant:
            raise ModelError(f"op {op.index} ({k}): axis must be a constant")
        mult, shift = ar.quantize_multiplier(float(x.scale[0]) / float(y.scale[0]))
        op.params.update(axes=axis.data.reshape(-1).astype(int).tolist(), in_zp=x.zp, out_zp=y.zp,
                         multiplier=mult, shift=shift)
    elif k == "SOFTMAX":
        x, y = ts[op.inputs[0]], ts[op.outputs[0]]
        if y.zp != -128 or abs(float(y.scale[0]) - 1 / 256) > 1e-9:
            raise ModelError(f"op {op.index} ({k}): int8 output must have scale 1/256 and zero point -128")
        real = min(op.options["beta"] * float(x.scale[0]) * (1 << (31 - 5)), (1 << 31) - 1.0)
        mult, left_shift = ar.quantize_multiplier_greater_than_one(real)
        radius = int(np.floor(1.0 * ((1 << 5) - 1) * (1 << (31 - 5)) / (1 << left_shift)))
        op.params.update(input_multiplier=mult, input_left_shift=left_shift, diff_min=-radius)
    elif k == "TRANSPOSE":
        perm = ts[op.inputs[1]]
        if not perm.is_constant:
            raise ModelError(f"op {op.index} ({k}): permutation must be a constant")
        op.params["perm"] = perm.data.reshape(-1).astype(int).tolist()
    elif k == "QUANTIZE":
        x, y = ts[op.inputs[0]], _quant(ts[op.outputs[0]], "output", op)
        if y.dtype != np.int8:
            raise ModelError(f"op {op.index} ({k}): output type {y.dtype}; only int8 is supported")
        if x.dtype == np.int8:
            op.params.update(zip(("multiplier", "shift"),
                                 ar.quantize_multiplier(float(x.scale[0]) / float(y.scale[0]))))
            op.params.update(in_zp=x.zp, out_zp=y.zp)
        elif x.dtype != np.float32:
            raise ModelError(f"op {op.index} ({k}): input type {x.dtype}; only float32 and int8 are supported")
    elif k == "DEQUANTIZE":
        x = _quant(ts[op.inputs[0]], "input", op)
        if x.dtype != np.int8:
            raise ModelError(f"op {op.index} ({k}): input type {x.dtype}; only int8 is supported")
