"""The Accelerator top (hdl/top.py) running compiled programs under Verilator (the rtl backend).

A small configuration keeps the Verilator build short; CI runs whole small networks, stalls,
bad descriptors and a reset in the middle of a run. Whole shared models and MobileNetV2-1.0-224
on the ecp5 preset run from scripts/bench_rtl.py (and the `slow` tests).
"""

import numpy as np
import pytest

import dwfuse
from dwfuse.hdl import descriptor as D
from dwfuse.hdl.config import Config
from dwfuse.inputs import random_input
from dwfuse.verif.rtl_backend import RtlError, run_program

#: 4 lanes x 8 columns, 32-bit AXI: small enough to build in about a minute, big enough for
#: every kind of group and tile on 32x32 MobileNets.
SIM = Config(name="sim", lanes=4, pe_cols=8, requant_lanes=2, max_width=40, max_channels=1280, line_rows=4,
             max_k=1280, weight_words=512, max_out_channels=256, bus_bytes=4, residual_lanes=1)


def _program(name, config=SIM, seed=0):
    g = dwfuse.load(name)
    prog = dwfuse.compile(g, config)
    x = random_input(g.input_tensor(), seed)
    ref, values = dwfuse.run_graph(g, x, keep_all=True)
    return g, prog, x, ref, values


def _assert_bit_exact(g, result, ref, values):
    assert result["tensors"], "no accelerator tensor was read back"
    for t, got in result["tensors"].items():
        want = values[t]
        if not np.array_equal(got, want):
            raise AssertionError(f"tensor {t} {g.tensors[t].name!r} {list(want.shape)}: "
                                 f"{int((got != want).sum())} of {want.size} values differ")
    for k, (got, want) in enumerate(zip(result["outputs"], ref)):
        assert np.array_equal(got, want), f"output {k} differs"


@pytest.mark.parametrize("name", ["mobilenet_v2_0.35_32", "mobilenet_v1_0.25_32"])
def test_network_bit_exact(name):
    """Every group of a V2 (expand/depthwise/project + residual ADD, CONV3, channel tiles) and a
    V1 (DW->PW pairs) network, every tensor the accelerator computed."""
    g, prog, x, ref, values = _program(name)
    results, _ = run_program(prog, [[x]], keep_all=True)
    _assert_bit_exact(g, results[0], ref, values)


def test_ecp5_narrow_network_bit_exact():
    """The ecp5_narrow preset (4 lanes x 16 columns: 4 words per tile, a geometry no other
    preset has) on a whole V2 network, every computed tensor bit-exact."""
    g = dwfuse.load("mobilenet_v2_0.35_32")
    prog = dwfuse.compile(g, "ecp5_narrow")
    x = random_input(g.input_tensor(), 1)
    ref, values = dwfuse.run_graph(g, x, keep_all=True)
    results, _ = run_program(prog, [[x]], keep_all=True)
    _assert_bit_exact(g, results[0], ref, values)


def _weight_ranges(prog):
    """(consecutive jobs of one chain whose weight-buffer words are disjoint, ... that overlap)."""
    disjoint = overlap = 0
    for a, b in zip(prog.jobs, prog.jobs[1:]):
        if a.descriptor.get("last"):
            continue
        lo_hi = []
        for d in (a.descriptor, b.descriptor):
            words = sum(d.get(s, {}).get("weight_words", 0) for s in ("pe0", "pe1"))
            lo_hi.append((d["wbuf_base"], d["wbuf_base"] + words))
        (a0, a1), (b0, b1) = lo_hi
        if a1 <= b0 or b1 <= a0:
            disjoint += 1
        else:
            overlap += 1
    return disjoint, overlap


def test_whole_chains_prefetch_and_wait():
    """Chains run whole: the sequencer loads the next job's weights while the current one runs
    when their weight-buffer words are disjoint, and waits when they overlap; both occur here.
    The job log splits the chain's cycles per job."""
    g, prog, x, ref, values = _program("mobilenet_v2_0.35_32", seed=7)
    disjoint, overlap = _weight_ranges(prog)
    assert disjoint and overlap, (disjoint, overlap)
    results, _ = run_program(prog, [[x]])
    for k, (got, want) in enumerate(zip(results[0]["outputs"], ref)):
        assert np.array_equal(got, want), f"output {k} differs"
    for c in results[0]["chains"]:
        assert c["job_cycles"] is not None and len(c["job_cycles"]) == c["jobs"], c
        assert sum(c["job_cycles"]) == c["cycles"] and min(c["job_cycles"]) > 0, c
    # the DMA moved exactly what the descriptors say (the golden backend's per-job bytes)
    _, golden = prog.run(x, backend="golden")
    host = results[0]["host_traffic"].values()
    assert sum(c["rd_bytes"] for c in results[0]["chains"]) + sum(r for r, _ in host) == golden["dram_read_bytes"]
    assert sum(c["wr_bytes"] for c in results[0]["chains"]) + sum(w for _, w in host) == golden["dram_write_bytes"]


