#!/usr/bin/env python3
"""Convert a flash2ambient weights file (.f2aw) to an ONNX model.

    python tools/onnx/f2a_to_onnx.py IN.f2aw OUT.onnx [--opset 17] [--static HxW] [--f2a build/bin/f2a]

This file holds three things:

* ``read_f2aw(path)``: an independent reader of the ``.f2aw`` format
  (docs/WEIGHTS_FORMAT.md), written from the specification and not from the
  Swift reader. It verifies magic, version, header length, header CRC-32,
  limits, alignment, overlapping regions, truncation, trailing bytes, every
  tensor's CRC-32 and finiteness, and raises ``F2AWError`` otherwise.
* ``load_generator(path)``: the file's configuration (``Config``), and the
  layer list of the Swift library (``GeneratorConfig.layers``, printed by
  ``f2a info --layers``) with each layer's weight and bias shapes checked
  against the file's tensors. The network is described once, in Swift; this
  converter does not derive channels or shapes itself.
* ``build_onnx(config, tensors)``: the ONNX graph (opset >= 13) with the
  semantics of ``Generator.forward`` in Sources/F2AModel/Generator.swift,
  built by walking the layer list, and ``reference_forward(config, tensors,
  x)``: a plain numpy (float64) forward pass over the same list, a third
  implementation of the kernels used by the tests to check the other two.

ONNX model interface
    input  ``flash``   float32 [N, 3, H, W], RGB in [0, 1], H and W multiples
                       of 2^(levels-1) (pad beforehand, e.g. centred reflect)
    output ``ambient`` float32 [N, 3, H, W] in [0, 1]
N, H and W are dynamic unless --static is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple

import numpy as np

MAGIC = b"F2AW\r\n\x1a\n"
VERSION = 1
ALIGNMENT = 64
PREAMBLE = 32
MAX_STRING = 4096
MAX_CONFIG = 1024
MAX_TENSORS = 65536
MAX_RANK = 8
MAX_ELEMENTS = 1 << 31
DTYPES = {0: ("f32", np.dtype("<f4")), 1: ("f16", np.dtype("<f2"))}


class F2AWError(Exception):
    """The file is not a valid .f2aw weights file (or not a valid generator)."""


# --------------------------------------------------------------------------
# Reader


class _Reader:
    def __init__(self, data: bytes, offset: int, limit: int):
        self.data, self.offset, self.limit = data, offset, limit

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.offset + n > self.limit:
            raise F2AWError(f"header ends inside {what} (at byte {self.offset}, header ends at {self.limit})")
        b = self.data[self.offset:self.offset + n]
        self.offset += n
        return b

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack("<Q", self.take(8, what))[0]

    def string(self, what: str) -> str:
        n = self.u32(what + " length")
        if n > MAX_STRING:
            raise F2AWError(f"{what}: string of {n} bytes (limit {MAX_STRING})")
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError as e:
            raise F2AWError(f"{what}: invalid UTF-8 ({e})") from None


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def parse_f2aw(data: bytes) -> Tuple[Dict[str, object], Dict[str, np.ndarray], Dict[str, str]]:
    """Parses and verifies an in-memory .f2aw file.

    Returns (config, tensors, dtypes): config values are int / float / str by
    their stored kind; tensors are float32 numpy arrays in file order (f16 is
    widened exactly); dtypes maps tensor name to "f32" / "f16".
    """
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise F2AWError("not a flash2ambient weights file (bad magic)")
    if len(data) < PREAMBLE:
        raise F2AWError(f"truncated: {len(data)} bytes, the preamble alone is {PREAMBLE}")
    version, _, header_length, header_crc, _ = struct.unpack("<IIQII", data[8:PREAMBLE])
    if version != VERSION:
        raise F2AWError(f"unsupported format version {version} (this reader supports {VERSION})")
    header_end = PREAMBLE + header_length
    if header_end > len(data):
        raise F2AWError(f"truncated: header needs {header_end} bytes, file has {len(data)}")
    computed = zlib.crc32(data[PREAMBLE:header_end]) & 0xFFFFFFFF
    if computed != header_crc:
        raise F2AWError(f"header checksum mismatch: stored {header_crc:08x}, computed {computed:08x}")

    r = _Reader(data, PREAMBLE, header_end)
    config: Dict[str, object] = {}
    n_config = r.u32("config count")
    if n_config > MAX_CONFIG:
        raise F2AWError(f"{n_config} config entries (limit {MAX_CONFIG})")
    for _ in range(n_config):
        key = r.string("config key")
        if key in config:
            raise F2AWError(f"config key '{key}' appears twice")
        kind = r.u8(f"kind of config '{key}'")
        if kind == 1:
            config[key] = struct.unpack("<q", r.take(8, key))[0]
        elif kind == 2:
            config[key] = struct.unpack("<d", r.take(8, key))[0]
        elif kind == 3:
            config[key] = r.string(f"config '{key}'")
        else:
            raise F2AWError(f"config '{key}': unknown value kind {kind}")

    n_tensors = r.u32("tensor count")
    if n_tensors > MAX_TENSORS:
        raise F2AWError(f"{n_tensors} tensors (limit {MAX_TENSORS})")
    entries = []
    names = set()
    for _ in range(n_tensors):
        name = r.string("tensor name")
        if name in names:
            raise F2AWError(f"tensor '{name}' appears twice")
        names.add(name)
        code = r.u8(f"dtype of '{name}'")
        if code not in DTYPES:
            raise F2AWError(f"tensor '{name}': unknown dtype code {code}")
        rank = r.u8(f"rank of '{name}'")
        if rank > MAX_RANK:
            raise F2AWError(f"tensor '{name}': rank {rank} exceeds {MAX_RANK}")
        shape = [r.u64(f"shape of '{name}'") for _ in range(rank)]
        elements = 1
        for d in shape:
            elements *= d  # Python ints do not overflow; compare against the limit instead
            if elements > MAX_ELEMENTS:
                raise F2AWError(f"tensor '{name}': shape {shape} has more than {MAX_ELEMENTS} elements")
        offset = r.u64(f"offset of '{name}'")
        nbytes = r.u64(f"size of '{name}'")
        crc = r.u32(f"checksum of '{name}'")
        dtype_name, dtype = DTYPES[code]
        if nbytes != elements * dtype.itemsize:
            raise F2AWError(f"tensor '{name}': {nbytes} data bytes for {dtype_name} shape {shape} "
                            f"(needs {elements * dtype.itemsize})")
        if offset % ALIGNMENT:
            raise F2AWError(f"tensor '{name}': data offset {offset} is not {ALIGNMENT}-byte aligned")
        entries.append((name, dtype_name, dtype, shape, offset, nbytes, crc))
    if r.offset != header_end:
        raise F2AWError(f"{header_end - r.offset} unexplained bytes at the end of the header")

    data_start = _align(header_end)
    end = data_start
    for name, _, _, _, offset, nbytes, _ in sorted(entries, key=lambda e: e[4]):
        start = data_start + offset
        if start < end:
            raise F2AWError(f"data of tensor '{name}' overlaps the previous tensor")
        end = start + nbytes
        if end > len(data):
            raise F2AWError(f"truncated: data of tensor '{name}' needs {end} bytes, file has {len(data)}")
    file_end = end if entries else header_end
    if file_end != len(data):
        raise F2AWError(f"{len(data) - file_end} trailing bytes after the last tensor")

    tensors: Dict[str, np.ndarray] = {}
    dtypes: Dict[str, str] = {}
    for name, dtype_name, dtype, shape, offset, nbytes, crc in entries:
        raw = data[data_start + offset:data_start + offset + nbytes]
        computed = zlib.crc32(raw) & 0xFFFFFFFF
        if computed != crc:
            raise F2AWError(f"checksum mismatch in tensor '{name}': stored {crc:08x}, computed {computed:08x}")
        values = np.frombuffer(raw, dtype=dtype).astype(np.float32).reshape(shape)
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values.ravel()))[0])
            raise F2AWError(f"tensor '{name}': non-finite value at element {bad}")
        tensors[name] = values
        dtypes[name] = dtype_name
    return config, tensors, dtypes


def read_f2aw(path: str):
    """Reads and verifies a .f2aw file: (config, tensors, dtypes)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise F2AWError(f"cannot read {path}: {e.strerror}") from None
    return parse_f2aw(data)


