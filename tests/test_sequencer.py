# amaranth: UnusedElaboratable=no
"""The JobSequencer's descriptor check in Amaranth's simulator against the rules restated in
tests/descriptor_rules.py: the compiler's descriptors (every mode of two small MobileNets) and
random corruptions of them, one field at a time and several at once. Each is fetched like a
chain's first job; the sequencer must refuse (error 3, or 1 for a window) exactly what breaks a
rule, before it issues any load, and accept the rest with the load counts the descriptor asks
for. The check's products come from one serial multiplier: the decision must come within a
bounded number of cycles."""

import copy
import random

import pytest
from amaranth import ClockDomain, Module, Shape, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

import dwfuse
from descriptor_rules import RESIDUAL_ROW_WORDS, descriptor_faults, window_faults
from dwfuse.hdl import descriptor as D
from dwfuse.hdl.config import Config, preset
from dwfuse.hdl.sequencer import RES_FIFO_WORDS, JobSequencer, Tag

#: The test_accelerator configuration (4 lanes, 8 columns, 32-bit bus).
SIM = Config(name="sim", lanes=4, pe_cols=8, requant_lanes=2, max_width=40, max_channels=1280, line_rows=4,
             max_k=1280, weight_words=512, max_out_channels=256, bus_bytes=4, residual_lanes=1)

#: Fields the check reads, as paths into the descriptor.
FIELDS = ["mode", "residual", "stride", "pad_top", "pad_bottom", "pad_left", "pad_right", "width", "height",
          "out_width", "out_height", "chunks_in", "chunks_mid", "chunks_out", "dense_cin", "wbuf_base",
          *[f"{s}.{f}" for s in ("pe0", "pe1") for f in ("k_words", "out_tiles", "weight_words")],
          *[f"{a}.{f}" for a in ("input", "output", "residual_in") for f in ("length", "row_pitch", "pixel_pitch")]]

#: Cycles from the descriptor's last beat to the decision: 12 products of at most 17 cycles
#: plus 2 each to start and store, and the check's own few.
DECISION_CYCLES = 12 * 19 + 8


def _width(layout, path):
    for name in path.split("."):
        layout = layout.members[name]
    return Shape.cast(layout).width


def _get(d, path):
    for name in path.split(".")[:-1]:
        d = d[name]
    return d, path.split(".")[-1]


