"""Shared by the baseline scripts: the fixed faid32 validation split
(data/faid32-split.md), pair loading, and PSNR and SSIM as `f2a eval` computes them."""
import os
import sys

import numpy as np
from PIL import Image

VALIDATION = ["Objects_054", "People_220", "Plants_063", "Rooms_707", "Shelves_138", "Toys_224"]


def load(path, size):
    """sRGB values in [0, 1]; `size` (W, H) for landscape, area-averaged, or None."""
    im = Image.open(path).convert("RGB")
    if size:
        w, h = size if im.width >= im.height else (size[1], size[0])
        im = im.resize((w, h), Image.BOX)
    return np.asarray(im, dtype=np.float64) / 255


def load_pairs(root, size):
    """{NAME: (flash, ambient)} for every pair under root, in name order."""
    names = sorted(n[:-4] for n in os.listdir(os.path.join(root, "flash")) if n.endswith(".png"))
    return {n: (load(os.path.join(root, "flash", n + ".png"), size),
                load(os.path.join(root, "ambient", n + ".png"), size)) for n in names}


def lin(x):
    """sRGB values to linear light."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def srgb(x):
    """Linear light to sRGB values, clipped to [0, 1]."""
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def psnr(a, b):
    """PSNR in dB on 8-bit RGB."""
    a = np.round(np.clip(a, 0, 1) * 255)
    b = np.round(np.clip(b, 0, 1) * 255)
    return 10 * np.log10(255 ** 2 / ((a - b) ** 2).mean())


def best_gain(f, a):
    """The exposure gain, in stops, one for all channels in linear light, that
    maximises the PSNR of f against a (searched from -3 to +2 in 1/40 stop)."""
    fl = lin(f)
    stops = np.linspace(-3, 2, 201)
    return stops[int(np.argmax([psnr(srgb(fl * 2 ** g), a) for g in stops]))]


def ea_psnr(x, a):
    """Exposure-aligned PSNR, as `f2a eval` prints it: x rounded to 8 bits,
    then given the linear-light gain (-3 to +2 stops in 1/40 stop) that
    maximises its 8-bit PSNR against a. Through a joint histogram of the
    (x, a) 8-bit codes, so each of the 201 trials costs 65,536 operations."""
    xq = np.round(np.clip(x, 0, 1) * 255).astype(np.int64).ravel()
    aq = np.round(np.clip(a, 0, 1) * 255).astype(np.int64).ravel()
    joint = np.bincount(xq * 256 + aq, minlength=65536).reshape(256, 256)
    codes = np.arange(256) / 255
    best = -np.inf
    for stops in np.linspace(-3, 2, 201):
        y = np.floor(srgb(lin(codes) * 2 ** stops) * 255 + 0.5)
        mse = (joint * (y[:, None] - np.arange(256)[None, :]) ** 2).sum() / xq.size
        best = max(best, np.inf if mse == 0 else 10 * np.log10(255 ** 2 / mse))
    return best


def ssim_gray(a, b):
    """SSIM as `f2a eval` computes it: scikit-image's default window on the
    8-bit-quantised grayscale (Rec. 709 weights), data_range 1. Needs scikit-image."""
    from skimage.metrics import structural_similarity

    def gray(x):
        return (np.round(np.clip(x, 0, 1) * 255) / 255) @ [0.2125, 0.7154, 0.0721]

    return structural_similarity(gray(a), gray(b), data_range=1)


def arguments():
    """(data directory, size or None) from `[FAID32_DIR] [--size WxH | --size=WxH]`."""
    argv = sys.argv[1:]
    size, rest, i = None, [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--size"):
            value = a.split("=", 1)[1] if "=" in a else argv[i + 1]
            size = tuple(int(v) for v in value.split("x"))
            i += 1 if "=" in a else 2
            continue
        rest.append(a)
        i += 1
    root = rest[0] if rest else os.path.join(os.path.dirname(__file__), "../../../shared/data/faid32")
    return root, size