# --------------------------------------------------------------------------
# Configuration stored in the file, and the layer list of the Swift library

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_F2A = os.path.join(ROOT, "build", "bin", "f2a")

KINDS = ("conv3x3", "upsample", "output")
INPUTS = ("previous", "pooled", "withSkip")


@dataclass(frozen=True)
class Layer:
    """One entry of GeneratorConfig.layers (Sources/F2AModel/GeneratorConfig.swift), as
    `f2a info --layers` prints it: the network is described once, in Swift."""
    name: str               # parameters "<name>.weight" and "<name>.bias"
    kind: str               # conv3x3 | upsample | output
    input: str              # previous | pooled (max-pool 2x2 first) | withSkip (concat the level's skip)
    in_channels: int
    out_channels: int
    level: int              # resolution level of the output, 1 = full size
    padding: int
    weight: Tuple[int, ...]
    bias: Tuple[int, ...]

    @staticmethod
    def from_json(obj) -> "Layer":
        try:
            layer = Layer(name=str(obj["name"]), kind=obj["kind"], input=obj["input"],
                          in_channels=int(obj["in"]), out_channels=int(obj["out"]), level=int(obj["level"]),
                          padding=int(obj["padding"]), weight=tuple(int(d) for d in obj["weight"]),
                          bias=tuple(int(d) for d in obj["bias"]))
        except (KeyError, TypeError, ValueError) as e:
            raise F2AWError(f"f2a info --layers: malformed layer {obj!r} ({type(e).__name__}: {e})") from None
        if layer.kind not in KINDS or layer.input not in INPUTS:
            raise F2AWError(f"f2a info --layers: layer '{layer.name}' has kind '{layer.kind}', "
                            f"input '{layer.input}' (this converter knows {KINDS}, {INPUTS})")
        return layer


