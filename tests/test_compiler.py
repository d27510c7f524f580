"""The compiler and the golden program backend.

A compiled program runs from its DRAM image only (descriptors, packed weights, tiles), so these
tests check the compiler's partition, tiling, packing, memory map and descriptors against
`dwfuse.run_graph` (itself checked against TFLite Micro): the program's outputs and every tensor
an accelerator job wrote must equal the interpreter's, on the ecp5 preset and on a small config
that forces column tiles, output-channel tiles and split PW_DW_PW blocks.
"""

import dataclasses

import numpy as np
import pytest

import dwfuse
from dwfuse.errors import HardwareLimitError
from dwfuse.fusion import plan
from dwfuse.golden_backend import DmaWindowError
from dwfuse.hdl import descriptor as D
from dwfuse.hdl.config import Config, preset
from dwfuse.inputs import random_input
from descriptor_rules import descriptor_faults, window_faults
from shared_models import shared_model

SHARED = ["person_detect.tflite", "mobilenet_v1_a025_96_int8.tflite", "mobilenet_v2_a035_96_int8.tflite"]

#: Narrow line buffer, small weight buffer and tables: every kind of tiling on the shared models.
SMALL = Config(name="small", lanes=4, pe_cols=8, requant_lanes=2, max_width=40, max_channels=1280, line_rows=4,
               max_k=1280, weight_words=512, max_out_channels=256, bus_bytes=8, residual_lanes=1)


def _model(name):
    return dwfuse.load(shared_model(name) if name.endswith(".tflite") else name)


def _assert_hardware_accepts(prog):
    """Every descriptor passes the JobSequencer's CHECK rules (tests/descriptor_rules.py)."""
    for job in prog.jobs:
        d = D.unpack(D.descriptor_layout(), D.pack(D.descriptor_layout(), job.descriptor))
        where = f"job {job.addr:#x} ({D.MODES[d['mode']]}, group {job.group})"
        assert not descriptor_faults(d, prog.config), f"{where}: {descriptor_faults(d, prog.config)}"
        assert not window_faults(d, prog.config), f"{where}: {window_faults(d, prog.config)}"


def _check_program(g, config, seed=0):
    """Compile, run, compare with the interpreter; returns (program, report)."""
    prog = dwfuse.compile(g, config)
    _assert_hardware_accepts(prog)
    x = random_input(g.input_tensor(), seed)
    ref, values = dwfuse.run_graph(g, x, keep_all=True)
    out, rep = prog.run(x, keep_all=True)
    assert len(out) == len(ref)
    for a, b in zip(out, ref):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    accel = {cg.group.output for cg in prog.groups if cg.mode != "HOST"}
    assert accel and accel <= set(rep["tensors"])
    for t in accel:
        assert np.array_equal(rep["tensors"][t], values[t]), f"tensor {t} ({g.tensors[t].name}) differs"
    return prog, rep


@pytest.mark.parametrize("config", ["ecp5", "ecp5_narrow", SMALL], ids=["ecp5", "ecp5_narrow", "small"])
@pytest.mark.parametrize("name", SHARED)
def test_shared_models_match_interpreter(name, config):
    prog, rep = _check_program(_model(name), config)
    modes = {cg.mode for cg in prog.groups}
    assert "CONV3" in modes and "DW_PW" in modes
    if config is SMALL:
        assert any(len(cg.col_tiles) > 1 for cg in prog.groups)
        assert any(len(cg.chan_tiles) > 1 for cg in prog.groups)
    for cg in prog.groups:      # the notes say what was done to this group, and only that
        notes = " ".join(cg.group.notes)
        assert ("column tiles" in notes) == (len(cg.col_tiles) > 1)
        assert ("output-channel tiles" in notes) == (len(cg.chan_tiles) > 1)


def test_small_config_splits_inverted_residual_blocks():
    g = _model("mobilenet_v2_a035_96_int8.tflite")
    prog, _ = _check_program(g, SMALL, seed=3)
    split = [cg for cg in prog.groups if any("split" in n for n in cg.group.notes)]
    assert split and {cg.mode for cg in split} == {"PW", "DW_PW", "HOST"}
    # the hardware adds residuals only in PW_DW_PW: a split block's ADD runs on the host
    assert [op.kind for cg in split if cg.mode == "HOST" for op in cg.group.ops] and \
        all(op.kind == "ADD" for cg in split if cg.mode == "HOST" for op in cg.group.ops)
    assert all(cg.mode == "PW_DW_PW" for cg in prog.groups if cg.group.residual >= 0)
    for cg in prog.groups:   # every job's weights fit the buffer and its tables
        for j in cg.jobs:
            d = prog.jobs[j].descriptor
            words = sum(d.get(s, {}).get("weight_words", 0) for s in ("pe0", "pe1"))
            tiles = sum(d.get(s, {}).get("out_tiles", 0) for s in ("pe0", "pe1"))
            assert words <= SMALL.weight_words and tiles * SMALL.pe_cols <= SMALL.max_out_channels


