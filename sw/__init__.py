"""dwfuse: an int8 accelerator for depthwise-separable CNNs, and the host software that drives it.

    import dwfuse
    graph = dwfuse.load("model.tflite")       # or a zoo name, e.g. dwfuse.zoo.DEFAULT
    outputs, _ = dwfuse.run_graph(graph, x)    # golden model, bit-exact with TFLite
"""

from .errors import DwfuseError, HardwareLimitError, ModelError, UnsupportedOpError
from . import zoo
from .importer import load
from .interpreter import run_graph

__all__ = ["load", "run_graph", "zoo", "DwfuseError", "ModelError", "UnsupportedOpError", "HardwareLimitError"]