def test_rtl_report_per_group_and_dma_bytes_disagreeing_raise(monkeypatch):
    """Program.run(backend="rtl") splits a chain's DMA bytes per group as the descriptors move
    them; a DMA that moved other byte counts is an error, not a silently different report."""
    import dwfuse.verif.rtl_backend as rtl_backend
    g, prog, x, ref, values = _program("mobilenet_v1_0.25_32", seed=5)
    outputs, report = prog.run(x, backend="rtl")
    assert np.array_equal(outputs[0], ref[0])
    _, golden = prog.run(x, backend="golden")
    assert [(grp["dram_read_bytes"], grp["dram_write_bytes"]) for grp in report["groups"]] == \
        [(grp["dram_read_bytes"], grp["dram_write_bytes"]) for grp in golden["groups"]]
    assert all(grp["cycles"] > 0 for grp in report["groups"] if grp["mode"] != "HOST")
    real = rtl_backend.run_program

    def one_burst_more(*args, **kwargs):
        results, info = real(*args, **kwargs)
        results[0]["chains"][0]["rd_bytes"] += SIM.bus_bytes
        return results, info

    monkeypatch.setattr(rtl_backend, "run_program", one_burst_more)
    with pytest.raises(dwfuse.DwfuseError, match="DMA moved .* but its descriptors"):
        prog.run(x, backend="rtl")


def test_many_inputs_reuse_the_loaded_program():
    g, prog, _, _, _ = _program("mobilenet_v1_0.25_32")
    xs = [random_input(g.input_tensor(), seed) for seed in (1, 2)]
    results, _ = run_program(prog, [[x] for x in xs])
    for x, r in zip(xs, results):
        assert np.array_equal(r["outputs"][0], dwfuse.run_graph(g, x)[0][0])


def test_dram_stalls_and_latency_change_no_result():
    """The Verilog DRAM stalls every AXI channel 40% of the time with a 60-cycle read latency;
    the CSR bus pauses too."""
    g, prog, x, ref, values = _program("mobilenet_v1_0.25_32", seed=3)
    results, _ = run_program(prog, [[x]], keep_all=True, stall_percent=40, read_latency=60, csr_pause=0.3,
                             seed=5)
    _assert_bit_exact(g, results[0], ref, values)
    # whole chains too (jobs overlap: weight prefetch and row reads share the stalling channel)
    results, _ = run_program(prog, [[x]], stall_percent=40, read_latency=60, seed=6)
    assert np.array_equal(results[0]["outputs"][0], ref[0])


def test_axi_ram_pauses_on_every_channel():
    """cocotbext-axi's AxiRam as the DRAM, its pause generators on AW, W, B, AR and R (Python
    in every cycle: the first four groups only)."""
    g, prog, x, ref, values = _program("mobilenet_v1_0.25_32", seed=4)
    results, _ = run_program(prog, [[x]], keep_all=True, python_dram=True, axi_pause=0.5, csr_pause=0.3,
                             max_groups=4)
    tensors = results[0]["tensors"]
    assert len(tensors) == 4
    for t, got in tensors.items():
        assert np.array_equal(got, values[t]), f"tensor {t} differs"


def test_axi_ram_pauses_whole_chains():
    """The same pausing AxiRam under whole descriptor chains, where the next job's weights load
    while the current job streams (the input FIFO's credits and the read arbitration at work)."""
    g, prog, x, ref, _ = _program("mobilenet_v2_0.35_32", seed=8)
    results, _ = run_program(prog, [[x]], python_dram=True, axi_pause=0.3, seed=9)
    for k, (got, want) in enumerate(zip(results[0]["outputs"], ref)):
        assert np.array_equal(got, want), f"output {k} differs"


def test_reset_in_the_middle_of_a_run():
    g, prog, x, ref, values = _program("mobilenet_v2_0.35_32", seed=6)
    results, _ = run_program(prog, [[x]], keep_all=True, abort_after=3000)
    _assert_bit_exact(g, results[0], ref, values)