@pytest.mark.parametrize("name", ["mobilenet_v2_0.35_75x61_c10", "mobilenet_v1_0.25_65x97_c7"])
def test_odd_sizes_with_column_tiles(name):
    """Odd widths and heights: stride-2 column tiles with uneven halos and SAME's extra pad."""
    cfg = dataclasses.replace(SMALL, max_width=16)
    prog, _ = _check_program(_model(name), cfg, seed=5)
    assert max(len(cg.col_tiles) for cg in prog.groups) >= 3


def test_mobilenet_v2_224_ecp5():
    prog, rep = _check_program(_model("mobilenet_v2_1.0_224"), "ecp5")
    assert rep["jobs"] == len(prog.jobs) and rep["lower_bound_cycles"] > 0


def test_many_inputs_reuse_one_program():
    g = _model("person_detect.tflite")
    prog = dwfuse.compile(g, "ecp5")
    image = prog.image.copy()
    for seed in (1, 2):
        x = random_input(g.input_tensor(), seed)
        (y,), _ = prog.run(x)
        (ref,), _ = dwfuse.run_graph(g, x)
        assert np.array_equal(y, ref)
    assert np.array_equal(prog.image, image)


def _boundary_bytes(g):
    """Compulsory DRAM bytes: weights + network input + output + group-boundary activations.

    Independent of the compiler: from the model and the fusion plan only. A tensor produced by
    one group and read by another is written once and read once.
    """
    weights = sum(g.tensors[i].nbytes for op in g.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                                      "FULLY_CONNECTED")
                  for i in op.inputs[1:] if i >= 0)
    io = sum(g.tensors[i].nbytes for i in g.inputs + g.outputs)
    produced = {}
    for k, grp in enumerate(plan(g)):
        for op in grp.ops:
            for t in op.outputs:
                produced[t] = k
    crossing = set()
    for k, grp in enumerate(plan(g)):
        for op in grp.ops:
            for t in op.inputs:
                if t in produced and produced[t] != k and g.tensors[t].dtype == np.int8:
                    crossing.add(t)
    return weights + io + 2 * sum(g.tensors[t].nbytes for t in crossing - set(g.outputs))


@pytest.mark.parametrize("name", SHARED + ["mobilenet_v2_1.0_224"])
def test_dram_traffic_near_compulsory(name):
    g = _model(name)
    prog = dwfuse.compile(g, "ecp5")
    _, rep = prog.run(random_input(g.input_tensor(), 0))
    compulsory = _boundary_bytes(g)
    assert rep["compulsory_dram_bytes"] == compulsory
    assert rep["dram_bytes"] <= 1.2 * compulsory, (rep["dram_bytes"], compulsory)
    assert rep["dram_bytes"] < rep["layer_by_layer_dram_bytes"]
    # what the jobs moved adds up per group and per layer
    assert rep["dram_read_bytes"] == sum(r["dram_read_bytes"] for r in rep["layers"])


def test_memory_map_windows_and_buffer_reuse():
    g = _model("mobilenet_v2_a035_96_int8.tflite")
    prog = dwfuse.compile(g, SMALL)
    bufs = prog.buffers
    for job in prog.jobs:
        d = job.descriptor
        cg = prog.groups[job.group]
        for key, t in (("input", cg.group.input), ("output", cg.group.output), ("residual_in", cg.group.residual)):
            if t < 0:
                continue
            w, b = d[key], bufs[t]
            assert b.addr <= w["base"] and w["base"] + w["length"] <= b.addr + b.size, (key, t)
        w = d["weights"]
        assert 0 <= w["base"] and w["base"] + w["length"] <= prog.param_bytes
        assert prog.descriptor_base >= prog.param_bytes
    # buffers of tensors alive at the same time never overlap; some buffer is reused
    live = {}
    for k, cg in enumerate(prog.groups):
        for op in cg.group.ops:
            for t in op.inputs + op.outputs:
                if t in bufs:
                    live.setdefault(t, [k, k])[1] = k
    for t in g.outputs:
        if t in bufs:
            live[t][1] = len(prog.groups)
    items = sorted(live.items())
    for i, (t, (s, e)) in enumerate(items):
        for u, (s2, e2) in items[i + 1:]:
            if s <= e2 and s2 <= e:
                a, b = bufs[t], bufs[u]
                assert a.addr + a.size <= b.addr or b.addr + b.size <= a.addr, (t, u)
    assert len({b.addr for b in bufs.values()}) < len(bufs)