@dataclass(frozen=True)
class Config:
    """The file's configuration entries, checked here independently of the Swift reader, and
    (from `load_generator`) the layer list and input multiple that the Swift library derives."""
    width: float = 0.25
    decoder_width: Optional[float] = None   # None: the same as width
    levels: int = 5
    upsample: str = "transpose"     # transpose | unpool
    activation: str = "sigmoid"     # sigmoid | tanh
    formulation: str = "rgb"        # rgb | ratio-log
    description: str = ""
    layers: Tuple[Layer, ...] = ()
    size_multiple: int = 0          # H and W must be multiples of it

    @staticmethod
    def from_file(config: Dict[str, object]) -> "Config":
        def string(key, choices=None):
            if key not in config:
                raise F2AWError(f"config '{key}': missing")
            v = config[key]
            if not isinstance(v, str):
                raise F2AWError(f"config '{key}': expected a string")
            if choices and v not in choices:
                raise F2AWError(f"config '{key}': '{v}' is not one of {', '.join(choices)}")
            return v

        string("architecture", ["unet-vgg16"])
        width = config.get("width")
        if not isinstance(width, float):
            raise F2AWError("config 'width': missing or not a float")
        if not (math.isfinite(width) and 0 < width <= 4):
            raise F2AWError(f"config 'width': {width} is outside (0, 4]")
        levels = config.get("levels")
        if not isinstance(levels, int):
            raise F2AWError("config 'levels': missing or not an integer")
        if not 1 <= levels <= 5:
            raise F2AWError(f"config 'levels': {levels} is outside 1 to 5")
        # Files written before the decoder had its own width are symmetric.
        decoder_width = config.get("decoder_width", width)
        if not isinstance(decoder_width, float):
            raise F2AWError("config 'decoder_width': not a float")
        if not (math.isfinite(decoder_width) and 0 < decoder_width <= 4):
            raise F2AWError(f"config 'decoder_width': {decoder_width} is outside (0, 4]")
        desc = config.get("description", "")
        return Config(width=width, decoder_width=decoder_width, levels=levels,
                      upsample=string("upsample", ["transpose", "unpool"]),
                      activation=string("activation", ["sigmoid", "tanh"]),
                      formulation=string("formulation", ["rgb", "ratio-log"]),
                      description=desc if isinstance(desc, str) else "")


