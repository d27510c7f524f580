"""A compiled program: groups, jobs (descriptors), the DRAM image, and how to run it.

`Program.run` executes host groups in numpy (the golden kernels, as `run_graph` does) and
accelerator jobs with a backend, which reads everything it needs from the DRAM image. The
program itself is never modified by a run, so many inputs reuse one compilation.
"""

from dataclasses import dataclass, field

import numpy as np

from .errors import DwfuseError, ModelError
from .fusion import Group, lower_bound_cycles, plan
from .interpreter import check_input, run_op
from .stats import compulsory_dram_bytes, op_activation_bytes, op_macs, op_weight_bytes

__all__ = ["CompiledGroup", "Job", "Program", "BACKENDS"]

BACKENDS = ("golden", "rtl")


@dataclass
class CompiledGroup:
    """A fusion group as compiled: its stages, tiles and jobs (indices into `Program.jobs`)."""

    group: Group
    pe0: object = None
    dw: object = None
    pe1: object = None
    col_tiles: list = field(default_factory=list)
    chan_tiles: list = field(default_factory=list)
    jobs: list = field(default_factory=list)

    @property
    def mode(self):
        return self.group.mode


@dataclass
class Job:
    """One accelerator run: its group, where its descriptor is, and the descriptor's fields."""

    group: int
    addr: int
    descriptor: dict


