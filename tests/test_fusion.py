"""The fusion planner groups MobileNet layers into the hardware's modes."""

import numpy as np

import dwfuse
from dwfuse import zoo
from dwfuse.fusion import group_macs, lower_bound_cycles, plan
from dwfuse.stats import op_macs
from shared_models import shared_model


def modes(path_or_bytes):
    g = dwfuse.load(path_or_bytes)
    return g, plan(g)


def test_mobilenet_v1_pairs_fuse():
    g, groups = modes(shared_model("mobilenet_v1_a025_96_int8.tflite"))
    assert groups[0].mode == "CONV3"
    assert [x.mode for x in groups[1:14]] == ["DW_PW"] * 13
    assert all(x.mode == "HOST" for x in groups if x.ops[0].kind in ("MEAN", "SOFTMAX", "RESHAPE"))


def test_mobilenet_v2_blocks_fuse_with_residual():
    g, groups = modes(zoo.build("mobilenet_v2_0.35_96"))
    blocks = [x for x in groups if x.mode == "PW_DW_PW"]
    assert len(blocks) == 16
    with_add = [x for x in blocks if x.residual >= 0]
    assert len(with_add) == 10  # MobileNetV2 has 10 residual ADDs
    for x in with_add:
        assert x.ops[-1].kind == "ADD" and x.residual == x.ops[0].inputs[0]
    # every op is in exactly one group, in order
    assert [op.index for x in groups for op in x.ops] == list(range(len(g.ops)))


def test_person_detect_first_layer_is_conv3():
    g, groups = modes(shared_model("person_detect.tflite"))
    # DEPTHWISE_CONV_2D over 1 channel with depth multiplier 8 == a standard 3x3 conv
    assert groups[0].mode == "CONV3" and groups[0].ops[0].kind == "DEPTHWISE_CONV_2D"


def test_group_macs_add_up():
    g, groups = modes(zoo.build("mobilenet_v2_0.35_96"))
    total = sum(sum(group_macs(x, g)) for x in groups)
    assert total == sum(op_macs(op, g) for op in g.ops)
    blk = next(x for x in groups if x.mode == "PW_DW_PW")
    pe, dw = group_macs(blk, g)
    assert dw == op_macs(blk.ops[1], g) and pe == op_macs(blk.ops[0], g) + op_macs(blk.ops[2], g)
    assert lower_bound_cycles(blk, g, 128, 72) == max(-(-pe // 128), -(-dw // 72))


def test_explicit_pad_folds_into_line_buffer():
    from test_golden_vs_tflm import pytorch_style_model
    g, groups = modes(pytorch_style_model(np.random.default_rng(0)))
    assert [x.mode for x in groups] == ["HOST", "HOST", "CONV3", "HOST"]
    assert groups[2].pad == (1, 1, 1, 1) and [op.kind for op in groups[2].ops] == ["PAD", "CONV_2D"]