def describe_layers(path: str, f2a: str = DEFAULT_F2A) -> Dict[str, object]:
    """`f2a info --layers PATH` parsed: the configuration the graph needs and the layer list.
    A file the Swift library refuses (e.g. a missing tensor, or unpool with a decoder narrower
    than the encoder) raises F2AWError with f2a's reason."""
    if not os.path.exists(f2a):
        raise F2AWError(f"{f2a} not found: build it (make all) or pass its path (--f2a)")
    r = subprocess.run([f2a, "info", "--layers", path], capture_output=True, text=True)
    if r.returncode != 0:
        reason = r.stderr.strip().removeprefix("Error: ") or f"exit status {r.returncode}"
        raise F2AWError(f"f2a info refused it: {reason}")
    try:
        described = json.loads(r.stdout)
        described["layers"] = tuple(Layer.from_json(obj) for obj in described["layers"])
    except (ValueError, KeyError, TypeError) as e:
        raise F2AWError(f"f2a info --layers printed no layer list ({type(e).__name__}: {e})") from None
    return described


def check_tensors(layers, tensors: Dict[str, np.ndarray]) -> None:
    """The file's tensors are exactly the layers' weights and biases, with their shapes."""
    expected = [(f"{layer.name}.{part}", list(getattr(layer, part))) for layer in layers for part in ("weight", "bias")]
    for key, shape in expected:
        if key not in tensors:
            raise F2AWError(f"missing tensor '{key}' (the layer list expects shape {shape})")
        if list(tensors[key].shape) != shape:
            raise F2AWError(f"tensor '{key}' has shape {list(tensors[key].shape)}, the layer list expects {shape}")
    known = {key for key, _ in expected}
    for key, t in tensors.items():
        if key not in known:
            raise F2AWError(f"unexpected tensor '{key}' with shape {list(t.shape)}")


def load_generator(path: str, f2a: str = DEFAULT_F2A) -> Tuple[Config, Dict[str, np.ndarray]]:
    """Reads a weights file, takes its layer list from `f2a info --layers` and checks the
    tensors against it. The file is read here first, so that a damaged file is reported by
    this reader whatever f2a says."""
    raw_config, tensors, _ = read_f2aw(path)
    config = Config.from_file(raw_config)
    described = describe_layers(path, f2a)
    for key in ("levels", "upsample", "activation", "formulation"):
        if described.get(key) != getattr(config, key):
            raise F2AWError(f"config '{key}': the file says {getattr(config, key)!r}, "
                            f"f2a info --layers says {described.get(key)!r}")
    check_tensors(described["layers"], tensors)
    return replace(config, layers=described["layers"], size_multiple=int(described["size_multiple"])), tensors


# --------------------------------------------------------------------------
# ONNX graph


