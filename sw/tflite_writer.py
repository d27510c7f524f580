"""Write TFLite flatbuffers from numpy arrays, with no TensorFlow.

The zoo (and tests that need a hand-made model) describe a graph as tensors and operators, the
same vocabulary as `dwfuse.ir`, and get back the bytes of a ``.tflite`` file that TFLite Micro
and LiteRT load. The encoding follows what TensorFlow's converter emits for int8 models:
schema version 3, file identifier ``TFL3``, buffer 0 the empty sentinel, operator codes with both
``builtin_code`` and ``deprecated_builtin_code``, per-tensor or per-channel quantization with one
zero point per scale. Constant data is aligned to 16 bytes so int32 biases can be read in place.

Only the operators the project needs are encoded; adding one is one entry in `_OPTIONS` and one
in `_VERSIONS`.
"""

import flatbuffers
import numpy as np
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.AddOptions import AddOptionsAddFusedActivationFunction, AddOptionsEnd, AddOptionsStart
from tflite.Buffer import BufferAddData, BufferEnd, BufferStart
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.Conv2DOptions import (
    Conv2DOptionsAddDilationHFactor,
    Conv2DOptionsAddDilationWFactor,
    Conv2DOptionsAddFusedActivationFunction,
    Conv2DOptionsAddPadding,
    Conv2DOptionsAddStrideH,
    Conv2DOptionsAddStrideW,
    Conv2DOptionsEnd,
    Conv2DOptionsStart,
)
from tflite.DepthwiseConv2DOptions import (
    DepthwiseConv2DOptionsAddDepthMultiplier,
    DepthwiseConv2DOptionsAddDilationHFactor,
    DepthwiseConv2DOptionsAddDilationWFactor,
    DepthwiseConv2DOptionsAddFusedActivationFunction,
    DepthwiseConv2DOptionsAddPadding,
    DepthwiseConv2DOptionsAddStrideH,
    DepthwiseConv2DOptionsAddStrideW,
    DepthwiseConv2DOptionsEnd,
    DepthwiseConv2DOptionsStart,
)
from tflite.FullyConnectedOptions import (
    FullyConnectedOptionsAddFusedActivationFunction,
    FullyConnectedOptionsAddKeepNumDims,
    FullyConnectedOptionsEnd,
    FullyConnectedOptionsStart,
)
from tflite.Model import (
    ModelAddBuffers,
    ModelAddDescription,
    ModelAddOperatorCodes,
    ModelAddSubgraphs,
    ModelAddVersion,
    ModelEnd,
    ModelStart,
)
from tflite.Operator import (
    OperatorAddBuiltinOptions,
    OperatorAddBuiltinOptionsType,
    OperatorAddInputs,
    OperatorAddOpcodeIndex,
    OperatorAddOutputs,
    OperatorEnd,
    OperatorStart,
)
from tflite.OperatorCode import (
    OperatorCodeAddBuiltinCode,
    OperatorCodeAddDeprecatedBuiltinCode,
    OperatorCodeAddVersion,
    OperatorCodeEnd,
    OperatorCodeStart,
)
from tflite.PadOptions import PadOptionsEnd, PadOptionsStart
from tflite.Padding import Padding
from tflite.Pool2DOptions import (
    Pool2DOptionsAddFilterHeight,
    Pool2DOptionsAddFilterWidth,
    Pool2DOptionsAddFusedActivationFunction,
    Pool2DOptionsAddPadding,
    Pool2DOptionsAddStrideH,
    Pool2DOptionsAddStrideW,
    Pool2DOptionsEnd,
    Pool2DOptionsStart,
)
from tflite.QuantizationParameters import (
    QuantizationParametersAddQuantizedDimension,
    QuantizationParametersAddScale,
    QuantizationParametersAddZeroPoint,
    QuantizationParametersEnd,
    QuantizationParametersStart,
)
from tflite.ReducerOptions import ReducerOptionsAddKeepDims, ReducerOptionsEnd, ReducerOptionsStart
from tflite.SoftmaxOptions import SoftmaxOptionsAddBeta, SoftmaxOptionsEnd, SoftmaxOptionsStart
from tflite.SubGraph import (
    SubGraphAddInputs,
    SubGraphAddName,
    SubGraphAddOperators,
    SubGraphAddOutputs,
    SubGraphAddTensors,
    SubGraphEnd,
    SubGraphStart,
)
from tflite.Tensor import (
    TensorAddBuffer,
    TensorAddName,
    TensorAddQuantization,
    TensorAddShape,
    TensorAddType,
    TensorEnd,
    TensorStart,
)
from tflite.TensorType import TensorType