def _corrupt(good, rng, layout):
    """A good descriptor with one to three fields changed (a residual block's for residual_in)."""
    paths = [rng.choice(FIELDS) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    if any(p.startswith("residual_in") for p in paths):
        good = [d for d in good if d["residual"]] or good
    d = copy.deepcopy(rng.choice(good))
    for path in paths:
        holder, key = _get(d, path)
        top = (1 << _width(layout, path)) - 1
        old = holder[key]
        new = rng.choice([old + 1, old - 1, old + 2, old - 4, 0, 1, top, rng.randrange(top + 1),
                          old * 2, old // 2])
        holder[key] = min(max(new, 0), top)
    return d


def _targeted(good, config):
    """One corruption per rule the test must reach, so that its coverage does not depend on the
    seed: each window one byte shorter than its access needs, each PE stage's weight words one
    off, a zero width."""
    out = []

    def short_window(d, name, rows, cols, chunks):
        d = copy.deepcopy(d)
        a = d[name]
        a["length"] = (d[rows] - 1) * a["row_pitch"] + (d[cols] - 1) * a["pixel_pitch"] + d[chunks] * config.lanes - 1
        return d

    def changed(d, path, delta):
        d = copy.deepcopy(d)
        holder, key = _get(d, path)
        holder[key] += delta
        return d

    uses = {s: [d for d in good if D.MODES[d["mode"]] in modes]
            for s, modes in (("pe0", ("PW", "CONV3", "PW_DW_PW")), ("pe1", ("DW_PW", "PW_DW_PW")))}
    residual = [d for d in good if d["residual"]]
    assert residual and uses["pe0"] and uses["pe1"]
    out += [short_window(good[0], "input", "height", "width", "chunks_in"),
            short_window(good[0], "output", "out_height", "out_width", "chunks_out"),
            short_window(residual[0], "residual_in", "out_height", "out_width", "chunks_out"),
            changed(uses["pe0"][0], "pe0.weight_words", 1), changed(uses["pe1"][0], "pe1.weight_words", -1),
            changed(good[0], "width", -good[0]["width"])]
    return out


def _descriptors(config, seed, n):
    layout = D.descriptor_layout()
    good = []
    for name in ("mobilenet_v2_0.35_32", "mobilenet_v1_0.25_32"):
        prog = dwfuse.compile(dwfuse.load(name), config)
        good += [D.unpack(layout, D.pack(layout, job.descriptor)) for job in prog.jobs]
    modes = {D.MODES[d["mode"]] for d in good}
    assert {"PW", "CONV3", "DW_PW", "PW_DW_PW"} <= modes, modes
    rng = random.Random(seed)
    picked = rng.sample(good, min(len(good), 12))
    return picked + _targeted(good, config) + [_corrupt(good, rng, layout) for _ in range(n)]


def _dw_descriptor(config, width, chunks, height=5):
    """A DW job (stride 1, pad 1 all round) of ``width`` x ``height`` x ``chunks`` words, its
    tensors packed in windows of exactly their size."""
    d = D.unpack(D.descriptor_layout(), 0)
    pitch = chunks * config.lanes
    tensor = {"base": 0x10000, "length": height * width * pitch, "row_pitch": width * pitch, "pixel_pitch": pitch}
    d.update(mode=D.MODES.index("DW"), last=1, stride=1, pad_top=1, pad_bottom=1, pad_left=1, pad_right=1,
             width=width, height=height, out_width=width, out_height=height, chunks_in=chunks, chunks_out=chunks,
             input=dict(tensor), output=dict(tensor, base=0x80000))
    return d


def _line_buffer_bound(config):
    """DW jobs with rows of just the line-buffer bank's words and of just more."""
    from dwfuse.compiler import line_bank_depth
    bank = line_bank_depth(config)
    jobs = []
    for chunks in range(1, config.max_chunks + 1):
        width = min(3 * (bank // chunks), config.max_width)
        if width < 1:
            break
        jobs.append(_dw_descriptor(config, width, chunks))
        if width < config.max_width:
            jobs.append(_dw_descriptor(config, width + 1, chunks))
    return jobs


def _run(config, descriptors, loads=False):
    """[(error code, load counts or None, cycles to the decision)] per descriptor; with
    ``loads``, each accepted one's load reads follow as a fourth item: [(tag, addr, beats)]."""
    layout = D.descriptor_layout()
    seq = JobSequencer(config)
    bb = config.bus_bytes
    m = Module()
    m.domains.sync = cd = ClockDomain()
    m.submodules.seq = seq
    outcomes = []
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(seq.wr_idle, 1)
        ctx.set(seq.rd_cmd.ready, 1)
        for d in descriptors:
            raw = D.pack_bytes(layout, d, config)
            ctx.set(cd.rst, 1)
            await ctx.tick()
            ctx.set(cd.rst, 0)
            ctx.set(seq.desc_base, 0x1000)
            ctx.set(seq.desc_limit, 0x1000 + len(raw))
            ctx.set(seq.start, 1)
            await ctx.tick()
            ctx.set(seq.start, 0)
            while not (ctx.get(seq.rd_cmd.valid) and ctx.get(seq.rd_cmd.payload.tag) == Tag.DESC):
                await ctx.tick()
            await ctx.tick()
            for k in range(0, len(raw), bb):
                ctx.set(seq.desc_in.valid, 1)
                ctx.set(seq.desc_in.payload.data, int.from_bytes(raw[k:k + bb], "little"))
                await ctx.tick().until(seq.desc_in.ready)
            ctx.set(seq.desc_in.valid, 0)
            for cycle in range(DECISION_CYCLES + 50):
                if ctx.get(seq.rd_cmd.valid):
                    assert ctx.get(seq.rd_cmd.payload.tag) == Tag.WEIGHTS, "a read before the decision"
                if ctx.get(seq.load_reset):
                    await ctx.tick()
                    counts = {k: ctx.get(getattr(seq.load_counts, k)) for k in ("weights", "tables", "params")}
                    outcomes.append((0, counts, cycle, await _load_reads(ctx, seq) if loads else None))
                    break
                if ctx.get(seq.error):
                    outcomes.append((ctx.get(seq.error), None, cycle, None))
                    break
                await ctx.tick()
            else:
                raise AssertionError("no decision")

    sim.add_testbench(bench)
    sim.run()
    return outcomes


async def _load_reads(ctx, seq, quiet=200):
    """The read commands of the loads (the bench takes every one at once), until none for
    ``quiet`` cycles (the sequencer then waits for the loads to land)."""
    reads, idle = [], 0
    while idle < quiet:
        if ctx.get(seq.rd_cmd.valid):
            p = seq.rd_cmd.payload
            reads.append((ctx.get(p.tag), ctx.get(p.cmd.addr), ctx.get(p.cmd.beats)))
            idle = 0
        else:
            idle += 1
        await ctx.tick()
    return reads


def _byte_runs(pieces):
    """[(tag, start, end)] with each piece that continues the previous one's bytes merged in."""
    runs = []
    for tag, start, length in pieces:
        if length == 0:
            continue
        if runs and runs[-1][0] == tag and runs[-1][2] == start:
            runs[-1] = (tag, runs[-1][1], start + length)
        else:
            runs.append((tag, start, start + length))
    return runs


def _expected_loads(d, config):
    """The load reads a descriptor asks for, in the order of the format's description: pe0's and
    pe1's weights, then pe0's tables, the depthwise parameters, pe1's tables."""
    mode = D.MODES[d["mode"]]
    used = {"pe0": mode in ("PW", "CONV3", "PW_DW_PW"), "pe1": mode in ("DW_PW", "PW_DW_PW")}
    has_dw = mode in ("DW", "DW_PW", "PW_DW_PW")
    word = D.item_bytes(data.ArrayLayout(unsigned(8), config.lanes * config.pe_cols), config)
    row = D.item_bytes(D.table_row_layout(config), config)
    param = D.item_bytes(D.dw_param_layout(config), config)
    chunks = d["chunks_mid"] if mode == "PW_DW_PW" else d["chunks_in"]
    return _byte_runs([(Tag.WEIGHTS, d[s]["weight_addr"], d[s]["weight_words"] * word) for s in ("pe0", "pe1") if used[s]]
                      + [(Tag.TABLES, d["pe0"]["table_addr"], d["pe0"]["out_tiles"] * row)] * used["pe0"]
                      + [(Tag.PARAMS, d["dw"]["param_addr"], chunks * param)] * has_dw
                      + [(Tag.TABLES, d["pe1"]["table_addr"], d["pe1"]["out_tiles"] * row)] * used["pe1"])


def _expected_counts(d):
    mode = D.MODES[d["mode"]]
    used = [s for s, on in (("pe0", mode in ("PW", "CONV3", "PW_DW_PW")), ("pe1", mode in ("DW_PW", "PW_DW_PW")))
            if on]
    has_dw = mode in ("DW", "DW_PW", "PW_DW_PW")
    return {"weights": d["wbuf_base"] + sum(d[s]["weight_words"] for s in used),
            "tables": sum(d[s]["out_tiles"] for s in used),
            "params": (d["chunks_mid"] if mode == "PW_DW_PW" else d["chunks_in"]) if has_dw else 0}


def test_rules_and_fifo_agree():
    assert RESIDUAL_ROW_WORDS == RES_FIFO_WORDS // 2


@pytest.mark.parametrize("config", [SIM, preset("ecp5")], ids=["sim", "ecp5"])
def test_check_refuses_exactly_the_broken_rules(config):
    seed = random.randrange(1 << 30)
    descriptors = _descriptors(config, seed, 200) + _line_buffer_bound(config)
    outcomes = _run(config, descriptors)
    kinds = set()
    for k, (d, (code, counts, cycles, _)) in enumerate(zip(descriptors, outcomes)):
        faults = descriptor_faults(d, config)
        windows = [] if faults else window_faults(d, config)
        want = 3 if faults else 1 if windows else 0
        where = f"seed {seed}, descriptor {k} (faults {faults}, windows {windows}): {d}"
        assert code == want, f"error {code}, expected {want}; {where}"
        assert cycles <= DECISION_CYCLES, f"decision after {cycles} cycles; {where}"
        if code == 0:
            assert counts == _expected_counts(d), where
        kinds |= set(faults) | {f"window {w}" for w in windows} | ({"accepted"} if code == 0 else set())
    # the corruptions reached the rules with products in them, and windows, and acceptance
    # (the line-buffer rule can only fail with a bank smaller than max_width x max_channels needs)
    want = {"accepted", "pe0", "pe1", "size", "window input", "window output", "window residual_in"}
    if config.line_bank_depth is not None:
        want.add("line_buffer")
    assert want <= kinds, (seed, kinds)


@pytest.mark.parametrize("config", [SIM, preset("ecp5_narrow")], ids=["sim", "ecp5_narrow"])
def test_accepted_jobs_read_exactly_their_parameters(config):
    """The load reads of the compiler's descriptors: the weights, tables and depthwise
    parameters the descriptor names, each byte once, in order (their beat counts are held
    from the descriptor: a count not yet held when the load starts reads the wrong bytes)."""
    descriptors = _descriptors(config, 1, 0)[:12] + _line_buffer_bound(config)[:2]
    for k, (d, outcome) in enumerate(zip(descriptors, _run(config, descriptors, loads=True))):
        assert outcome[0] == 0, f"descriptor {k} refused: {d}"
        bb = config.bus_bytes
        got = _byte_runs([(tag, addr, beats * bb) for tag, addr, beats in outcome[3]])
        assert got == _expected_loads(d, config), f"descriptor {k}: {d}"