def test_descriptor_round_trip():
    layout = D.descriptor_layout()
    rng = np.random.default_rng(11)

    def rand(lay):
        if isinstance(lay, D.data.StructLayout):
            return {n: rand(f.shape) for n, f in lay}
        if isinstance(lay, D.data.ArrayLayout):
            return [rand(lay.elem_shape) for _ in range(lay.length)]
        s = D.Shape.cast(lay)
        lo, hi = (-(1 << (s.width - 1)), 1 << (s.width - 1)) if s.signed else (0, 1 << s.width)
        return int(rng.integers(lo, hi))

    cfg = preset("ecp5")
    for _ in range(20):
        v = rand(layout)
        raw = D.pack_bytes(layout, v, cfg)
        assert len(raw) % cfg.bus_bytes == 0 and D.unpack_bytes(layout, raw) == v
    for lay in (D.table_row_layout(cfg), D.dw_param_layout(cfg)):
        v = rand(lay)
        assert D.unpack_bytes(lay, D.pack_bytes(lay, v, cfg)) == v
    with pytest.raises(ValueError, match="output.base"):
        D.pack(layout, {"output": {"base": 1 << 32}})
    with pytest.raises(ValueError, match="pe0.in_zp"):
        D.pack(layout, {"pe0": {"in_zp": 128}})
    with pytest.raises(ValueError, match="unknown fields"):
        D.pack(layout, {"colour": 1})


def test_descriptor_outside_window_is_refused():
    """The golden backend checks every access against the job's windows, as the DMA does."""
    g = _model("person_detect.tflite")
    prog = dwfuse.compile(g, "ecp5")
    layout = D.descriptor_layout()
    job = prog.jobs[1]
    d = dict(job.descriptor)
    d["output"] = dict(d["output"], length=d["output"]["length"] - 1)
    prog.image[job.addr:job.addr + prog.descriptor_bytes] = np.frombuffer(D.pack_bytes(layout, d, prog.config),
                                                                         np.uint8)
    with pytest.raises(DmaWindowError, match="output"):
        prog.run(random_input(g.input_tensor(), 0))


def _small_conv_model():
    return _model("mobilenet_v1_0.25_96")


def _conv3_model(channels, rng, h=9, wd=11):
    """int8 (1, h, wd, channels) → 3x3 SAME conv to 6 channels: a CONV3."""
    from dwfuse.tflite_writer import TFLiteWriter
    w = TFLiteWriter()
    x = w.tensor("x", (1, h, wd, channels), np.int8, scale=[0.02], zero_point=[3])
    ws = rng.uniform(0.002, 0.02, 6)
    wt = w.constant("w", rng.integers(-127, 128, (6, 3, 3, channels)).astype(np.int8), scale=ws,
                    quantized_dimension=0)
    bt = w.constant("b", rng.integers(-3000, 3000, 6).astype(np.int32), scale=ws * 0.02, quantized_dimension=0)
    y = w.tensor("y", (1, h, wd, 6), np.int8, scale=[0.05], zero_point=[-5])
    w.op("CONV_2D", [x, wt, bt], [y], padding="SAME", stride_h=1, stride_w=1, fused_activation="NONE")
    return dwfuse.load(w.to_bytes([x], [y]))