def _corrupt_first_job(prog, change):
    """A copy of the first job's descriptor with ``change`` applied, written into the image."""
    job = prog.jobs[0]
    layout = D.descriptor_layout()
    size = D.item_bytes(layout, prog.config)
    d = D.unpack_bytes(layout, prog.image[job.addr:job.addr + size])
    change(d)
    prog.image[job.addr:job.addr + size] = np.frombuffer(D.pack_bytes(layout, d, prog.config), np.uint8)


@pytest.mark.parametrize("what,code", [
    ("output window too small", 1),    # the sequencer's window check: nothing moves
    ("input window too small", 1),
    ("k_words disagree", 3),           # the sequencer's descriptor check
    ("input beyond the DRAM", 2),      # the DRAM answers DECERR
])
def test_bad_descriptor_is_refused(what, code):
    g, prog, x, _, _ = _program("mobilenet_v2_0.35_32")

    def change(d):
        if what == "output window too small":
            d["output"]["length"] -= prog.config.bus_bytes
        elif what == "input window too small":
            d["input"]["length"] -= prog.config.bus_bytes
        elif what == "k_words disagree":
            d["pe0"]["k_words"] += 1
        else:
            d["input"]["base"] = 1 << 31
    _corrupt_first_job(prog, change)
    out = prog.jobs[0].descriptor["output"]
    outcome, _ = run_program(prog, [[x]], expect_error=True)
    assert f"accelerator error {code}" in outcome["error"] and "job 0" in outcome["error"], outcome["error"]
    assert (outcome["status"] >> 4) & 3 == code
    changed = np.flatnonzero(outcome["expected_image"] != outcome["image"])
    if code == 2:   # the bad read is only seen when its data returns: writes stay in the output window
        assert ((changed >= out["base"]) & (changed < out["base"] + out["length"])).all()
    else:
        assert changed.size == 0, f"{changed.size} DRAM bytes changed, first at {changed[0]:#x}"
    if code == 3:   # without expect_error the driver raises, naming the error and the job
        with pytest.raises(RtlError, match=f"accelerator error {code} .* in job 0"):
            run_program(prog, [[x]])


def test_bad_descriptor_after_a_good_one():
    """The second job of a chain is refused while the first one runs: the first completes (its
    output written), the error names job 1, and job 1 moves no byte."""
    g, prog, x, _, _ = _program("mobilenet_v2_0.35_32")
    assert not prog.jobs[0].descriptor.get("last"), "jobs 0 and 1 must share a chain"
    layout = D.descriptor_layout()
    size = D.item_bytes(layout, prog.config)
    job = prog.jobs[1]
    d = D.unpack_bytes(layout, prog.image[job.addr:job.addr + size])
    d["stride"] = 3
    prog.image[job.addr:job.addr + size] = np.frombuffer(D.pack_bytes(layout, d, prog.config), np.uint8)
    outcome, _ = run_program(prog, [[x]], expect_error=True)
    assert "accelerator error 3" in outcome["error"] and "job 1 " in outcome["error"], outcome["error"]
    assert outcome["status"] >> 16 == 1
    out0 = prog.jobs[0].descriptor["output"]
    changed = np.flatnonzero(outcome["expected_image"] != outcome["image"])
    assert changed.size, "job 0 wrote nothing"
    assert ((changed >= out0["base"]) & (changed < out0["base"] + out0["length"])).all()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["person_detect.tflite", "mobilenet_v1_a025_96_int8.tflite",
                                   "mobilenet_v2_a035_96_int8.tflite"])
def test_shared_models_on_ecp5(model):
    """Every shared model end to end on the ecp5 top, bit-exact on every computed tensor; for
    person_detect, person.bmp scores higher on "person" than no_person.bmp."""
    from dwfuse.inputs import load_input
    from shared_models import shared_model
    g = dwfuse.load(shared_model(model))
    prog = dwfuse.compile(g, "ecp5")
    if model.startswith("person"):
        xs = [load_input(shared_model(f"{img}.bmp"), g.input_tensor(), "mobilenet") for img in ("person", "no_person")]
    else:
        xs = [random_input(g.input_tensor(), 0)]
    results, _ = run_program(prog, [[x] for x in xs], keep_all=True)
    for x, r in zip(xs, results):
        ref, values = dwfuse.run_graph(g, x, keep_all=True)
        _assert_bit_exact(g, r, ref, values)
    if model.startswith("person"):
        person, no_person = (int(r["outputs"][0].reshape(-1)[1]) for r in results)
        assert person > no_person
