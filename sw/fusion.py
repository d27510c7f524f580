"""Partition a graph into accelerator groups (the hardware's layer modes) and host ops.

The accelerator runs these modes (see hdl/ and the README's architecture section):

- ``PW``       1x1 CONV_2D (stride 1) or FULLY_CONNECTED on the PE array
- ``DW``       3x3 DEPTHWISE_CONV_2D (depth multiplier 1) on the depthwise engine
- ``CONV3``    3x3 CONV_2D through the line buffer as im2col on the PE array (also a depthwise conv
               with one input channel and a depth multiplier, which is a standard conv)
- ``DW_PW``    DW followed by the PW that is its only consumer (MobileNetV1 pair)
- ``PW_DW_PW`` PW expand → DW → PW project, optionally + the residual ADD (MobileNetV2 block)

A fused group keeps its intermediate tensors on chip: only the group's input, residual and output
touch DRAM. An explicit PAD feeding a 3x3 conv or depthwise conv (PyTorch exports) is folded into
the line buffer's padding when it pads only H and W by at most one on each side. Everything else
runs on the host with the golden kernels.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Group", "plan", "group_macs", "lower_bound_cycles", "ACCEL_MODES"]

ACCEL_MODES = ("PW", "DW", "CONV3", "DW_PW", "PW_DW_PW")


@dataclass
class Group:
    """A run of ops executed as one unit.

    Attributes
    ----------
    mode : str
        One of ACCEL_MODES, or "HOST".
    ops : list of Op
        In execution order (a folded PAD comes first).
    input : int
        The tensor the group streams in (for HOST groups: -1; they read whatever they need).
    output : int
        The tensor the group produces in DRAM.
    residual : int
        Tensor added at the output (PW_DW_PW with ADD), else -1.
    pad : tuple or None
        (top, bottom, left, right) padding given to the line buffer, for modes with a 3x3 stage.
    """

    mode: str
    ops: list
    input: int = -1
    output: int = -1
    residual: int = -1
    pad: tuple | None = None
    notes: list = field(default_factory=list)

    @property
    def name(self):
        return "+".join(op.kind for op in self.ops)


def _consumers(graph):
    users = {}
    for op in graph.ops:
        for i in op.inputs:
            if i >= 0:
                users.setdefault(i, []).append(op)
    return users


def _is_pw(op, g):
    if op.kind == "FULLY_CONNECTED":
        return True
    if op.kind != "CONV_2D":
        return False
    _, kh, kw, _ = g.tensors[op.inputs[1]].shape
    return (kh, kw) == (1, 1) and op.options["stride"] == (1, 1) and op.options["dilation"] == (1, 1)


def _is_3x3(op, g):
    _, kh, kw, _ = g.tensors[op.inputs[1]].shape
    return ((kh, kw) == (3, 3) and op.options["stride"] in ((1, 1), (2, 2))
            and op.options["dilation"] == (1, 1))


def _is_dw(op, g):
    return (op.kind == "DEPTHWISE_CONV_2D" and _is_3x3(op, g) and op.params["depth_multiplier"] == 1)


def _is_conv3(op, g):
    if op.kind == "CONV_2D":
        return _is_3x3(op, g)
    # a depthwise conv over one input channel is a standard conv with depth_multiplier outputs
    return (op.kind == "DEPTHWISE_CONV_2D" and _is_3x3(op, g) and g.tensors[op.inputs[0]].shape[3] == 1
            and op.params["depth_multiplier"] > 1)


def _padding(op, g):
    """(top, bottom, left, right) TFLite uses for this 3x3 op (SAME puts the odd extra after)."""
    from .verif.golden.ops import conv_padding
    x = g.tensors[op.inputs[0]]
    sh, sw = op.options["stride"]
    _, pt, pb = conv_padding(x.shape[1], 3, sh, 1, op.options["padding"])
    _, pl, pr = conv_padding(x.shape[2], 3, sw, 1, op.options["padding"])
    return pt, pb, pl, pr


def _foldable_pad(pad_op, conv_op, g, users):
    """An explicit PAD feeding only a VALID 3x3 conv, padding H/W by <= 1 with the zero point."""
    if pad_op is None or pad_op.kind not in ("PAD", "PADV2"):
        return None
    if len(users.get(pad_op.outputs[0], [])) != 1 or conv_op.options["padding"] != "VALID":
        return None
    p = pad_op.params["paddings"]
    x = g.tensors[pad_op.inputs[0]]
    if p.shape != (4, 2) or p[0].any() or p[3].any() or p.max() > 1:
        return None
    if x.scale is None or pad_op.params["pad_value"] != x.zp:
        return None
    return int(p[1, 0]), int(p[1, 1]), int(p[2, 0]), int(p[2, 1])


def plan(graph):
    """Group the graph's ops; returns a list of Group in execution order."""
    g = graph
    users = _consumers(g)
    ops = g.ops
    done = set()
    groups = []

    def single_user(t, op):
        return users.get(t, []) == [op] and t not in g.outputs

    k = 0
    while k < len(ops):
        op = ops[k]
        if op.index in done:
            k += 1
            continue
        nxt = ops[k + 1] if k + 1 < len(ops) else None
        nxt2 = ops[k + 2] if k + 2 < len(ops) else None
        nxt3 = ops[k + 3] if k + 3 < len(ops) else None
        # explicit PAD + VALID 3x3 conv: fold the PAD into the line buffer
        if op.kind in ("PAD", "PADV2") and nxt is not None and (_is_dw(nxt, g) or _is_conv3(nxt, g)) \
                and nxt.inputs[0] == op.outputs[0]:
            pad = _foldable_pad(op, nxt, g, users)
            if pad is not None:
                mode = "DW" if _is_dw(nxt, g) else "CONV3"
                grp = Group(mode, [op, nxt], input=op.inputs[0], output=nxt.outputs[0], pad=pad,
                            notes=["explicit PAD folded into the line buffer"])
                # a folded DW may still fuse with the PW after it
                if mode == "DW" and nxt2 is not None and _is_pw(nxt2, g) and nxt2.kind == "CONV_2D" \
                        and nxt2.inputs[0] == nxt.outputs[0] and single_user(nxt.outputs[0], nxt2):
                    grp = Group("DW_PW", [op, nxt, nxt2], input=op.inputs[0], output=nxt2.outputs[0], pad=pad,
                                notes=grp.notes)
                groups.append(grp)
                done.update(o.index for o in grp.ops)
                k += len(grp.ops)
                continue
        # PW expand -> DW -> PW project (+ ADD of the block input)
        if _is_pw(op, g) and op.kind == "CONV_2D" and nxt is not None and _is_dw(nxt, g) \
                and nxt.inputs[0] == op.outputs[0] and single_user(op.outputs[0], nxt) \
                and nxt2 is not None and _is_pw(nxt2, g) and nxt2.kind == "CONV_2D" \
                and nxt2.inputs[0] == nxt.outputs[0] and single_user(nxt.outputs[0], nxt2):
            grp = Group("PW_DW_PW", [op, nxt, nxt2], input=op.inputs[0], output=nxt2.outputs[0],
                        pad=_padding(nxt, g))
            if nxt3 is not None and nxt3.kind == "ADD" and single_user(nxt2.outputs[0], nxt3):
                other = [t for t in nxt3.inputs if t != nxt2.outputs[0]]
                if len(other) == 1 and other[0] == op.inputs[0] and \
                        g.tensors[other[0]].shape == g.tensors[nxt3.outputs[0]].shape:
                    grp.ops.append(nxt3)
                    grp.residual = other[0]
                    grp.output = nxt3.outputs[0]
            groups.append(grp)
            done.update(o.index for o in grp.ops)
            k += len(grp.ops)
            continue
        # DW -> PW
        if _is_dw(op, g) and nxt is not None and _is_pw(nxt, g) and nxt.kind == "CONV_2D" \
                and nxt.inputs[0] == op.outputs[0] and single_user(op.outputs[0], nxt):
            groups.append(Group("DW_PW", [op, nxt], input=op.inputs[0], output=nxt.outputs[0], pad=_padding(op, g)))
            done.update((op.index, nxt.index))
            k += 2
            continue
        if _is_dw(op, g):
            groups.append(Group("DW", [op], input=op.inputs[0], output=op.outputs[0], pad=_padding(op, g)))
        elif _is_conv3(op, g):
            groups.append(Group("CONV3", [op], input=op.inputs[0], output=op.outputs[0], pad=_padding(op, g)))
        elif _is_pw(op, g):
            groups.append(Group("PW", [op], input=op.inputs[0], output=op.outputs[0]))
        else:
            groups.append(Group("HOST", [op], output=op.outputs[0]))
        done.add(op.index)
        k += 1
    return groups


def group_macs(group, graph):
    """(PE-array MACs, depthwise-engine MACs) of a group."""
    from .stats import op_macs
    pe = dw = 0
    for op in group.ops:
        m = op_macs(op, graph)
        if op.kind == "DEPTHWISE_CONV_2D" and group.mode != "CONV3":
            dw += m
        elif op.kind in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            pe += m
    return pe, dw


def lower_bound_cycles(group, graph, pe_macs_per_cycle, dw_macs_per_cycle):
    """max(PE-array MACs / PE rate, depthwise MACs / DW rate): issue 4's per-group bound."""
    pe, dw = group_macs(group, graph)
    return int(max(np.ceil(pe / pe_macs_per_cycle), np.ceil(dw / dw_macs_per_cycle)))
