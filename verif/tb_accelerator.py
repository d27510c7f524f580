"""cocotb side of the `rtl` backend: a compiled program on the Accelerator top under Verilator.

Runs inside the simulator process. The driver (sw/rtl_backend.py) pickles a session — the
`Program`, the input sets, options — to ``$DWFUSE_SESSION``; this bench loads the program's DRAM
image into the simulator-resident DRAM (verif/models/axi_ram_sim.v, bulk transfers through a
hex file), then for every input set executes the program's groups in order: host groups in
numpy on tensors read back from the simulated DRAM, accelerator chains by writing the CSRs over
AXI4-Lite (cocotbext-axi's AxiLiteMaster) and sleeping until the interrupt. Python does nothing
per cycle while a chain runs, so the simulation runs at Verilator speed. Results (outputs,
per-chain counters, cycles, wall time) go to ``$DWFUSE_SESSION.out`` as a pickle.
"""

import os
import pickle
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from dwfuse.hdl import descriptor as D
from dwfuse.hdl.top import IDENT, REGISTERS
from dwfuse.interpreter import run_op
from dwfuse.verif.streams import pause_axi_channels

__all__ = ["SESSION_ENV", "ERROR_NAMES"]

SESSION_ENV = "DWFUSE_SESSION"
#: While a chain runs, Python wakes every POLL_CYCLES cycles only to report progress.
POLL_CYCLES = 100_000
ERROR_NAMES = {1: "DMA access outside its window", 2: "AXI bus error response",
               3: "descriptor the hardware cannot run"}
_PERF = ("cycles", "jobs", "rd_bytes", "wr_bytes", "engine_busy", "in_words", "in_starved",
         "out_words", "out_stalled")


class DramFile:
    """Bulk access to ``dut.dram.mem`` through the hex file the RAM model reads and writes."""

    def __init__(self, dut, path, bus_bytes):
        self.dut, self.path, self.bb = dut, path, bus_bytes
        dut.dram_load.value = 0
        dut.dram_dump.value = 0

    async def _pulse(self, port, lo, hi):
        self.dut.dram_lo.value = lo
        self.dut.dram_hi.value = hi
        port.value = 1
        await RisingEdge(self.dut.clk)
        await RisingEdge(self.dut.clk)
        port.value = 0
        await RisingEdge(self.dut.clk)

    async def read(self, addr, nbytes):
        """Bytes [addr, addr + nbytes) as a uint8 array."""
        bb = self.bb
        lo, hi = addr // bb, (addr + nbytes - 1) // bb
        await self._pulse(self.dut.dram_dump, lo, hi)
        with open(self.path) as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith(("//", "@"))]
        words = bytes.fromhex("".join(ln.rjust(2 * bb, "0") for ln in lines))
        raw = np.frombuffer(words, np.uint8).reshape(-1, bb)[:, ::-1].reshape(-1)
        off = addr - lo * bb
        return raw[off:off + nbytes].copy()

    async def write(self, addr, payload):
        """Write ``payload`` (bytes-like) at ``addr``; partial edge words keep their other bytes."""
        bb = self.bb
        payload = np.frombuffer(bytes(payload), np.uint8)
        lo, hi = addr // bb, (addr + len(payload) - 1) // bb
        if addr % bb or len(payload) % bb:
            whole = await self.read(lo * bb, (hi - lo + 1) * bb)
            whole[addr - lo * bb: addr - lo * bb + len(payload)] = payload
            payload = whole
        text = payload.reshape(-1, bb)[:, ::-1].tobytes().hex()
        with open(self.path, "w") as f:
            f.write("\n".join(text[k:k + 2 * bb] for k in range(0, len(text), 2 * bb)) + "\n")
        await self._pulse(self.dut.dram_load, lo, hi)


class JobLog:
    """The ``+job_log`` file of verif/dram_harness.py: the cycle at which each job completed."""

    def __init__(self, path):
        self.path, self.seen = path, 0

    def job_cycles(self, perf):
        """Per-job cycles of the chain that just ended (``perf``: its counters), or None."""
        try:
            with open(self.path) as f:
                stamps = [int(v) for v in f.read().split()]
        except (FileNotFoundError, TypeError):
            return None
        new, self.seen = stamps[self.seen:], len(stamps)
        if perf is None or not new or len(new) != perf["jobs"]:
            return None
        # the first job runs from the chain's start: the busy cycles not spent after it
        return [perf["cycles"] - (new[-1] - new[0])] + [b - a for a, b in zip(new, new[1:])]


