"""TFLite Micro as the oracle: run a model with its reference kernels and read every tensor.

`tflite-micro` (PyPI) is a dev dependency; importing this module without it raises ImportError,
which the tests turn into a skip with the reason.
"""

import numpy as np
from tflite_micro.python.tflite_micro import runtime

__all__ = ["tflm_run", "compare_graph_with_tflm"]


def _num_outputs(model_bytes):
    import tflite
    return tflite.Model.GetRootAsModel(bytes(model_bytes), 0).Subgraphs(0).OutputsLength()


def tflm_run(model_bytes, inputs, tensor_indices=()):
    """Invoke TFLite Micro once.

    Returns (outputs, tensors): the output arrays, and a dict index → array for
    `tensor_indices` (read back with kPreserveAllTensors, so intermediate tensors survive).
    """
    interp = runtime.Interpreter.from_bytes(
        bytes(model_bytes), arena_size=max(len(model_bytes) * 10, 16 << 20),
        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    for k, x in enumerate(inputs):
        interp.set_input(x, k)
    interp.invoke()
    outputs = [np.array(interp.get_output(k)) for k in range(_num_outputs(model_bytes))]
    tensors = {}
    for i in tensor_indices:
        info = interp.GetTensor(int(i), 0)
        tensors[int(i)] = np.array(info["tensor_data"]).reshape(tuple(int(s) for s in info["shape"]))
    return outputs, tensors


def compare_graph_with_tflm(model_bytes, graph, inputs, values):
    """Compare every op output tensor in `values` (index → array) with TFLite Micro.

    Returns a list of human-readable mismatch descriptions (empty when bit-exact).
    """
    indices = [i for op in graph.ops for i in op.outputs if i in values]
    _, ref = tflm_run(model_bytes, inputs, indices)
    bad = []
    for op in graph.ops:
        for i in op.outputs:
            if i not in values:
                continue
            got, want = np.asarray(values[i]), ref[i]
            if got.shape != want.shape:
                bad.append(f"op {op.index} ({op.kind}) tensor {i}: shape {got.shape} vs TFLM {want.shape}")
            elif not np.array_equal(got, want):
                d = got.astype(np.int64) - want.astype(np.int64)
                bad.append(f"op {op.index} ({op.kind}) tensor {i}: {np.count_nonzero(d)} of {d.size} "
                           f"values differ, max |diff| {np.abs(d).max()}")
    return bad
