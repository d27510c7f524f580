"""Execute a `Graph` op by op with the golden model (`dwfuse.verif.golden.ops`).

This is the `golden` backend of issue 2 and the oracle every other backend is checked against.
It also runs the host ops (SOFTMAX, MEAN, RESHAPE, ...) when the accelerator runs the rest.
"""

import numpy as np

from .errors import ModelError
from .verif.golden import ops as G

__all__ = ["run_op", "run_graph", "check_input"]


def _const_or(values, ts, i):
    t = ts[i]
    return t.data if t.is_constant else values[i]


def run_op(op, graph, values):
    """Compute the outputs of `op` from `values` (tensor index → array); returns a list."""
    ts = graph.tensors
    p, o = op.params, op.options
    x = _const_or(values, ts, op.inputs[0])
    k = op.kind
    if k == "CONV_2D":
        w = ts[op.inputs[1]].data
        y = G.conv2d(x, w, p["bias"], in_zp=p["in_zp"], out_zp=p["out_zp"], multiplier=p["multiplier"],
                     shift=p["shift"], stride=o["stride"], dilation=o["dilation"], padding=o["padding"],
                     act_min=p["act_min"], act_max=p["act_max"])
    elif k == "DEPTHWISE_CONV_2D":
        w = ts[op.inputs[1]].data
        y = G.depthwise_conv2d(x, w, p["bias"], in_zp=p["in_zp"], out_zp=p["out_zp"],
                               multiplier=p["multiplier"], shift=p["shift"],
                               depth_multiplier=p["depth_multiplier"], stride=o["stride"],
                               dilation=o["dilation"], padding=o["padding"],
                               act_min=p["act_min"], act_max=p["act_max"])
    elif k == "FULLY_CONNECTED":
        w = ts[op.inputs[1]].data
        y = G.fully_connected(x.reshape(-1, w.shape[1]), w, p["bias"], in_zp=p["in_zp"], out_zp=p["out_zp"],
                              multiplier=p["multiplier"], shift=p["shift"],
                              act_min=p["act_min"], act_max=p["act_max"])
    elif k == "ADD":
        b = _const_or(values, ts, op.inputs[1])
        y = G.add(x, b, **p)
    elif k in ("PAD", "PADV2"):
        y = G.pad(x, p["paddings"], p["pad_value"])
    elif k == "AVERAGE_POOL_2D":
        y = G.average_pool2d(x, filter_size=o["filter_size"], stride=o["stride"], padding=o["padding"],
                             act_min=p["act_min"], act_max=p["act_max"])
    elif k == "MEAN":
        y = G.mean(x, p["axes"], o["keep_dims"], in_zp=p["in_zp"], out_zp=p["out_zp"],
                   multiplier=p["multiplier"], shift=p["shift"])
    elif k == "SOFTMAX":
        y = G.softmax(x, **p)
    elif k == "RESHAPE":
        y = x
    elif k == "TRANSPOSE":
        y = np.transpose(x, p["perm"])
    elif k == "SHAPE":
        y = np.array(x.shape, dtype=np.int32)
    elif k == "STRIDED_SLICE":
        begin, end, strides = (_const_or(values, ts, i) for i in op.inputs[1:4])
        y = G.strided_slice(x, begin, end, strides, **o)
    elif k == "PACK":
        y = np.stack([_const_or(values, ts, i) for i in op.inputs], axis=o["axis"])
    elif k == "QUANTIZE":
        yt = ts[op.outputs[0]]
        if x.dtype == np.float32:
            y = G.quantize(x, scale=yt.scale[0], zero_point=yt.zp)
        else:
            y = G.requantize(x, **p)
    elif k == "DEQUANTIZE":
        xt = ts[op.inputs[0]]
        y = G.dequantize(x, scale=xt.scale[0], zero_point=xt.zp)
    else:
        raise ModelError(f"op {op.index} ({k}): no golden implementation")
    out = ts[op.outputs[0]]
    y = np.asarray(y)
    if y.size != int(np.prod(out.shape, dtype=np.int64)):
        raise ModelError(f"op {op.index} ({k}): computed {y.shape}, model declares {out.shape}")
    return [y.reshape(out.shape).astype(out.dtype, copy=False)]


def check_input(graph, index, x):
    """``x`` as an array, or ModelError unless it has graph input tensor ``index``'s shape and dtype."""
    t = graph.tensors[index]
    x = np.asarray(x)
    if tuple(x.shape) != tuple(t.shape) or x.dtype != t.dtype:
        raise ModelError(f"input {t.name!r}: got {x.dtype}{list(x.shape)}, model expects "
                         f"{np.dtype(t.dtype)}{list(t.shape)}")
    return x


def run_graph(graph, inputs, keep_all=False):
    """Run the whole graph.

    Parameters
    ----------
    graph : Graph
    inputs : array or list of arrays, one per graph input, in the input tensor's shape and dtype.
    keep_all : bool
        Return every intermediate tensor too (for per-tensor comparisons).

    Returns
    -------
    (outputs, values) : list of arrays, and a dict tensor index → array (only the graph
    inputs and outputs unless keep_all).
    """
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    values = {}
    for i, x in zip(graph.inputs, inputs):
        values[i] = check_input(graph, i, x)
    last_use = {}
    for op in graph.ops:
        for i in op.inputs:
            last_use[i] = op.index
    for op in graph.ops:
        for i, y in zip(op.outputs, run_op(op, graph, values)):
            values[i] = y
        if not keep_all:
            for i in op.inputs:
                if last_use.get(i) == op.index and i not in graph.outputs and i not in graph.inputs:
                    values.pop(i, None)
    return [values[i] for i in graph.outputs], values
