"""The graph IR: what the importer produces and the compiler and runtimes consume.

A `Graph` is a flat list of `Tensor`s and a list of `Op`s in execution order, the same shape as
a TFLite subgraph. Tensors are NHWC. Quantization is kept as TFLite stores it (float32 scales,
int zero points); the per-op integer parameters TFLite derives at prepare time (multipliers,
shifts, activation ranges) are computed once by the importer and stored in `Op.params`.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Tensor", "Op", "Graph"]


@dataclass
class Tensor:
    """One tensor of the graph.

    Attributes
    ----------
    index : int
        Position in `Graph.tensors` (and in the TFLite subgraph).
    name : str
    shape : tuple of int
    dtype : numpy dtype (int8, int32, float32, ...)
    scale : numpy float32 array or None
        One entry per tensor, or one per channel along `quantized_dimension`.
    zero_point : numpy int64 array or None
    quantized_dimension : int
    data : numpy array or None
        The constant value (weights, bias, shape operands); None for activations.
    """

    index: int
    name: str
    shape: tuple
    dtype: np.dtype
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None

    @property
    def is_constant(self):
        return self.data is not None

    @property
    def per_channel(self):
        return self.scale is not None and self.scale.size > 1

    @property
    def nbytes(self):
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def zp(self):
        """The scalar zero point of a per-tensor quantized tensor."""
        return int(self.zero_point[0])


@dataclass
class Op:
    """One operator.

    Attributes
    ----------
    index : int
        Position in the TFLite subgraph's operator list (error messages name it).
    kind : str
        TFLite builtin name, e.g. "CONV_2D".
    inputs, outputs : list of int
        Tensor indices; -1 marks an omitted optional input (e.g. a missing bias).
    options : dict
        The builtin options as plain Python values (stride_h, padding, fused_activation, ...).
    params : dict
        Integer parameters derived as TFLite's Prepare does (multiplier, shift, act_min, ...).
    """

    index: int
    kind: str
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


@dataclass
class Graph:
    """A whole model: tensors, ops in execution order, and the graph's input/output tensors."""

    name: str
    tensors: list
    ops: list
    inputs: list
    outputs: list

    def tensor(self, i):
        return self.tensors[i]

    def input_tensor(self, k=0):
        return self.tensors[self.inputs[k]]

    def output_tensor(self, k=0):
        return self.tensors[self.outputs[k]]
