"""Wrap a design with an AXI4 master port in a simulation top that holds its DRAM.

`with_dram` takes the Verilog of a design whose ``m_axi`` port follows hdl/axi.py and returns
the Verilog of a module ``sim_top`` that instantiates it beside ``axi_ram_sim``
(verif/models/axi_ram_sim.v): every other port of the design becomes a port of ``sim_top`` with
the same name, and the AXI4 bus stays inside. cocotb then sees ``dut.<port>`` as usual and the
memory as ``dut.dram.mem``; Python is only involved when the bench touches a signal, so a
whole network runs at Verilator speed (DESIGN.md section 6). ``sim_top`` adds the ports
``dram_load``, ``dram_dump``, ``dram_lo`` and ``dram_hi`` for bulk transfers through the file
given by the plusarg ``+dram_file=`` (see the model's header and `DramFile`). A design with a
``job_done`` output gets a log: with ``+job_log=FILE`` every pulse's cycle number is written to
FILE, which gives per-job cycles of a whole descriptor chain without stopping it.
"""

import hashlib
import os
import re
from pathlib import Path

from .sim import PRIMITIVE_MODELS, default_build_root, to_verilog

__all__ = ["with_dram", "dram_sources", "RAM_MODEL", "top_ports"]

RAM_MODEL = Path(__file__).resolve().parent / "models" / "axi_ram_sim.v"

_AXI_SIGNALS = ("awaddr", "awlen", "awsize", "awburst", "awid", "awvalid", "awready", "wdata",
                "wstrb", "wlast", "wvalid", "wready", "bid", "bresp", "bvalid", "bready", "araddr",
                "arlen", "arsize", "arburst", "arid", "arvalid", "arready", "rid", "rdata", "rresp",
                "rlast", "rvalid", "rready")


def top_ports(verilog, module):
    """[(direction, width, name)] of ``module``'s ports in Amaranth-generated Verilog."""
    m = re.search(rf"^module {re.escape(module)}\((.*?)^endmodule", verilog, re.S | re.M)
    if not m:
        raise ValueError(f"module {module!r} not found in the Verilog")
    ports = []
    for direction, rng, name in re.findall(r"^\s*(input|output)\s+(?:(\[\d+:0\])\s+)?(\S+);", m.group(1), re.M):
        width = int(rng[1:].split(":")[0]) + 1 if rng else 1
        ports.append((direction, width, name.lstrip("\\")))
    return ports


# With ``+job_log=FILE``, the cycle of every ``job_done`` pulse, one per line (the per-job cycles
# of a whole chain, without Python in the loop).
_JOB_LOG = """    integer job_log = 0;
    reg [63:0] cycle = 0;
    reg [1023:0] job_log_path;
    initial if ($value$plusargs("job_log=%s", job_log_path)) job_log = $fopen(job_log_path, "w");
    always @(posedge clk) begin
        cycle <= cycle + 1;
        if (job_log != 0 && job_done) begin
            $fwrite(job_log, "%0d\\n", cycle);
            $fflush(job_log);
        end
    end"""


def with_dram(verilog, module, *, bus_bytes, words, read_latency=16, stall_percent=0, seed=1,
              prefix="m_axi__"):
    """Verilog text: ``verilog`` plus a ``sim_top`` holding ``module`` and its DRAM model.

    ``words`` is the DRAM size in bus words; ``stall_percent`` makes the RAM stall every channel
    at random (0 = never).
    """
    ports = top_ports(verilog, module)
    names = {name for _, _, name in ports}
    missing = [s for s in _AXI_SIGNALS if prefix + s not in names]
    if missing:
        raise ValueError(f"{module}: no AXI4 port {prefix}*: missing {missing}")
    outer = [(d, w, n) for d, w, n in ports if not n.startswith(prefix)]
    sim_ports = [("input", 1, "dram_load"), ("input", 1, "dram_dump"), ("input", 32, "dram_lo"),
                 ("input", 32, "dram_hi")]
    decls = "\n".join(f"    {d} {'[%d:0] ' % (w - 1) if w > 1 else ''}{n} /*verilator public_flat_rw*/,"
                      for d, w, n in outer + sim_ports).rstrip(",")
    wires = "\n".join(f"    wire {'[%d:0] ' % (w - 1) if w > 1 else ''}{n};" for _, w, n in ports if n.startswith(prefix))
    conns = ",\n".join(f"        .{n}({'rst_q' if n == 'rst' else n})" for _, _, n in ports)
    ram_conns = ",\n".join(f"        .{s}({prefix}{s})" for s in _AXI_SIGNALS)
    job_log = _JOB_LOG if "job_done" in names else ""
    clk = "clk" if "clk" in names else None
    rst = "rst" if "rst" in names else None
    if not clk or not rst:
        raise ValueError(f"{module}: needs clk and rst ports")
    return f"""{verilog}

module sim_top(
{decls}
);
    /*verilator public_module*/
{wires}
    // The reset is registered so that it is not a top-level input of the design's logic:
    // the simulator re-evaluates all logic fed by top-level inputs whenever one changes (twice per
    // clock cycle), and a synchronous reset reaches almost every flip-flop.
    reg rst_q = 1'b1;
    always @(posedge clk) rst_q <= rst;
{job_log}
    {module} core (
{conns}
    );
    axi_ram_sim #(.DATA_BYTES({bus_bytes}), .ADDR_WIDTH(32), .WORDS({words}),
                  .READ_LATENCY({read_latency}), .STALL_PERCENT({stall_percent}), .SEED({seed})) dram (
        .clk(clk), .rst(rst_q), .sim_load(dram_load), .sim_dump(dram_dump), .sim_lo(dram_lo), .sim_hi(dram_hi),
{ram_conns}
    );
endmodule
"""


def dram_sources(elaboratable, name, **kwargs):
    """The ``design`` argument of `run_cocotb` for ``sim_top``: ``elaboratable`` (converted to
    Verilog as module ``name``) wrapped by `with_dram` (``kwargs``), written to a content-named
    file under the build root, followed by the RAM model and any vendor-primitive models."""
    text = with_dram(to_verilog(elaboratable, name=name), name, **kwargs)
    models = [path for prim, path in PRIMITIVE_MODELS.items() if re.search(rf"\b{prim}\b", text)]
    path = default_build_root() / "sources" / f"{name}-dram-{hashlib.sha256(text.encode()).hexdigest()[:16]}.v"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return (path, RAM_MODEL, *models)
