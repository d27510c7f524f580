"""The DRAM memory map of a compiled program: regions, tensor buffers, and how tensors sit in them.

Activations live in DRAM as NHWC int8 with the channels padded to a multiple of ``lanes`` (one
*word* per ``lanes`` channels), which is what the accelerator's DMA streams. A tensor of any
rank maps to (height, width, channels): rank 4 (1, H, W, C) is itself; anything else is one
row of ``prod(shape[:-1])`` pixels of ``shape[-1]`` channels (an FC's rows are its pixels).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["TensorBuffer", "tensor_geometry", "align", "Arena"]


def align(n, to):
    return -(-n // to) * to


def tensor_geometry(shape, lanes):
    """(height, width, channels, chunks) of a tensor as the accelerator sees it."""
    shape = tuple(int(s) for s in shape) or (1,)
    c = shape[-1]
    if len(shape) == 4 and shape[0] == 1:
        h, w = shape[1], shape[2]
    else:
        h, w = 1, int(np.prod(shape[:-1], dtype=np.int64))
    return h, w, c, -(-c // lanes)


@dataclass
class TensorBuffer:
    """Where one activation tensor lives: ``height x width`` pixels of ``chunks * lanes`` bytes."""

    tensor: int
    addr: int
    height: int
    width: int
    channels: int
    chunks: int
    lanes: int

    @property
    def pixel_bytes(self):
        return self.chunks * self.lanes

    @property
    def row_bytes(self):
        return self.width * self.pixel_bytes

    @property
    def size(self):
        return self.height * self.row_bytes

    def view(self, image):
        """The (height, width, chunks * lanes) int8 view of this buffer in a DRAM image."""
        raw = image[self.addr:self.addr + self.size]
        return raw.view(np.int8).reshape(self.height, self.width, self.pixel_bytes)

    def write(self, image, value):
        """Store a tensor value (any shape with this buffer's geometry); padded channels get 0."""
        v = self.view(image)
        v[...] = 0
        v[:, :, :self.channels] = np.asarray(value).reshape(self.height, self.width, self.channels)

    def read(self, image, shape):
        """The tensor value in its model shape (padded channels dropped)."""
        return self.view(image)[:, :, :self.channels].reshape(shape).copy()


class Arena:
    """First-fit allocator of aligned byte ranges above ``base``; freed ranges are reused."""

    def __init__(self, base, alignment):
        self.alignment = alignment
        self.top = align(base, alignment)
        self.high = self.top    # high-water mark: the end of the region
        self.free = []          # (addr, size), sorted by address

    def alloc(self, size):
        size = align(max(size, 1), self.alignment)
        for k, (addr, n) in enumerate(self.free):
            if n >= size:
                if n == size:
                    del self.free[k]
                else:
                    self.free[k] = (addr + size, n - size)
                return addr
        addr = self.top
        self.top += size
        self.high = max(self.high, self.top)
        return addr

    def release(self, addr, size):
        size = align(max(size, 1), self.alignment)
        self.free.append((addr, size))
        self.free.sort()
        merged = []
        for a, n in self.free:
            if merged and merged[-1][0] + merged[-1][1] == a:
                merged[-1] = (merged[-1][0], merged[-1][1] + n)
            else:
                merged.append((a, n))
        if merged and merged[-1][0] + merged[-1][1] == self.top:
            self.top = merged.pop()[0]
        self.free = merged
