"""Writer of the flash2ambient weights format (.f2aw, version 1), in Python.

The format is specified in docs/WEIGHTS_FORMAT.md; this mirrors
``WeightsFile.serialized`` in Sources/F2AModel/WeightsFile.swift (the only other
writer) byte for byte in layout: preamble, header with CRC-32, zero padding to
a 64-byte boundary, then each tensor's data padded *before* it to 64 bytes so
that the file ends exactly with the last tensor. Readers to check the output
against: tools/onnx/f2a_to_onnx.py (``read_f2aw``) and the Swift library
(``f2a info --model FILE``).

This is the project's only Python writer of the format; other tools should
import it rather than copy it.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from typing import Iterable, List, Sequence, Tuple, Union

import numpy as np

MAGIC = b"F2AW\r\n\x1a\n"
VERSION = 1
ALIGNMENT = 64
MAX_STRING = 4096
F16_MAX = 65504.0

ConfigValue = Union[int, float, str]


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > MAX_STRING:
        raise ValueError(f"string of {len(b)} bytes exceeds the format's limit of {MAX_STRING}: {s[:60]!r}…")
    return struct.pack("<I", len(b)) + b


def _config_entry(key: str, value: ConfigValue) -> bytes:
    # bool is an int subclass in Python; the format has no booleans.
    if isinstance(value, bool):
        raise TypeError(f"config '{key}': booleans are not a config kind")
    if isinstance(value, int):
        return _string(key) + bytes([1]) + struct.pack("<q", value)
    if isinstance(value, float):
        return _string(key) + bytes([2]) + struct.pack("<d", value)
    if isinstance(value, str):
        return _string(key) + bytes([3]) + _string(value)
    raise TypeError(f"config '{key}': unsupported value type {type(value).__name__}")


def encode_tensor(name: str, array: np.ndarray, dtype: str) -> bytes:
    """Little-endian f32 or f16 bytes of ``array``; rejects non-finite values
    and values that f16 cannot represent (instead of storing inf)."""
    a = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"tensor '{name}': non-finite values")
    if dtype == "f32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "f16":
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        if peak > F16_MAX:
            raise ValueError(f"tensor '{name}': |value| {peak:g} exceeds the f16 maximum {F16_MAX:g} (use f32)")
        # Round once, from float32 as the Swift writer does (Float → Float16).
        return np.ascontiguousarray(a.astype(np.float32).astype("<f2")).tobytes()
    raise ValueError(f"dtype must be 'f32' or 'f16', not {dtype!r}")


def serialize(config: Sequence[Tuple[str, ConfigValue]],
              tensors: Iterable[Tuple[str, np.ndarray]], dtype: str = "f32") -> bytes:
    """The bytes of a .f2aw file: ``config`` as (key, value) pairs in order,
    ``tensors`` as (name, array) pairs in order, every tensor stored as ``dtype``."""
    header = bytearray(struct.pack("<I", len(config)))
    for key, value in config:
        header += _config_entry(key, value)
    tensors = list(tensors)
    header += struct.pack("<I", len(tensors))
    data = bytearray()
    code = {"f32": 0, "f16": 1}[dtype]
    for name, array in tensors:
        shape = np.shape(array)
        if len(shape) > 8:
            raise ValueError(f"tensor '{name}': rank {len(shape)} exceeds 8")
        data += bytes(_align(len(data)) - len(data))  # pad before, so the file ends with the last tensor
        offset = len(data)
        encoded = encode_tensor(name, array, dtype)
        data += encoded
        header += _string(name) + bytes([code, len(shape)])
        header += b"".join(struct.pack("<Q", d) for d in shape)
        header += struct.pack("<QQI", offset, len(encoded), zlib.crc32(encoded) & 0xFFFFFFFF)
    out = bytearray(MAGIC)
    out += struct.pack("<IIQII", VERSION, 0, len(header), zlib.crc32(bytes(header)) & 0xFFFFFFFF, 0)
    out += header
    if tensors:
        out += bytes(_align(len(out)) - len(out))
        out += data
    return bytes(out)


def write_f2aw(path: str, config: Sequence[Tuple[str, ConfigValue]],
               tensors: Iterable[Tuple[str, np.ndarray]], dtype: str = "f32") -> int:
    """Writes atomically (temporary file in the same directory, then rename).
    Returns the number of bytes written."""
    blob = serialize(config, tensors, dtype)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".f2aw-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(blob)