__all__ = ["TFLiteWriter", "SCHEMA_VERSION"]

SCHEMA_VERSION = 3

# Constant data alignment: TensorFlow's converter aligns buffers to 16 bytes; kernels read int32
# biases and int8 weights straight out of the flatbuffer.
_DATA_ALIGN = 16

_TENSOR_TYPES = {
    np.dtype(np.float32): TensorType.FLOAT32,
    np.dtype(np.int8): TensorType.INT8,
    np.dtype(np.uint8): TensorType.UINT8,
    np.dtype(np.int16): TensorType.INT16,
    np.dtype(np.int32): TensorType.INT32,
    np.dtype(np.int64): TensorType.INT64,
}

# Operator versions as TensorFlow's converter writes them for int8 per-channel models (read off
# ../shared/models). TFLite Micro ignores them; LiteRT uses them to reject kernels it lacks.
_VERSIONS = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "ADD": 2,
    "MEAN": 2,
    "FULLY_CONNECTED": 4,
    "SOFTMAX": 2,
    "RESHAPE": 1,
    "PAD": 2,
    "AVERAGE_POOL_2D": 2,
}


def _act(opts):
    return getattr(ActivationFunctionType, opts.get("fused_activation", "NONE"))


def _pad(opts):
    return getattr(Padding, opts.get("padding", "SAME"))


def _conv2d(b, o):
    Conv2DOptionsStart(b)
    Conv2DOptionsAddPadding(b, _pad(o))
    Conv2DOptionsAddStrideW(b, o.get("stride_w", 1))
    Conv2DOptionsAddStrideH(b, o.get("stride_h", 1))
    Conv2DOptionsAddFusedActivationFunction(b, _act(o))
    Conv2DOptionsAddDilationWFactor(b, o.get("dilation_w", 1))
    Conv2DOptionsAddDilationHFactor(b, o.get("dilation_h", 1))
    return Conv2DOptionsEnd(b)


def _depthwise(b, o):
    DepthwiseConv2DOptionsStart(b)
    DepthwiseConv2DOptionsAddPadding(b, _pad(o))
    DepthwiseConv2DOptionsAddStrideW(b, o.get("stride_w", 1))
    DepthwiseConv2DOptionsAddStrideH(b, o.get("stride_h", 1))
    DepthwiseConv2DOptionsAddDepthMultiplier(b, o.get("depth_multiplier", 1))
    DepthwiseConv2DOptionsAddFusedActivationFunction(b, _act(o))
    DepthwiseConv2DOptionsAddDilationWFactor(b, o.get("dilation_w", 1))
    DepthwiseConv2DOptionsAddDilationHFactor(b, o.get("dilation_h", 1))
    return DepthwiseConv2DOptionsEnd(b)


def _add(b, o):
    AddOptionsStart(b)
    AddOptionsAddFusedActivationFunction(b, _act(o))
    return AddOptionsEnd(b)


def _reducer(b, o):
    ReducerOptionsStart(b)
    ReducerOptionsAddKeepDims(b, bool(o.get("keep_dims", False)))
    return ReducerOptionsEnd(b)


def _fully_connected(b, o):
    FullyConnectedOptionsStart(b)
    FullyConnectedOptionsAddFusedActivationFunction(b, _act(o))
    FullyConnectedOptionsAddKeepNumDims(b, bool(o.get("keep_num_dims", False)))
    return FullyConnectedOptionsEnd(b)


def _softmax(b, o):
    SoftmaxOptionsStart(b)
    SoftmaxOptionsAddBeta(b, float(o.get("beta", 1.0)))
    return SoftmaxOptionsEnd(b)


def _pad_options(b, o):
    PadOptionsStart(b)
    return PadOptionsEnd(b)


def _pool2d(b, o):
    Pool2DOptionsStart(b)
    Pool2DOptionsAddPadding(b, _pad(o))
    Pool2DOptionsAddStrideW(b, o.get("stride_w", 1))
    Pool2DOptionsAddStrideH(b, o.get("stride_h", 1))
    Pool2DOptionsAddFilterWidth(b, o["filter_w"])
    Pool2DOptionsAddFilterHeight(b, o["filter_h"])
    Pool2DOptionsAddFusedActivationFunction(b, _act(o))
    return Pool2DOptionsEnd(b)


