#!/usr/bin/env python3
"""How much of the flash -> ambient gap on faid32 is global, and how much of
that is predictable? Prints, per split, mean PSNR (8-bit RGB) and SSIM (grayscale),
as `f2a eval` computes them, of

  identity            the flash image itself
  oracle exposure     flash x one gain in linear light, the gain fitted to the
                      ambient image (needs the answer: an upper bound)
  oracle colour       flash x per-channel gains whose mean log gain is 0
                      (white balance only, exposure kept), fitted to the answer
  oracle gains        per-channel linear gains fitted to the answer
  oracle affine       3x3 matrix + offset in sRGB fitted to the answer
  train tone curve    per-channel 64-bin tone curve fitted on the training
                      split (blind), at full and half strength

    python tools/baselines/oracle_ceiling.py [FAID32_DIR] [--size WxH]

Needs numpy, pillow and scikit-image. The model card quotes its output (320x240).
"""
import numpy as np

from faid import VALIDATION, arguments, lin, load_pairs, psnr, srgb, ssim_gray


BINS = 64


def fit_curve(pairs):
    num = np.zeros((3, BINS))
    den = np.zeros((3, BINS))
    for f, a in pairs:
        for c in range(3):
            idx = np.minimum((f[..., c] * BINS).astype(int), BINS - 1).ravel()
            num[c] += np.bincount(idx, a[..., c].ravel(), BINS)
            den[c] += np.bincount(idx, None, BINS)
    return np.where(den > 0, num / np.maximum(den, 1), (np.arange(BINS) + 0.5) / BINS)


def apply_curve(curve, f):
    out = np.empty_like(f)
    for c in range(3):
        x = f[..., c] * BINS - 0.5
        i0 = np.clip(np.floor(x).astype(int), 0, BINS - 1)
        i1 = np.clip(i0 + 1, 0, BINS - 1)
        t = np.clip(x - i0, 0, 1)
        out[..., c] = curve[c][i0] * (1 - t) + curve[c][i1] * t
    return out


def candidates(f, a, curve):
    """The corrected images, in the order of COLUMNS."""
    fl, al = lin(f), lin(a)
    g = al.mean() / fl.mean()
    gc = al.mean((0, 1)) / fl.mean((0, 1))
    colour = np.exp(np.log(gc) - np.log(gc).mean())
    x = np.concatenate([f.reshape(-1, 3), np.ones((f.shape[0] * f.shape[1], 1))], 1)
    m, *_ = np.linalg.lstsq(x, a.reshape(-1, 3), rcond=None)
    t = apply_curve(curve, f)
    return [f, srgb(fl * g), srgb(fl * colour), srgb(fl * gc), (x @ m).reshape(a.shape), t,
            0.5 * f + 0.5 * t]


COLUMNS = ["identity", "oracle exposure", "oracle colour", "oracle gains", "oracle affine",
           "train tone curve", "tone curve x0.5"]


def main():
    root, size = arguments()
    pairs = load_pairs(root, size)
    train = [n for n in pairs if n not in VALIDATION]
    curve = fit_curve([pairs[n] for n in train])
    print("mean PSNR (dB) / SSIM per split")
    print("split       " + " | ".join(COLUMNS))
    for split, members in (("training", train), ("validation", VALIDATION)):
        s = np.array([[(psnr(o, pairs[n][1]), ssim_gray(o, pairs[n][1]))
                       for o in candidates(*pairs[n], curve)] for n in members]).mean(0)
        print(f"{split:<11} " + " | ".join(f"{p:.2f} / {q:.3f}" for p, q in s))


if __name__ == "__main__":
    main()
