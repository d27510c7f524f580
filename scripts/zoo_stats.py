"""Build zoo models and show what they contain and how healthy their int8 activations are.

    python scripts/zoo_stats.py [--seed S] [--input-seed S] [-v] [NAME ...]

Per model: size, build time (uncached), op counts, and, when tflite-micro is installed, a run
of TFLite Micro on a fresh sample input with per-tensor activation statistics: distinct int8
values, the fraction clipped at the rails (-128 counts only where it is not the real 0 of a
ReLU output) and the fraction of ReLU zeros. With -v, one line per tensor.
"""

import argparse
import time

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator

from dwfuse import zoo

_OPNAME = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_CHECKED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=[zoo.DEFAULT, "mobilenet_v1_0.25_96",
                                                 "mobilenet_v2_1.0_224"])
    ap.add_argument("--seed", type=int, default=0, help="weight seed")
    ap.add_argument("--input-seed", type=int, default=1, help="sample input seed")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        runtime = None
    for name in args.names:
        t0 = time.perf_counter()
        buf = zoo._build_cached.__wrapped__(zoo.parse_name(name), args.seed)
        seconds = time.perf_counter() - t0
        m = tflite.Model.GetRootAsModel(buf, 0)
        sg = m.Subgraphs(0)
        kinds = [_OPNAME[m.OperatorCodes(sg.Operators(i).OpcodeIndex()).BuiltinCode()]
                 for i in range(sg.OperatorsLength())]
        counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
        print(f"{name}: {len(buf) / 1e6:.2f} MB, built in {seconds:.2f} s, {counts}")
        if runtime is None:
            print("  (tflite-micro not installed: no activation statistics)")
            continue
        arena = 2 * sum(int(np.prod(sg.Tensors(i).ShapeAsNumpy()))
                        for i in range(sg.TensorsLength())) + (1 << 20)
        it = runtime.Interpreter.from_bytes(
            buf, arena_size=arena, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        it.set_input(zoo.sample_input(name, args.input_seed), 0)
        it.invoke()
        distinct, clipped, zeros = [], [], []
        for i, kind in enumerate(kinds):
            if kind not in _CHECKED:
                continue
            t = sg.Operators(i).Outputs(0)
            a = it.GetTensor(t, 0)["tensor_data"]
            relu_floor = sg.Tensors(t).Quantization().ZeroPoint(0) == -128
            d = len(np.unique(a))
            c = (a == 127).mean() + (0.0 if relu_floor else (a == -128).mean())
            z = (a == -128).mean() if relu_floor and kind != "MEAN" else float("nan")
            distinct.append(d)
            clipped.append(c)
            zeros.append(z)
            if args.verbose:
                print(f"  {i:3d} {kind:18s} {sg.Tensors(t).Name().decode()[:32]:32s} "
                      f"{str(a.shape):18s} distinct {d:3d} clipped {c:.3f} zeros {z:.2f}")
        out = (it.get_output(0).astype(np.int32) + 128) / 256.0
        print(f"  activations: distinct min {min(distinct)} median {int(np.median(distinct))}; "
              f"clipped max {max(clipped):.4f}; ReLU zeros {np.nanmin(zeros):.2f}.."
              f"{np.nanmax(zeros):.2f}; softmax sum {out.sum():.3f} top {out.max():.3f} "
              f"(class {out.argmax()})")


if __name__ == "__main__":
    main()
