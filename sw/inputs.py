"""Turn user input files into the model's input tensor: .npy as is, images through quantization."""

import os

import numpy as np

from .errors import DwfuseError
from .verif.golden import ops as G

__all__ = ["load_input", "random_input", "IMAGE_SUFFIXES", "PREPROCESS"]

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".pgm", ".ppm")
PREPROCESS = ("mobilenet", "raw")


def random_input(tensor, seed=0):
    """A seeded uniform random tensor in the input's shape and dtype."""
    rng = np.random.default_rng(seed)
    if np.dtype(tensor.dtype) == np.float32:
        return rng.uniform(-1, 1, size=tensor.shape).astype(np.float32)
    info = np.iinfo(tensor.dtype)
    return rng.integers(info.min, info.max + 1, size=tensor.shape, dtype=np.int64).astype(tensor.dtype)


def _layout(shape):
    """(channels, height, width, nchw) of a 4-D image input."""
    if len(shape) != 4:
        raise DwfuseError(f"model input shape {list(shape)} is not an image (NHWC or NCHW)")
    if shape[3] in (1, 3):
        return shape[3], shape[1], shape[2], False
    if shape[1] in (1, 3):
        return shape[1], shape[2], shape[3], True
    raise DwfuseError(f"model input shape {list(shape)} has no 1- or 3-channel axis")


def load_input(path, tensor, preprocess="mobilenet"):
    """Read `path` as the model input.

    .npy must match the input's shape and dtype exactly. Images are converted to the input's
    channel count and size, then either
    - "mobilenet": pixel / 127.5 - 1 (the [-1, 1] range MobileNets are trained on), quantized
      with the input's scale and zero point exactly as TFLite's QUANTIZE does; or
    - "raw": int8 = pixel - 128 (TFLite Micro's person-detection example convention).
    """
    if not os.path.exists(path):
        raise DwfuseError(f"{path}: no such input file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise DwfuseError(f"{path}: not a readable .npy file ({e})") from None
        if tuple(x.shape) != tuple(tensor.shape) or x.dtype != tensor.dtype:
            raise DwfuseError(f"{path}: holds {x.dtype}{list(x.shape)}, model input is "
                              f"{np.dtype(tensor.dtype)}{list(tensor.shape)}")
        return x
    if suffix not in IMAGE_SUFFIXES:
        raise DwfuseError(f"{path}: unknown input format (use .npy or an image: {', '.join(IMAGE_SUFFIXES)})")
    if preprocess not in PREPROCESS:
        raise DwfuseError(f"unknown preprocessing {preprocess!r} (one of {', '.join(PREPROCESS)})")
    from PIL import Image, UnidentifiedImageError
    channels, h, w, nchw = _layout(tensor.shape)
    try:
        img = Image.open(path)
        img = img.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DwfuseError(f"{path}: not a readable image ({e})") from None
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8).reshape(h, w, channels)
    if np.dtype(tensor.dtype) not in (np.int8, np.float32):
        raise DwfuseError(f"image input needs an int8 or float32 model input, this one is {np.dtype(tensor.dtype)}")
    if np.dtype(tensor.dtype) == np.float32:  # the model quantizes itself (a QUANTIZE op)
        x = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    elif preprocess == "raw":
        x = (pixels.astype(np.int16) - 128).astype(np.int8)
    else:
        real = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
        x = G.quantize(real, scale=tensor.scale[0], zero_point=tensor.zp)
    if nchw:
        x = x.transpose(2, 0, 1)
    return x[None]