# op kind -> (BuiltinOptions union type, encoder); None: the op carries no options table
# (RESHAPE takes its shape from its second input, as the converter writes it).
_OPTIONS = {
    "CONV_2D": (BuiltinOptions.Conv2DOptions, _conv2d),
    "DEPTHWISE_CONV_2D": (BuiltinOptions.DepthwiseConv2DOptions, _depthwise),
    "ADD": (BuiltinOptions.AddOptions, _add),
    "MEAN": (BuiltinOptions.ReducerOptions, _reducer),
    "FULLY_CONNECTED": (BuiltinOptions.FullyConnectedOptions, _fully_connected),
    "SOFTMAX": (BuiltinOptions.SoftmaxOptions, _softmax),
    "RESHAPE": None,
    "PAD": (BuiltinOptions.PadOptions, _pad_options),
    "AVERAGE_POOL_2D": (BuiltinOptions.Pool2DOptions, _pool2d),
    # option-less ops, used by tests to build models dwfuse must reject or handle
    "HARD_SWISH": None,
    "TRANSPOSE": None,
    "QUANTIZE": None,
    "DEQUANTIZE": None,
}


class TFLiteWriter:
    """Collect tensors and operators, then serialise them as one-subgraph TFLite bytes.

    Tensors and operators get indices in the order they are added, which is the order they
    have in the file (operators must be added in execution order).

    Parameters
    ----------
    description : str
        Stored in the model's ``description`` field (tools show it; the converter writes
        "MLIR Converted.").
    """

    def __init__(self, description=""):
        self.description = description
        self._tensors = []
        self._ops = []

    @property
    def num_tensors(self):
        return len(self._tensors)

    def tensor(self, name, shape, dtype, *, data=None, scale=None, zero_point=None,
               quantized_dimension=0):
        """Add a tensor and return its index.

        Parameters
        ----------
        name : str
        shape : sequence of int
        dtype : numpy dtype
        data : numpy array, optional
            The constant value (cast to `dtype`, must have `shape`); None for activations.
        scale, zero_point : sequence, optional
            Quantization: one entry per tensor, or one per slice along `quantized_dimension`.
            A missing zero point means zeros (the int8 spec's symmetric weights and biases).
        quantized_dimension : int
        """
        shape = tuple(int(d) for d in shape)
        dtype = np.dtype(dtype)
        if dtype not in _TENSOR_TYPES:
            raise ValueError(f"tensor {name!r}: unsupported dtype {dtype}")
        if data is not None:
            data = np.ascontiguousarray(np.asarray(data), dtype=dtype.newbyteorder("<"))
            if data.shape != shape:
                raise ValueError(f"tensor {name!r}: data shape {data.shape} != shape {shape}")
        if scale is not None:
            scale = np.atleast_1d(np.asarray(scale, dtype="<f4"))
            if zero_point is None:
                zero_point = np.zeros(scale.size, dtype="<i8")
            zero_point = np.atleast_1d(np.asarray(zero_point, dtype="<i8"))
            if zero_point.size != scale.size:
                raise ValueError(f"tensor {name!r}: {scale.size} scales but "
                                 f"{zero_point.size} zero points")
            if scale.size > 1 and (quantized_dimension >= len(shape)
                                   or shape[quantized_dimension] != scale.size):
                raise ValueError(f"tensor {name!r}: {scale.size} scales do not match dimension "
                                 f"{quantized_dimension} of shape {shape}")
        elif zero_point is not None:
            raise ValueError(f"tensor {name!r}: zero point without scale")
        self._tensors.append(dict(name=name, shape=shape, dtype=dtype, data=data, scale=scale,
                                  zero_point=zero_point, qdim=int(quantized_dimension)))
        return len(self._tensors) - 1

    def constant(self, name, data, dtype=None, **quant):
        """Add a constant tensor whose shape is the shape of `data`; return its index."""
        data = np.asarray(data)
        return self.tensor(name, data.shape, dtype or data.dtype, data=data, **quant)

    def op(self, kind, inputs, outputs, **options):
        """Add an operator (in execution order) and return its index.

        Parameters
        ----------
        kind : str
            TFLite builtin name, e.g. "CONV_2D".
        inputs, outputs : list of int
            Tensor indices; -1 marks an omitted optional input.
        **options
            Builtin options as in `dwfuse.ir.Op.options`: padding ("SAME"/"VALID"), stride_h,
            stride_w, fused_activation ("NONE"/"RELU"/"RELU6"), depth_multiplier, keep_dims,
            keep_num_dims, beta, filter_h, filter_w.
        """
        if kind not in _OPTIONS:
            raise ValueError(f"operator {kind} is not supported by the writer")
        for t in list(inputs) + list(outputs):
            if not -1 <= t < len(self._tensors):
                raise ValueError(f"operator {kind}: tensor index {t} out of range")
        self._ops.append(dict(kind=kind, inputs=[int(t) for t in inputs],
                              outputs=[int(t) for t in outputs], options=options))
        return len(self._ops) - 1

    def to_bytes(self, inputs, outputs, subgraph_name="main"):
        """Serialise the model with the given subgraph input and output tensor indices."""
        size = sum(t["data"].nbytes for t in self._tensors if t["data"] is not None)
        b = flatbuffers.Builder(size + 64 * len(self._tensors) + 4096)

        # Buffers: 0 is the empty sentinel every activation points at; each constant owns one.
        buffer_of = {}
        data_vecs = [None]
        for i, t in enumerate(self._tensors):
            if t["data"] is not None:
                buffer_of[i] = len(data_vecs)
                data_vecs.append(_byte_vector(b, t["data"].tobytes()))
        buffers = []
        for vec in data_vecs:
            BufferStart(b)
            if vec is not None:
                BufferAddData(b, vec)
            buffers.append(BufferEnd(b))

        tensors = [self._tensor_table(b, t, buffer_of.get(i, 0))
                   for i, t in enumerate(self._tensors)]

        kinds = sorted({op["kind"] for op in self._ops}, key=[o["kind"] for o in self._ops].index)
        opcode_index = {k: i for i, k in enumerate(kinds)}
        operators = []
        for op in self._ops:
            ins = _int32_vector(b, op["inputs"])
            outs = _int32_vector(b, op["outputs"])
            spec = _OPTIONS[op["kind"]]
            opts = spec[1](b, op["options"]) if spec else None
            OperatorStart(b)
            OperatorAddOpcodeIndex(b, opcode_index[op["kind"]])
            OperatorAddInputs(b, ins)
            OperatorAddOutputs(b, outs)
            if spec:
                OperatorAddBuiltinOptionsType(b, spec[0])
                OperatorAddBuiltinOptions(b, opts)
            operators.append(OperatorEnd(b))

        opcodes = []
        for k in kinds:
            code = getattr(BuiltinOperator, k)
            OperatorCodeStart(b)
            # Codes above 127 live only in builtin_code; the int8 legacy field saturates there.
            OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            OperatorCodeAddVersion(b, _VERSIONS.get(k, 1))
            OperatorCodeAddBuiltinCode(b, code)
            opcodes.append(OperatorCodeEnd(b))

        name = b.CreateString(subgraph_name)
        tensors_vec = _table_vector(b, tensors)
        inputs_vec = _int32_vector(b, inputs)
        outputs_vec = _int32_vector(b, outputs)
        ops_vec = _table_vector(b, operators)
        SubGraphStart(b)
        SubGraphAddTensors(b, tensors_vec)
        SubGraphAddInputs(b, inputs_vec)
        SubGraphAddOutputs(b, outputs_vec)
        SubGraphAddOperators(b, ops_vec)
        SubGraphAddName(b, name)
        subgraph = SubGraphEnd(b)

        opcodes_vec = _table_vector(b, opcodes)
        subgraphs_vec = _table_vector(b, [subgraph])
        desc = b.CreateString(self.description)
        buffers_vec = _table_vector(b, buffers)
        ModelStart(b)
        ModelAddVersion(b, SCHEMA_VERSION)
        ModelAddOperatorCodes(b, opcodes_vec)
        ModelAddSubgraphs(b, subgraphs_vec)
        ModelAddDescription(b, desc)
        ModelAddBuffers(b, buffers_vec)
        b.Finish(ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _tensor_table(b, t, buffer_index):
        name = b.CreateString(t["name"])
        shape = _int32_vector(b, t["shape"])
        quant = None
        if t["scale"] is not None:
            scale = b.CreateNumpyVector(t["scale"])
            zp = b.CreateNumpyVector(t["zero_point"])
            QuantizationParametersStart(b)
            QuantizationParametersAddScale(b, scale)
            QuantizationParametersAddZeroPoint(b, zp)
            QuantizationParametersAddQuantizedDimension(b, t["qdim"])
            quant = QuantizationParametersEnd(b)
        TensorStart(b)
        TensorAddShape(b, shape)
        TensorAddType(b, _TENSOR_TYPES[t["dtype"]])
        TensorAddBuffer(b, buffer_index)
        TensorAddName(b, name)
        if quant is not None:
            TensorAddQuantization(b, quant)
        return TensorEnd(b)


def _byte_vector(b, payload):
    """A [ubyte] vector whose first element is 16-byte aligned (CreateNumpyVector aligns to 1)."""
    b.StartVector(1, len(payload), _DATA_ALIGN)
    b.head = b.head - len(payload)
    b.Bytes[b.head:b.head + len(payload)] = payload
    return b.EndVector()


def _int32_vector(b, values):
    return b.CreateNumpyVector(np.asarray(values, dtype="<i4").reshape(-1))


def _table_vector(b, offsets):
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()