def _depthwise_model(rng, stride):
    """int8 (1, 13, 11, 20) → 3x3 depthwise SAME (ReLU6) and nothing after: a lone DW group."""
    from dwfuse.tflite_writer import TFLiteWriter
    w = TFLiteWriter()
    x = w.tensor("x", (1, 13, 11, 20), np.int8, scale=[0.02], zero_point=[-7])
    ws = rng.uniform(0.005, 0.05, 20)
    wt = w.constant("w", rng.integers(-127, 128, (1, 3, 3, 20)).astype(np.int8), scale=ws, quantized_dimension=3)
    bt = w.constant("b", rng.integers(-500, 500, 20).astype(np.int32), scale=ws * 0.02, quantized_dimension=0)
    oh, ow = -(-13 // stride), -(-11 // stride)
    y = w.tensor("y", (1, oh, ow, 20), np.int8, scale=[0.03], zero_point=[-128])
    w.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y], padding="SAME", stride_h=stride, stride_w=stride,
         depth_multiplier=1, fused_activation="RELU6")
    return dwfuse.load(w.to_bytes([x], [y]))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("config", ["ecp5", dataclasses.replace(SMALL, max_width=6)], ids=["ecp5", "width6"])
def test_lone_depthwise(stride, config):
    prog, _ = _check_program(_depthwise_model(np.random.default_rng(stride), stride), config)
    assert [cg.mode for cg in prog.groups] == ["DW"] and prog.groups[0].jobs


