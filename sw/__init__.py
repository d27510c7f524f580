"""dwfuse: an int8 accelerator for depthwise-separable CNNs, and the host software that drives it.

    import dwfuse
    graph = dwfuse.load("model.tflite")       # or a zoo name, e.g. dwfuse.zoo.DEFAULT
    outputs, _ = dwfuse.run_graph(graph, x)    # golden model, bit-exact with TFLite
    program = dwfuse.compile(graph, "ecp5")    # groups, tiles, packed weights, descriptors
    outputs, report = program.run(x)           # the compiled program on the golden backend
"""

from .errors import DwfuseError, HardwareLimitError, ModelError, UnsupportedOpError
from . import zoo
from .importer import load
from .interpreter import run_graph
from .compiler import compile

__all__ = ["load", "run_graph", "compile", "zoo", "DwfuseError", "ModelError", "UnsupportedOpError", "HardwareLimitError"]
