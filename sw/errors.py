"""Exception types raised at the project's boundaries (model files, hardware limits)."""

__all__ = ["DwfuseError", "ModelError", "UnsupportedOpError", "HardwareLimitError"]


class DwfuseError(Exception):
    """Base class of every error dwfuse raises on bad input; the CLI prints it as one line."""


class ModelError(DwfuseError):
    """The model file is malformed, not int8, or uses quantization dwfuse cannot run bit-exactly."""


class UnsupportedOpError(ModelError):
    """The model contains an operator dwfuse does not implement.

    The message names the operator index and its TFLite builtin name.
    """

    def __init__(self, op_index, op_name, detail=""):
        self.op_index = op_index
        self.op_name = op_name
        msg = f"op {op_index} ({op_name}): unsupported operator"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class HardwareLimitError(DwfuseError):
    """A layer exceeds a build-time limit of the accelerator configuration."""