def _random_config(seed):
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([2, 4, 8]))
    cols = lanes * int(rng.choice([1, 2, 4]))
    return Config(name=f"random{seed}", lanes=lanes, pe_cols=cols, requant_lanes=max(1, lanes // 2),
                  max_width=int(rng.integers(5, 40)), max_channels=lanes * -(-1280 // lanes),
                  line_rows=int(rng.choice([3, 4])), max_k=1280, weight_words=int(rng.integers(1280 // lanes, 1500)),
                  max_out_channels=int(rng.integers(cols, 300)), bus_bytes=int(rng.choice([4, 8, 16])))


@pytest.mark.parametrize("seed", range(6))
def test_random_configs(seed):
    """Random array shapes, line-buffer widths, buffer depths and bus widths on small odd-sized models."""
    name = ["mobilenet_v2_0.35_41x37_c5", "mobilenet_v1_0.25_35x43_c3"][seed % 2]
    _check_program(_model(name), _random_config(seed), seed=seed)


@pytest.mark.parametrize("change, limit", [
    (dict(max_k=64), "max_k 64"),
    (dict(weight_words=16, max_k=256), "weight_words 16"),
    (dict(max_channels=64), "max_channels 64"),
])
def test_hardware_limits_name_layer_and_limit(change, limit):
    cfg = dataclasses.replace(SMALL, **change)
    with pytest.raises(HardwareLimitError, match=r"op \d+ \((CONV_2D|DEPTHWISE_CONV_2D|FULLY_CONNECTED)\): .*"
                       + limit) as e:
        dwfuse.compile(_small_conv_model(), cfg)
    assert "'small'" in str(e.value)


def test_output_channel_and_height_limits():
    g = _conv3_model(3, np.random.default_rng(2))
    with pytest.raises(HardwareLimitError, match=r"op 0 \(CONV_2D\): one output tile of 8 channels .*max_out_channels 4"):
        dwfuse.compile(g, dataclasses.replace(SMALL, max_out_channels=4))
    with pytest.raises(HardwareLimitError, match=r"op 0 \(DEPTHWISE_CONV_2D\): 20 output channels .*max_out_channels 16"):
        dwfuse.compile(_depthwise_model(np.random.default_rng(0), 1), dataclasses.replace(SMALL, max_out_channels=16))
    with pytest.raises(HardwareLimitError, match=r"op 0 \(CONV_2D\): an input of 4100 rows exceeds the 4095 rows"):
        dwfuse.compile(_conv3_model(3, np.random.default_rng(2), h=4100, wd=5), SMALL)


def test_conv3_input_over_line_buffer_channels():
    g = _conv3_model(40, np.random.default_rng(0))
    _check_program(g, SMALL)
    with pytest.raises(HardwareLimitError, match=r"op 0 \(CONV_2D\): 40 channels .*max_channels 32"):
        dwfuse.compile(g, dataclasses.replace(SMALL, max_channels=32))


def test_residual_rows_over_the_fifo_go_to_the_host(monkeypatch):
    """Residual ADDs the sequencer cannot stream (rows over its FIFO, column tiles) run on the host."""
    import dwfuse.compiler
    g = _model("mobilenet_v2_a035_96_int8.tflite")
    prog, _ = _check_program(g, SMALL)
    fused = {cg.group.ops[-1].index for cg in prog.groups if cg.group.residual >= 0}
    monkeypatch.setattr(dwfuse.compiler, "RESIDUAL_ROW_WORDS", 40)
    prog, _ = _check_program(g, SMALL, seed=6)
    host_adds = [cg for cg in prog.groups if cg.mode == "HOST" and cg.group.ops[0].kind == "ADD"]
    assert host_adds and all(any("residual ADD" in n and "host" in n for n in cg.group.notes) for cg in host_adds)
    by_rows = [cg for cg in host_adds if any("rows of" in n for n in cg.group.notes)
               and cg.group.ops[0].index in fused]
    assert 0 < sum(cg.group.residual >= 0 for cg in prog.groups) == len(fused) - len(by_rows) < len(fused)


@pytest.mark.parametrize("config", ["ecp5", dataclasses.replace(SMALL, max_width=5)], ids=["ecp5", "width5"])
def test_explicit_pad_and_host_ops(config):
    """PyTorch-style model: QUANTIZE/TRANSPOSE on the host, PAD folded into a VALID stride-2 CONV3."""
    from test_golden_vs_tflm import pytorch_style_model
    g = dwfuse.load(pytorch_style_model(np.random.default_rng(4)))
    prog, _ = _check_program(g, config, seed=4)
    (conv,) = [cg for cg in prog.groups if cg.mode != "HOST"]
    assert conv.mode == "CONV3" and conv.group.pad == (1, 1, 1, 1)
    # 6 output columns; a 5-column tile at stride 2 covers (5 - 3) // 2 + 1 = 2 of them
    assert len(conv.col_tiles) == (1 if config == "ecp5" else 3)


def _with_bank_depth(depth):
    """SMALL with a line-buffer bank depth (Config.line_bank_depth, or a subclass until it lands)."""
    if "line_bank_depth" in {f.name for f in dataclasses.fields(Config)}:
        return dataclasses.replace(SMALL, line_bank_depth=depth)

    @dataclasses.dataclass(frozen=True)
    class WithBankDepth(Config):
        line_bank_depth: int = 0

    return WithBankDepth(**{**SMALL.as_dict(), "line_bank_depth": depth})


def test_line_buffer_bank_depth_limit():
    cfg = _with_bank_depth(4)
    with pytest.raises(HardwareLimitError, match=r"op \d+ \(DEPTHWISE_CONV_2D\): .*bank depth 4"):
        dwfuse.compile(_small_conv_model(), cfg)
    # a deeper bank but narrower than the rows: column tiles, still exact
    cfg = _with_bank_depth(64)
    prog, _ = _check_program(_small_conv_model(), cfg)
    assert max(len(cg.col_tiles) for cg in prog.groups) > 2


def test_cli_run_report_and_limit_error(tmp_path, capsys):
    from dwfuse.cli import main
    import json
    arg = shared_model("person_detect.tflite")
    r = tmp_path / "r.json"
    assert main(["run", arg, "--config", "ecp5", "--report", str(r), "--backend", "golden"]) == 0
    rep = json.loads(r.read_text())
    cfg = preset("ecp5")
    assert rep["pe_array_macs_per_cycle"] == cfg.lanes * cfg.pe_cols and rep["dw_macs_per_cycle"] == 9 * cfg.lanes
    g = _model("person_detect.tflite")
    groups = plan(g)
    # issue 4's bound from the layer rows: depthwise MACs on the DW engine (a CONV3 runs on the PE array)
    bound = 0
    for grp in rep["groups"]:
        rows = [l for l in rep["layers"] if l["group"] == grp["index"]]
        dw = sum(l["macs"] for l in rows if l["op"] == "DEPTHWISE_CONV_2D" and l["mode"] != "CONV3")
        pe = sum(l["macs"] for l in rows) - dw
        bound += max(-(-pe // rep["pe_array_macs_per_cycle"]), -(-dw // rep["dw_macs_per_cycle"]))
    assert rep["lower_bound_cycles"] == bound > 0
    # the throughput bound adds requantizer and DRAM limits: never below issue 4's bound nor the
    # group's DRAM reads over the bus, and above the MAC bound somewhere (narrow layers)
    for grp in (grp for grp in rep["groups"] if grp["mode"] != "HOST"):
        assert grp["throughput_bound_cycles"] >= max(grp["lower_bound_cycles"],
                                                     -(-grp["dram_read_bytes"] // cfg.bus_bytes)), grp
    assert any(grp["throughput_bound_cycles"] > grp["lower_bound_cycles"] for grp in rep["groups"])
    assert rep["throughput_bound_cycles"] == sum(grp["throughput_bound_cycles"] for grp in rep["groups"])
    assert [grp["mode"] for grp in rep["groups"]] == [grp.mode for grp in plan(_model("person_detect.tflite"))]
    for key in ("lower_bound_cycles", "dram_read_bytes", "dram_write_bytes"):
        assert rep[key] == sum(l[key] for l in rep["layers"]) > 0
    assert "lower-bound cycles" in capsys.readouterr().out
    # the tiny preset's line buffer holds 64 channels: this model's depthwise convs have more
    assert main(["run", shared_model("mobilenet_v2_a035_96_int8.tflite"), "--config", "tiny",
                 "--backend", "golden"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dwfuse: error: op ") and "channels in the line buffer exceeds max_channels 64" in err



def test_descriptor_chains_stop_at_host_ops():
    g = _model("mobilenet_v2_a035_96_int8.tflite")      # ... PW, MEAN (host), FC, SOFTMAX (host)
    prog = dwfuse.compile(g, "ecp5")
    layout = D.descriptor_layout()
    for job in prog.jobs:   # the image holds exactly the compiler's descriptors, back to back
        raw = prog.image[job.addr:job.addr + prog.descriptor_bytes]
        assert D.unpack_bytes(layout, raw) == D.unpack(layout, D.pack(layout, job.descriptor))
    assert [j.addr for j in prog.jobs] == [prog.descriptor_base + k * prog.descriptor_bytes
                                           for k in range(len(prog.jobs))]
    chains = prog.chains()
    assert [k for c in chains for k in c] == list(range(len(prog.jobs)))
    for c in chains:
        end = prog.jobs[c[-1]].group
        assert end + 1 == len(prog.groups) or prog.groups[end + 1].mode == "HOST"
        assert all(prog.groups[g2].mode != "HOST" for g2 in range(prog.jobs[c[0]].group, end + 1))
    host_before = sum(1 for a, b in zip(prog.groups, prog.groups[1:]) if a.mode != "HOST" and b.mode == "HOST")
    assert len(chains) == host_before + (prog.groups[-1].mode != "HOST")


@pytest.mark.parametrize("name", ["ecp5", "b4096", "tiny"])
def test_parameter_formats_are_the_engines_load_payloads(name):
    """Table rows and depthwise beats in DRAM are the tload / pload payloads without their address."""
    from dwfuse.hdl.depthwise import param_layout
    from dwfuse.hdl.pointwise import pointwise_layouts
    cfg = preset(name)

    def fields(layout, drop):
        return [(n, D.Shape.cast(f.shape).width) for n, f in layout if n != drop]

    assert fields(D.table_row_layout(cfg), None) == fields(pointwise_layouts(cfg).tload, "addr")
    assert fields(D.dw_param_layout(cfg), None) == fields(param_layout(cfg), "chunk")
    for layout in (D.table_row_layout(cfg), D.dw_param_layout(cfg), D.descriptor_layout()):
        assert D.item_bytes(layout, cfg) % cfg.bus_bytes == 0
        assert D.item_bytes(layout, cfg) * 8 >= D.Shape.cast(layout).width


def test_run_rejects_bad_inputs():
    g = _model("person_detect.tflite")
    prog = dwfuse.compile(g, "ecp5")
    x = random_input(g.input_tensor(), 0)
    with pytest.raises(dwfuse.ModelError, match="2 inputs given, the model has 1"):
        prog.run([x, x])
    with pytest.raises(dwfuse.ModelError, match="model expects int8"):
        prog.run(x.astype(np.int16))
    with pytest.raises(dwfuse.DwfuseError, match="unknown backend 'fpga'"):
        prog.run(x, backend="fpga")


@pytest.mark.slow
def test_mobilenet_v2_224_small_config():
    """The whole MobileNetV2-1.0-224 in column and channel tiles (CI runs the 96-pixel models above)."""
    prog, _ = _check_program(_model("mobilenet_v2_1.0_224"), SMALL)
    assert sum(len(cg.col_tiles) > 1 for cg in prog.groups) >= 5 and sum(len(cg.chan_tiles) > 1 for cg in prog.groups) >= 5


def test_residual_row_limit_matches_the_sequencer():
    sequencer = pytest.importorskip("dwfuse.hdl.sequencer")
    from dwfuse.compiler import RESIDUAL_ROW_WORDS
    assert RESIDUAL_ROW_WORDS == sequencer.RES_FIFO_WORDS // 2