@dataclass
class Program:
    """The output of `dwfuse.compile`.

    Attributes
    ----------
    graph, config
    groups : list of CompiledGroup, in execution order
    jobs : list of Job, in execution order (chains end with the descriptor flag ``last``)
    buffers : dict tensor index → TensorBuffer (DRAM tensors; dead buffers reused)
    image : numpy uint8 array
        The DRAM image before a run: parameters from 0, descriptors from ``descriptor_base``,
        then activation buffers (zero).
    """

    graph: object
    config: object
    groups: list
    jobs: list
    buffers: dict
    image: np.ndarray
    param_bytes: int
    descriptor_base: int
    descriptor_bytes: int

    def chains(self):
        """Lists of job indices that run back to back (one descriptor chain each)."""
        out, cur = [], []
        for k, job in enumerate(self.jobs):
            cur.append(k)
            if job.descriptor.get("last"):
                out.append(cur)
                cur = []
        return out

    def run(self, inputs, backend="golden", keep_all=False, progress=False, rtl_options=None):
        """Run one inference.

        Parameters
        ----------
        inputs : array or list of arrays, in the graph inputs' shapes and dtypes
        backend : "golden" or "rtl"
            golden: the jobs in numpy from the DRAM image (checks the compiler); rtl: the
            generated Verilog of the Accelerator top under Verilator (verif/rtl_backend.py), with
            cycle counts from its hardware counters.
        keep_all : bool
            Also return every tensor an accelerator group computed (its output, as it was in DRAM).
        progress : bool
            rtl: show a progress bar while simulating.
        rtl_options : dict
            rtl: extra arguments of `verif.rtl_backend.run_program` (stalls, seed, waves...).

        Returns
        -------
        (outputs, report) : list of arrays and a dict (see `report`); with keep_all, the report
        has "tensors": tensor index → array.
        """
        if backend not in BACKENDS:
            raise DwfuseError(f"unknown backend {backend!r}; compiled programs run on: {', '.join(BACKENDS)}")
        g = self.graph
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        self._check_inputs(inputs)
        if backend == "rtl":
            return self._run_rtl(inputs, keep_all, progress, rtl_options or {})
        from .golden_backend import run_job
        image = self.image.copy()
        values = {}
        traffic = [[0, 0] for _ in self.groups]     # per group: DRAM bytes read, written
        host_write = 0
        computed = {}
        for i, x in zip(g.inputs, inputs):
            x = np.asarray(x)
            if i in self.buffers:
                self.buffers[i].write(image, x)
                host_write += self.buffers[i].size
            else:
                values[i] = x
        for k, cg in enumerate(self.groups):
            if cg.mode == "HOST":
                op = cg.group.ops[0]
                for t in op.inputs:
                    if t in self.buffers:
                        values[t] = self.buffers[t].read(image, g.tensors[t].shape)
                        traffic[k][0] += self.buffers[t].size
                for t, y in zip(op.outputs, run_op(op, g, values)):
                    values[t] = y
                    if t in self.buffers:
                        self.buffers[t].write(image, y)
                        traffic[k][1] += self.buffers[t].size
                continue
            for j in cg.jobs:
                _, rd, wr = run_job(image, self.jobs[j].addr, self.config)
                traffic[k][0] += rd
                traffic[k][1] += wr
            if keep_all:    # before a later group reuses the buffer
                t = cg.group.output
                computed[t] = self.buffers[t].read(image, g.tensors[t].shape)
        outputs = []
        for t in g.outputs:
            if t in self.buffers:
                outputs.append(self.buffers[t].read(image, g.tensors[t].shape))
            else:
                outputs.append(values[t])
        rep = self.report(traffic, host_write)
        if keep_all:
            rep["tensors"] = computed
        return outputs, rep

    def _check_inputs(self, inputs):
        g = self.graph
        if len(inputs) != len(g.inputs):
            raise ModelError(f"{len(inputs)} inputs given, the model has {len(g.inputs)}")
        for i, x in zip(g.inputs, inputs):
            check_input(g, i, x)

    def _run_rtl(self, inputs, keep_all, progress, options):
        """`run` on the RTL. The program's chains run whole (consecutive jobs overlap, as on the
        FPGA) and the simulation's job log splits their cycles per job, hence per group; with
        ``keep_all`` every group ends its own chain so its output can be read back before a
        later group reuses the buffer (no overlap across groups then: cycles are higher)."""
        # The simulation harness lives in verif/ (DESIGN.md section 7); only this backend needs it.
        from .verif.rtl_backend import run_program
        results, info = run_program(self, [list(inputs)], keep_all=keep_all, progress=progress, **options)
        r = results[0]
        traffic = [[0, 0] for _ in self.groups]
        cycles = [0] * len(self.groups)
        counters = {}
        for c in r["chains"]:
            k = c["group"]
            # DRAM bytes and engine counters per chain: on its first group
            traffic[k][0] += c["rd_bytes"]
            traffic[k][1] += c["wr_bytes"]
            counters[k] = c
            per_job = c.get("job_cycles") or [c["cycles"]]
            for j, n in enumerate(per_job):
                cycles[self.jobs[c["first_job"] + j].group] += n
        for k, (rd, wr) in r["host_traffic"].items():
            traffic[k] = [rd, wr]
        if not keep_all:
            # A chain's counters cover several groups: split its bytes as the golden backend
            # moves them per job, once the totals agree (they must: same descriptors, same DMA).
            _, golden = self.run(inputs, backend="golden")
            per_group = [[grp["dram_read_bytes"], grp["dram_write_bytes"]] for grp in golden["groups"]]
            expected = [sum(t[0] for t in per_group), sum(t[1] for t in per_group)]
            moved = [sum(t[0] for t in traffic), sum(t[1] for t in traffic)]
            if expected != moved:
                raise DwfuseError(
                    f"the RTL's DMA moved {moved[0]} bytes read / {moved[1]} written over the run, "
                    f"but its descriptors (golden backend) move {expected[0]} / {expected[1]}")
            traffic = per_group
        host_write = sum(self.buffers[i].size for i in self.graph.inputs if i in self.buffers)
        rep = self.report(traffic, host_write)
        for grp in rep["groups"]:
            k = grp["index"]
            grp["cycles"] = cycles[k]
            grp["utilisation"] = round(grp["lower_bound_cycles"] / cycles[k], 4) if cycles[k] else None
            if k in counters:
                grp["counters"] = {n: counters[k][n] for n in ("engine_busy", "in_words", "in_starved",
                                                               "out_words", "out_stalled")}
        first_op = {grp["ops"][0]: grp for grp in rep["groups"] if grp["ops"]}
        for layer in rep["layers"]:
            grp = first_op.get(layer["index"])
            layer["cycles"] = grp["cycles"] if grp else 0
            layer["utilisation"] = grp["utilisation"] if grp else None
        rep["cycles"] = sum(cycles)
        rep["utilisation"] = round(rep["lower_bound_cycles"] / rep["cycles"], 4) if rep["cycles"] else None
        rep["sim_cycles_per_second"] = round(rep["cycles"] / r["wall_seconds"]) if r["wall_seconds"] else None
        rep["sim_seconds"] = round(info["sim_seconds"], 3)
        if keep_all:
            rep["tensors"] = r["tensors"]
        return r["outputs"], rep

    def report(self, traffic=None, host_input_bytes=0):
        """Per layer and total figures; DRAM bytes are those of a run (`traffic`), if given.

        Keys: ``config``, ``pe_array_macs_per_cycle``, ``dw_macs_per_cycle``, ``macs``,
        ``lower_bound_cycles`` (issue 4: per group max(PE MACs / PE rate, DW MACs / DW rate),
        summed), ``dram_read_bytes``, ``dram_write_bytes``, ``dram_bytes``,
        ``compulsory_dram_bytes`` (weights + input + output + fused-group boundaries, from the
        fusion plan), ``layer_by_layer_dram_bytes``, ``host_input_bytes``, ``jobs``,
        ``param_bytes``, ``dram_image_bytes``; ``layers`` (per op: index, op, group, mode, macs,
        lower_bound_cycles, dram_read_bytes, dram_write_bytes, layer_by_layer_dram_bytes) and
        ``groups`` (per group: index, mode, ops, jobs, column_tiles, channel_tiles, notes,
        lower_bound_cycles, throughput_bound_cycles, dram_read_bytes, dram_write_bytes).

        ``throughput_bound_cycles`` (per group and summed) adds what issue 4's bound leaves out
        but this hardware cannot beat: per group the largest of its lower bound, its requantized
        PE outputs / ``requant_lanes`` (``residual_lanes`` for the ADD's), and the DRAM bytes it
        reads / ``bus_bytes`` (with `traffic`).

        DRAM bytes count what the jobs read and write (descriptors, parameters, activations) and
        what host ops read from and write to DRAM tensors; the host's write of the network input
        (once per inference, before the first job) is ``host_input_bytes``, not in the totals.

        Per-group figures (lower-bound cycles, DRAM bytes, jobs) sit on the group's first op;
        the other ops of a fused group show 0 there, so columns add up to the totals.
        """
        g, cfg = self.graph, self.config
        pe_rate, dw_rate = cfg.pe_macs_per_cycle, cfg.dw_macs_per_cycle
        layers, groups = [], []
        for k, cg in enumerate(self.groups):
            lb = 0 if cg.mode == "HOST" else lower_bound_cycles(cg.group, g, pe_rate, dw_rate)
            rd, wr = traffic[k] if traffic else (0, 0)
            groups.append(dict(index=k, mode=cg.mode, ops=[op.index for op in cg.group.ops],
                               jobs=len(cg.jobs), column_tiles=len(cg.col_tiles) or None,
                               channel_tiles=len(cg.chan_tiles) or None, notes=list(cg.group.notes),
                               lower_bound_cycles=lb,
                               throughput_bound_cycles=0 if cg.mode == "HOST" else _throughput_bound(cg, g, cfg, lb, rd),
                               dram_read_bytes=rd, dram_write_bytes=wr))
            for n, op in enumerate(cg.group.ops):
                first = n == 0
                layers.append(dict(
                    index=op.index, op=op.kind, group=k, mode=cg.mode, macs=op_macs(op, g),
                    lower_bound_cycles=lb if first else 0,
                    dram_read_bytes=rd if first else 0, dram_write_bytes=wr if first else 0,
                    layer_by_layer_dram_bytes=op_weight_bytes(op, g) + op_activation_bytes(op, g)))
        layers.sort(key=lambda r: r["index"])
        rd = sum(x["dram_read_bytes"] for x in groups)
        wr = sum(x["dram_write_bytes"] for x in groups)
        return dict(
            config=cfg.name, pe_array_macs_per_cycle=pe_rate, dw_macs_per_cycle=dw_rate,
            macs=sum(x["macs"] for x in layers),
            lower_bound_cycles=sum(x["lower_bound_cycles"] for x in groups),
            throughput_bound_cycles=sum(x["throughput_bound_cycles"] for x in groups),
            dram_read_bytes=rd, dram_write_bytes=wr, dram_bytes=rd + wr, host_input_bytes=host_input_bytes,
            layer_by_layer_dram_bytes=sum(x["layer_by_layer_dram_bytes"] for x in layers),
            compulsory_dram_bytes=compulsory_dram_bytes(g, plan(g)),
            jobs=len(self.jobs), param_bytes=self.param_bytes, dram_image_bytes=len(self.image),
            layers=layers, groups=groups)


def _throughput_bound(cg, graph, config, lower_bound, read_bytes):
    """Cycles a group needs at least on this hardware (see `Program.report`)."""
    cycles = [lower_bound, -(-read_bytes // config.bus_bytes)]
    for st in (cg.pe0, cg.pe1):
        if st is not None:    # whole tiles of pe_cols channels go through the requantizers
            pixels = int(np.prod(graph.tensors[st.op.outputs[0]].shape[:-1]))
            values = pixels * st.out_tiles * config.pe_cols
            cycles.append(-(-values // config.requant_lanes))
            if st is (cg.pe1 or cg.pe0) and cg.group.residual >= 0:
                cycles.append(-(-values // (config.residual_lanes or config.requant_lanes)))
    return max(cycles)