class AxiRamAccess:
    """The same interface as `DramFile` over cocotbext-axi's AxiRam (Python in every cycle: slow,
    but it is the reference AXI slave and can pause every channel)."""

    def __init__(self, dut, size, pause, rng):
        from cocotbext.axi import AxiBus, AxiRam
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=size)
        if pause:
            pause_axi_channels(self.ram, pause, rng)

    async def read(self, addr, nbytes):
        return np.frombuffer(self.ram.read(addr, nbytes), np.uint8).copy()

    async def write(self, addr, payload):
        self.ram.write(addr, bytes(payload))


class _Bus:
    """The CSR window over AXI4-Lite."""

    def __init__(self, dut, pause, rng):
        self.master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        if pause:
            pause_axi_channels(self.master, pause, rng)

    async def read(self, name):
        return int.from_bytes(await self.master.read(REGISTERS[name], 4), "little")

    async def write(self, name, value):
        await self.master.write(REGISTERS[name], int(value).to_bytes(4, "little"))


def _dma_detail(dut):
    """The last command each DMA engine checked (best effort: internal names of the Verilog)."""
    from dwfuse.hdl.dma_command import command_layout
    from dwfuse.verif.streams import unpack
    out = []
    for side in ("reader", "writer"):
        try:
            engine = getattr(dut.core.dma, side)
            cmd = unpack(command_layout(32), int(engine.reg.value))
            out.append(f"{side}: error {int(engine.error.value)}, last command {cmd}")
        except (AttributeError, ValueError) as exc:
            out.append(f"{side}: ({exc})")
    return "; " + "; ".join(out)


async def _run_chain(dut, bus, first_addr, limit, timeout_cycles, *, abort_after=None, progress=None):
    """Start the chain at ``first_addr``; returns the perf counters, or raises on an error status."""
    await bus.write("desc_base", first_addr)
    await bus.write("desc_limit", limit)
    await bus.write("ctrl", 0b101)                 # start, irq_enable
    if abort_after is not None:                    # the reset-in-the-middle test
        await ClockCycles(dut.clk, abort_after)
        await bus.write("ctrl", 0b010)
        await ClockCycles(dut.clk, 300)
        return None
    waited = 0
    while not dut.irq.value and waited < timeout_cycles:   # wake every POLL cycles for progress
        await First(RisingEdge(dut.irq), Timer(POLL_CYCLES * 10, "ns"))
        waited += POLL_CYCLES
        if progress is not None:
            progress(await bus.read("jobs"))
    status = await bus.read("status")
    perf = {name: await bus.read(name) for name in _PERF}
    if not dut.irq.value:
        raise RuntimeError(f"chain at {first_addr:#x}: no interrupt after {timeout_cycles} cycles "
                           f"(status {status:#x}, {perf})")
    code = (status >> 4) & 3
    if status & 4:
        job = status >> 16
        raise RuntimeError(f"accelerator error {code} ({ERROR_NAMES.get(code, '?')}) in job {job} of "
                           f"the chain at {first_addr:#x}{_dma_detail(dut)}")
    await bus.write("status", 0b10)                # clear done
    return perf


