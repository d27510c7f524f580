"""Per-layer work and traffic figures of a graph: MACs, weight bytes, activation bytes.

These are properties of the model, not of any backend; `dwfuse info` prints them and every
run report starts from them.
"""

import numpy as np

__all__ = ["op_macs", "op_weight_bytes", "op_activation_bytes", "layer_table", "compulsory_dram_bytes"]


def _n(shape):
    return int(np.prod(shape, dtype=np.int64))


def op_macs(op, graph):
    """Multiply-accumulates of one op (0 for ops that do no MACs)."""
    ts = graph.tensors
    if op.kind == "CONV_2D":
        o, kh, kw, i = ts[op.inputs[1]].shape
        return _n(ts[op.outputs[0]].shape) * kh * kw * i
    if op.kind == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = ts[op.inputs[1]].shape
        return _n(ts[op.outputs[0]].shape) * kh * kw
    if op.kind == "FULLY_CONNECTED":
        return _n(ts[op.outputs[0]].shape) * ts[op.inputs[1]].shape[1]
    return 0


def op_weight_bytes(op, graph):
    """Bytes of constant operands that are weights or biases (shape operands excluded)."""
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    return sum(graph.tensors[i].nbytes for i in op.inputs[1:] if i >= 0 and graph.tensors[i].is_constant)


def op_activation_bytes(op, graph):
    """Bytes of non-constant inputs plus outputs: what a layer-by-layer engine moves."""
    ins = sum(graph.tensors[i].nbytes for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant)
    return ins + sum(graph.tensors[i].nbytes for i in op.outputs)


def layer_table(graph):
    """One dict per op: index, op, input and output shapes, macs, weight and activation bytes."""
    rows = []
    for op in graph.ops:
        rows.append(dict(
            index=op.index, op=op.kind,
            input_shapes=[list(graph.tensors[i].shape) for i in op.inputs
                          if i >= 0 and not graph.tensors[i].is_constant],
            output_shape=list(graph.tensors[op.outputs[0]].shape),
            macs=op_macs(op, graph), weight_bytes=op_weight_bytes(op, graph),
            activation_bytes=op_activation_bytes(op, graph)))
    return rows


def compulsory_dram_bytes(graph, groups):
    """Issue 4's DRAM floor: weights + network input + output + activations at group boundaries.

    `groups` is a fusion plan (`dwfuse.fusion.plan`). An int8 activation produced in one group
    and read in another is written once and read once (shape operands and other host-side values
    are not activations); the graph's inputs and outputs count once.
    """
    weights = sum(op_weight_bytes(op, graph) for op in graph.ops)
    ends = set(graph.inputs) | set(graph.outputs)
    io = sum(graph.tensors[i].nbytes for i in ends)
    made = {t: k for k, grp in enumerate(groups) for op in grp.ops for t in op.outputs}
    crossing = {t for k, grp in enumerate(groups) for op in grp.ops for t in op.inputs
                if t in made and made[t] != k and t not in ends and graph.tensors[t].dtype == np.int8}
    return weights + io + 2 * sum(graph.tensors[t].nbytes for t in crossing)
