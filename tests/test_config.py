"""Config: presets, the line-buffer sizing check the compiler calls, the multiplier policy."""

import dataclasses
import json

import pytest

from dwfuse.hdl.config import LUT_MULTIPLIER_ROLES, MULTIPLIER_ROLES, Config, preset

# MobileNetV2-1.0-224 (Sandler et al., table 2): (expansion t, output channels c, repeats n,
# stride s) after the 224x224x3 -> 112x112x32 stem conv. Written out here rather than read
# from a model file so the line-buffer inputs of every 3x3 layer are listed independently.
MOBILENET_V2_224 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2_224_line_rows():
    """(width, channels) of the input row of every 3x3 layer (the stem conv, then each DW)."""
    rows = [(224, 3)]
    size, channels = 112, 32
    for t, c, n, s in MOBILENET_V2_224:
        for k in range(n):
            rows.append((size, channels * t))   # the depthwise input: the expanded tensor
            if k == 0 and s == 2:
                size = (size + 1) // 2
            channels = c
    return rows


def test_mobilenet_v2_224_rows_fit_the_ecp5_line_buffer():
    config = preset("ecp5")
    rows = mobilenet_v2_224_line_rows()
    assert len(rows) == 18 and (112, 96) in rows and (7, 960) in rows and (14, 576) in rows
    assert all(config.line_buffer_fits(w, c) for w, c in rows), \
        [(w, c) for w, c in rows if not config.line_buffer_fits(w, c)]
    # the widest expanded row is what sets the depth: 38 column triples x 12 words
    assert config.line_buffer_depth == 456
    assert not config.line_buffer_fits(112, 104) and not config.line_buffer_fits(115, 96)
    assert preset("b4096").line_buffer_depth == 114
    assert all(preset("b4096").line_buffer_fits(w, c) for w, c in rows)
    narrow = preset("ecp5_narrow")      # 4 lanes: the same rows in twice the words
    assert narrow.line_buffer_depth == 912 and all(narrow.line_buffer_fits(w, c) for w, c in rows)
    assert not narrow.line_buffer_fits(112, 100)


def test_line_buffer_fits_limits():
    tiny = preset("tiny")                 # 4 lanes, max_width 32, max_channels 64, default depth
    assert tiny.line_bank_depth is None and tiny.line_buffer_depth == 11 * 16
    assert tiny.line_buffer_fits(32, 64) and tiny.line_buffer_fits(1, 1)
    assert not tiny.line_buffer_fits(33, 4) and not tiny.line_buffer_fits(8, 65)
    assert not tiny.line_buffer_fits(0, 4) and not tiny.line_buffer_fits(8, 0)
    small = dataclasses.replace(tiny, line_bank_depth=20)
    assert small.line_buffer_fits(30, 8) and not small.line_buffer_fits(31, 8)
    assert small.line_buffer_fits(30, 7)  # channels round up to words of 4 lanes


def test_multiplier_policy():
    ecp5, tiny = preset("ecp5"), preset("tiny")
    assert set(ecp5.lut_multipliers) == {"dw_taps"}
    assert ecp5.multiplier_kind("dw_taps", "ecp5") == "lut"
    assert ecp5.multiplier_kind("dw_requant", "ecp5") == "ecp5"
    assert ecp5.multiplier_kind("pe", "ecp5") == "ecp5"
    # the last pe_lut_columns PE columns are LUT-built
    assert [ecp5.pe_column_kind(c, "ecp5") for c in range(16)] == ["ecp5"] * 10 + ["lut"] * 6
    assert {tiny.pe_column_kind(c, "infer") for c in range(tiny.pe_cols)} == {"infer"}
    with pytest.raises(ValueError, match="column must be in 0..15"):
        ecp5.pe_column_kind(16, "ecp5")
    with pytest.raises(ValueError, match="pe_lut_columns must be an integer from 0 to pe_cols"):
        dataclasses.replace(tiny, pe_lut_columns=tiny.pe_cols + 1)
    assert tiny.multiplier_kind("dw_taps", "infer") == "infer"
    assert set(LUT_MULTIPLIER_ROLES) <= set(MULTIPLIER_ROLES)
    with pytest.raises(ValueError, match="role must be one of"):
        ecp5.multiplier_kind("taps", "ecp5")
    with pytest.raises(ValueError, match="can be built from LUTs"):
        dataclasses.replace(tiny, lut_multipliers=("pe_requant",))
    with pytest.raises(TypeError, match="must be a tuple"):
        dataclasses.replace(tiny, lut_multipliers="dw_taps")
    assert Config(**json.loads(json.dumps(ecp5.as_dict()))) == ecp5   # manifests, synth JSON
    with pytest.raises(TypeError, match="line_bank_depth"):
        dataclasses.replace(tiny, line_bank_depth=0)
    assert isinstance(Config(**tiny.as_dict()), Config)