@cocotb.test()
async def run_session(dut):
    session_path = os.environ[SESSION_ENV]
    with open(session_path, "rb") as f:
        session = pickle.load(f)
    program, runs = session["program"], session["inputs"]
    opts = session.get("options", {})
    cfg = program.config
    rng = random.Random(int(os.environ.get("COCOTB_RANDOM_SEED", "0")))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()   # no Python per clock edge
    dut.rst.value = 1
    if opts.get("python_dram"):
        dram = AxiRamAccess(dut, opts["python_dram"], opts.get("axi_pause", 0.0), random.Random(rng.random()))
    else:
        dram = DramFile(dut, session["dram_file"], cfg.bus_bytes)
    bus = _Bus(dut, opts.get("csr_pause", 0.0), rng)
    job_log = JobLog(session.get("job_log"))
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    ident = await bus.read("ident")
    assert ident == IDENT, f"ident register {ident:#x}, expected {IDENT:#x}"

    image = program.image.copy()
    desc_layout = D.descriptor_layout()
    desc_size = D.item_bytes(desc_layout, cfg)
    keep_all = opts.get("keep_all", False)
    split = keep_all or opts.get("split_groups", False)
    if split:   # end a chain after every group: per-group counters, and outputs can be read back
        for cg in program.groups:
            if cg.jobs:
                j = program.jobs[cg.jobs[-1]]
                d = D.unpack_bytes(desc_layout, image[j.addr:j.addr + desc_size])
                d["last"] = 1
                image[j.addr:j.addr + desc_size] = np.frombuffer(D.pack_bytes(desc_layout, d, cfg), np.uint8)
    load_start = time.monotonic()
    await dram.write(0, image.tobytes())
    load_seconds = time.monotonic() - load_start
    limit = program.descriptor_base + len(program.jobs) * program.descriptor_bytes
    g = program.graph

    if opts.get("abort_after") is not None:        # start, reset mid-run, then run normally
        first = next(cg for cg in program.groups if cg.jobs)
        await _run_chain(dut, bus, program.jobs[first.jobs[0]].addr, limit, 0,
                         abort_after=opts["abort_after"])
        job_log.job_cycles(None)                   # forget the aborted chain's jobs

    results = []
    done_jobs = 0

    def report(jobs_done):
        with open(session_path + ".progress", "w") as f:
            f.write(str(jobs_done))
    for inputs in runs:
        wall = time.monotonic()
        values, chains, computed, host = {}, [], {}, {}
        for i, x in zip(g.inputs, inputs):
            if i in program.buffers:
                buf = program.buffers[i]
                buf.write(image, np.asarray(x))
                await dram.write(buf.addr, image[buf.addr:buf.addr + buf.size].tobytes())
            else:
                values[i] = np.asarray(x)

        async def fetch(t):
            buf = program.buffers[t]
            image[buf.addr:buf.addr + buf.size] = await dram.read(buf.addr, buf.size)
            return buf.read(image, g.tensors[t].shape)

        for k, cg in enumerate(program.groups):
            if opts.get("max_groups") is not None and k >= opts["max_groups"]:
                break
            if cg.mode == "HOST":
                op = cg.group.ops[0]
                rd = wr = 0
                for t in op.inputs:
                    if t in program.buffers:
                        values[t] = await fetch(t)
                        rd += program.buffers[t].size
                for t, y in zip(op.outputs, run_op(op, g, values)):
                    values[t] = y
                    if t in program.buffers:
                        buf = program.buffers[t]
                        buf.write(image, y)
                        await dram.write(buf.addr, image[buf.addr:buf.addr + buf.size].tobytes())
                        wr += buf.size
                host[k] = (rd, wr)
                continue
            for j in cg.jobs:
                job = program.jobs[j]
                starts_chain = j == 0 or program.jobs[j - 1].descriptor.get("last") or (
                    split and j == cg.jobs[0])
                if not starts_chain:
                    continue
                budget = opts.get("timeout_cycles", 200_000_000)
                try:
                    perf = await _run_chain(dut, bus, job.addr, limit, budget,
                                            progress=lambda n, base=done_jobs: report(base + n))
                except RuntimeError as exc:   # reported to the driver, which raises RtlError
                    outcome = dict(error=str(exc), status=await bus.read("status"))
                    if opts.get("expect_error"):   # what the hardware left in DRAM
                        outcome.update(image=await dram.read(0, len(image)), expected_image=image)
                    with open(session_path + ".out", "wb") as f:
                        pickle.dump(outcome, f)
                    return
                done_jobs += perf["jobs"]
                report(done_jobs)
                chains.append(dict(group=k, first_job=j, job_cycles=job_log.job_cycles(perf), **perf))
            if keep_all:
                computed[cg.group.output] = await fetch(cg.group.output)
        outputs = []
        for t in g.outputs if opts.get("max_groups") is None else ():
            outputs.append(await fetch(t) if t in program.buffers else values[t])
        results.append(dict(outputs=outputs, chains=chains, tensors=computed, host_traffic=host,
                            wall_seconds=time.monotonic() - wall))
    with open(session_path + ".out", "wb") as f:
        pickle.dump(dict(results=results, load_seconds=load_seconds), f)