def build_onnx(config: Config, tensors: Dict[str, np.ndarray], opset: int = 17,
               static_hw: Tuple[int, int] | None = None):
    """The generator as an ONNX ModelProto (see the module docstring), node by node from
    config.layers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if opset < 13:
        raise ValueError("opset must be >= 13 (Clip with tensor bounds, MaxUnpool with output_shape)")
    if not config.layers:
        raise ValueError("config has no layer list: use load_generator")
    nodes, inits = [], []
    made = set()

    def const(name, value):
        # Scalar constant, added on first use so that no initializer is unused.
        if name not in made:
            made.add(name)
            inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def param(name):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(tensors[name], dtype=np.float32), name))
        return name

    def node(op, inputs, name, n_out=1, **attrs):
        outs = [f"{name}_out{i}" if n_out > 1 else f"{name}_out" for i in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs if n_out > 1 else outs[0]

    def weights(layer):
        return [param(f"{layer.name}.weight"), param(f"{layer.name}.bias")]

    def conv(x, layer):
        k = list(layer.weight[2:])
        return node("Conv", [x, *weights(layer)], layer.name, kernel_shape=k, pads=[layer.padding] * 4, strides=[1, 1])

    two = lambda: const("c_two", 2.0)
    one = lambda: const("c_one", 1.0)
    unpool = config.upsample == "unpool"

    # Network input centred on zero: 2F - 1.
    x = node("Sub", [node("Mul", ["flash", two()], "scale"), one()], "center")
    skips, indices = {}, {}   # by level
    for layer in config.layers:
        if layer.input == "pooled":
            b = layer.level - 1
            skips[b] = x
            if unpool:
                # ONNX MaxPool indices are flat over N*C*H*W (PyTorch: per plane);
                # MaxUnpool consumes the same convention, so the pair is consistent.
                x, indices[b] = node("MaxPool", [x], f"pool{b}", n_out=2, kernel_shape=[2, 2], strides=[2, 2])
            else:
                x = node("MaxPool", [x], f"pool{b}", kernel_shape=[2, 2], strides=[2, 2])
        elif layer.input == "withSkip":
            x = node("Concat", [x, skips[layer.level]], f"concat{layer.level}", axis=1)
        if layer.kind == "conv3x3":
            x = node("Relu", [conv(x, layer)], f"{layer.name}.relu")
        elif layer.kind == "upsample" and not unpool:
            k = list(layer.weight[2:])
            y = node("ConvTranspose", [x, *weights(layer)], layer.name, kernel_shape=k, strides=k)
            x = node("Relu", [y], f"{layer.name}.relu")
        elif layer.kind == "upsample":
            # 1x1 conv at the pooled size, then each channel back where its encoder maximum was.
            y = node("Relu", [conv(x, layer)], f"{layer.name}.relu")
            shape = node("Shape", [skips[layer.level]], f"{layer.name}.skip_shape")
            x = node("MaxUnpool", [y, indices[layer.level], shape], f"unpool{layer.level}",
                     kernel_shape=[2, 2], strides=[2, 2])
        else:
            x = conv(x, layer)
            if config.activation == "sigmoid":
                x = node("Sigmoid", [x], f"{layer.name}.sigmoid")
            else:
                x = node("Tanh", [x], f"{layer.name}.tanh")
                x = node("Mul", [node("Add", [x, one()], "tanh_plus1"), const("c_half", 0.5)], "tanh_half")
    if config.formulation == "ratio-log":
        # A = clamp((F + 1) * 2^(2r - 1) - 1, 0, 1), F the unscaled input.
        e = node("Sub", [node("Mul", [x, two()], "ratio_x2"), one()], "ratio_exp")
        g = node("Pow", [two(), e], "ratio_gain")
        a = node("Mul", [node("Add", ["flash", one()], "flash_plus1"), g], "ratio_mul")
        x = node("Clip", [node("Sub", [a, one()], "ratio_minus1"), const("c_zero", 0.0), one()], "ratio_clip")
    nodes.append(helper.make_node("Identity", [x], ["ambient"], name="output"))

    n, h, w = ("N", "H", "W") if static_hw is None else (1, *static_hw)
    graph = helper.make_graph(
        nodes, "flash2ambient",
        [helper.make_tensor_value_info("flash", TensorProto.FLOAT, [n, 3, h, w])],
        [helper.make_tensor_value_info("ambient", TensorProto.FLOAT, [n, 3, h, w])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="flash2ambient f2a_to_onnx.py",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # readable by onnxruntime >= 1.10
    model.doc_string = ("flash2ambient generator (U-Net, VGG-16 encoder). Input 'flash' NCHW RGB in [0,1], "
                        f"H and W multiples of {config.size_multiple}; output 'ambient' NCHW in [0,1].")
    meta = {"width": repr(config.width), "decoder_width": repr(config.width if config.decoder_width is None else config.decoder_width),
            "levels": str(config.levels), "upsample": config.upsample,
            "activation": config.activation, "formulation": config.formulation,
            "size_multiple": str(config.size_multiple), "description": config.description}
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------
# numpy reference (float64), independent of both the Swift engine and ONNX


def _conv(x, w, b, pad):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # n c H W k k
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, c * k * k)
    y = cols @ w.reshape(o, c * k * k).T + b
    return y.reshape(n, h, wd, o).transpose(0, 3, 1, 2)


def _pool(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    arg = np.argmax(win, axis=-1)  # first maximum in row-major window order, like the Swift pool
    out = np.take_along_axis(win, arg[..., None], -1)[..., 0]
    oy, ox = np.meshgrid(np.arange(h // 2), np.arange(w // 2), indexing="ij")
    idx = (2 * oy + arg // 2) * w + 2 * ox + arg % 2  # per-plane flat index (PyTorch convention)
    return out, idx


def _unpool(x, idx, h, w):
    n, c = x.shape[:2]
    y = np.zeros((n, c, h * w), dtype=x.dtype)
    np.put_along_axis(y, idx.reshape(n, c, -1), x.reshape(n, c, -1), axis=-1)
    return y.reshape(n, c, h, w)


def _convt(x, w, b):
    n, c, h, wd = x.shape
    o = w.shape[1]
    y = np.einsum("ncij,coyx->noiyjx", x, w).reshape(n, o, 2 * h, 2 * wd)
    return y + b[None, :, None, None]


def reference_forward(config: Config, tensors: Dict[str, np.ndarray], flash: np.ndarray) -> np.ndarray:
    """Generator.forward in numpy (float64): flash [N,3,H,W] in [0,1] → ambient.

    A reference for the kernels (pooling indices, padding, transposed conv, decode), not for
    the wiring: it walks the same config.layers as build_onnx, whose shapes the file's tensors
    have been checked against."""
    if not config.layers:
        raise ValueError("config has no layer list: use load_generator")
    p = {k: v.astype(np.float64) for k, v in tensors.items()}
    relu = lambda v: np.maximum(v, 0)
    f = flash.astype(np.float64)
    x = 2 * f - 1
    skips, idxs = {}, {}
    for layer in config.layers:
        w, b = p[f"{layer.name}.weight"], p[f"{layer.name}.bias"]
        if layer.input == "pooled":
            skips[layer.level - 1] = x
            x, idxs[layer.level - 1] = _pool(x)
        elif layer.input == "withSkip":
            x = np.concatenate([x, skips[layer.level]], axis=1)
        if layer.kind == "conv3x3":
            x = relu(_conv(x, w, b, layer.padding))
        elif layer.kind == "upsample" and config.upsample == "transpose":
            x = relu(_convt(x, w, b))
        elif layer.kind == "upsample":
            skip = skips[layer.level]
            x = _unpool(relu(_conv(x, w, b, layer.padding)), idxs[layer.level], skip.shape[2], skip.shape[3])
        else:
            x = _conv(x, w, b, layer.padding)
            x = 1 / (1 + np.exp(-x)) if config.activation == "sigmoid" else (np.tanh(x) + 1) / 2
    if config.formulation == "ratio-log":
        x = np.clip((f + 1) * np.exp2(2 * x - 1) - 1, 0, 1)
    return x


# --------------------------------------------------------------------------
# CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Convert a flash2ambient .f2aw weights file to ONNX.")
    ap.add_argument("input", help="weights file (.f2aw)")
    ap.add_argument("output", help="ONNX model to write")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 13; default 17)")
    ap.add_argument("--static", metavar="HxW", help="fix the input size (default: dynamic N, H, W)")
    ap.add_argument("--f2a", default=DEFAULT_F2A,
                    help="the f2a tool that lists the layers (default: build/bin/f2a in this repository)")
    args = ap.parse_args(argv)
    try:
        config, tensors = load_generator(args.input, args.f2a)
    except F2AWError as e:
        print(f"f2a_to_onnx: {args.input}: {e}", file=sys.stderr)
        return 1
    static_hw = None
    if args.static:
        try:
            h, w = (int(v) for v in args.static.lower().split("x"))
        except ValueError:
            ap.error("--static expects HxW, e.g. 512x768")
        m = config.size_multiple
        if h <= 0 or w <= 0 or h % m or w % m:
            ap.error(f"--static {h}x{w}: both must be positive multiples of {m}")
        static_hw = (h, w)
    model = build_onnx(config, tensors, opset=args.opset, static_hw=static_hw)
    import onnx
    onnx.save(model, args.output)
    n_params = sum(int(np.prod(t.shape)) for t in tensors.values())
    print(f"wrote {args.output}: width {config.width} levels {config.levels} upsample {config.upsample} "
          f"activation {config.activation} formulation {config.formulation}, {n_params} parameters, "
          f"opset {args.opset}, input multiple of {config.size_multiple}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
