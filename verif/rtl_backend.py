"""The `rtl` backend: run a compiled `Program` on the generated Verilog of the Accelerator top.

The top (hdl/top.py) is converted to Verilog, wrapped with the simulator-resident DRAM
(verif/dram_harness.py) and built by Verilator once per configuration (verif/sim.py caches
builds by content). Each call starts one simulator process running verif/tb_accelerator.py,
which executes every input set and writes the results back; this side shows a progress bar
(jobs done, from a file the bench updates while the chain runs) and turns the results into
outputs and a report.

It lives in verif/ because it drives a simulation (DESIGN.md section 7): `Program.run`
imports it only when ``backend="rtl"`` is asked for.
"""

import os
import pickle
import tempfile
import threading
import time
from pathlib import Path

from ..errors import DwfuseError
from ..hdl.top import Accelerator
from .dram_harness import dram_sources
from .sim import cached_design, design_sources, run_cocotb

__all__ = ["RtlError", "run_program", "DRAM_BYTES"]

#: Size of the simulated DRAM (fixed per build, so one Verilator model serves every program).
DRAM_BYTES = 64 << 20


class RtlError(DwfuseError):
    """The simulated accelerator reported an error or did not finish."""


def _design(config, *, dsp, python_dram=False):
    """The top's simulation sources (generated once per configuration, see `cached_design`)."""
    if python_dram:
        return cached_design(lambda: design_sources(Accelerator(config, dsp=dsp), "accel"),
                             "accel", config.as_dict(), dsp), "accel"
    words = DRAM_BYTES // config.bus_bytes
    return cached_design(lambda: dram_sources(Accelerator(config, dsp=dsp), "accel",
                                              bus_bytes=config.bus_bytes, words=words),
                         "sim_top", config.as_dict(), dsp, words), "sim_top"


def run_program(program, input_sets, *, keep_all=False, split_groups=False, progress=False, dsp="infer",
                read_latency=16,
                stall_percent=0, csr_pause=0.0, abort_after=None, seed=1, waves=False,
                timeout_cycles=200_000_000, debug=False, python_dram=False, axi_pause=0.0,
                expect_error=False, max_groups=None):
    """Run ``program`` on every input set (a list of input lists) in one simulation.

    Returns ``(results, info)``: per input set a dict with ``outputs``, ``chains`` (the
    hardware counters of every descriptor chain: cycles, jobs, rd_bytes, wr_bytes, engine_busy,
    in_words, in_starved, out_words, out_stalled; and ``job_cycles``, the cycles of each of its
    jobs from the simulation's job log, or None), ``tensors`` (with ``keep_all``: every
    accelerator group's output as read back from the simulated DRAM) and ``wall_seconds``;
    ``info`` has ``load_seconds`` and ``sim_seconds``. ``split_groups`` ends a descriptor chain
    after every fused group, so the counters come per group (``keep_all`` implies it). ``stall_percent`` makes the DRAM model
    stall every AXI channel at random; ``csr_pause`` pauses the AXI4-Lite channels;
    ``abort_after`` starts the first chain, aborts it after that many cycles, then runs normally.
    ``debug`` builds a model whose internal signals the bench can read (error reports then show
    the DMA's last commands), at several times lower speed. ``python_dram`` replaces the Verilog
    DRAM by cocotbext-axi's AxiRam (Python every cycle: small programs only), whose channels
    pause with probability ``axi_pause``. With ``expect_error``, an accelerator error ends the
    run without raising and the result is a dict with ``error``, ``status``, ``image`` (DRAM
    after the error) and ``expected_image`` (DRAM as the bench last wrote it). ``max_groups``
    stops after that many groups (no outputs then; with ``keep_all``, their tensors).
    """
    if len(program.image) > DRAM_BYTES:
        raise DwfuseError(f"the program's DRAM image ({len(program.image)} bytes) exceeds the simulated "
                          f"DRAM ({DRAM_BYTES} bytes)")
    design, toplevel = _design(program.config, dsp=dsp, python_dram=python_dram)
    with tempfile.TemporaryDirectory(prefix="dwfuse-rtl-") as tmp:
        session = Path(tmp) / "session.pkl"
        dram_file = Path(tmp) / "dram.hex"
        job_log = Path(tmp) / "jobs.log"
        with open(session, "wb") as f:
            pickle.dump(dict(program=program, inputs=input_sets, dram_file=str(dram_file), job_log=str(job_log),
                             options=dict(keep_all=keep_all, split_groups=split_groups, csr_pause=csr_pause,
                                          abort_after=abort_after, expect_error=expect_error,
                                          max_groups=max_groups,
                                          python_dram=DRAM_BYTES if python_dram else 0, axi_pause=axi_pause,
                                          timeout_cycles=timeout_cycles)), f)
        failure = []

        def simulate():
            try:
                run_cocotb(design, toplevel, "dwfuse.verif.tb_accelerator", seed=seed, waves=waves,
                           traceable=waves, extra_env={"DWFUSE_SESSION": str(session)},
                           plusargs=[f"+dram_file={dram_file}", f"+job_log={job_log}",
                                     f"+dram_latency={read_latency}",
                                     f"+dram_stall={stall_percent}", f"+dram_seed={seed}"],
                           run_name=f"rtl-{os.getpid()}",
                           public=debug or python_dram, speed=True)
            except BaseException as exc:  # reported below, in the caller's thread
                failure.append(exc)

        started = time.monotonic()
        worker = threading.Thread(target=simulate, daemon=True)
        worker.start()
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(program.jobs) * len(input_sets), unit="job", desc="rtl", leave=False)
        progress_file = Path(str(session) + ".progress")
        while worker.is_alive():
            worker.join(0.5)
            if bar is not None and progress_file.is_file():
                try:
                    bar.n = int(progress_file.read_text() or 0)
                    bar.refresh()
                except ValueError:
                    pass
        if bar is not None:
            bar.close()
        sim_seconds = time.monotonic() - started
        out = Path(str(session) + ".out")
        if failure or not out.is_file():
            detail = str(failure[0]) if failure else "no results"
            raise RtlError(f"RTL simulation failed: {detail.splitlines()[0] if detail else ''}\n{detail}")
        with open(out, "rb") as f:
            res = pickle.load(f)
    if "error" in res:
        if not expect_error:
            raise RtlError(res["error"])
        return res, dict(sim_seconds=sim_seconds)
    return res["results"], dict(load_seconds=res["load_seconds"], sim_seconds=sim_seconds)
