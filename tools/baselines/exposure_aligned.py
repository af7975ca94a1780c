#!/usr/bin/env python3
"""Exposure-aligned scores of a model's outputs: PSNR / SSIM against the
ambient image after each image (the flash image and the model's output) is
given the one exposure gain, in linear light, that maximises its PSNR. On
faid32 the ambient photo's exposure is not predictable from the flash image
(exposure_predictability.py), so this separates what a model does to colour
and light from the exposure it could not know.

    build/bin/f2a eval --pairs PAIRS --out OUT
    python tools/baselines/exposure_aligned.py PAIRS OUT

PAIRS holds flash/NAME.png and ambient/NAME.png; OUT the outputs NAME.png that
`f2a eval` wrote. Needs numpy, pillow, scikit-image.
"""
import os
import sys

import numpy as np

from faid import best_gain, lin, load, psnr, srgb, ssim_gray


def aligned(x, a):
    return srgb(lin(x) * 2 ** best_gain(x, a))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pairs, outputs = sys.argv[1:]
    names = sorted(n[:-4] for n in os.listdir(outputs) if n.endswith(".png"))
    if not names:
        sys.exit(f"no NAME.png outputs in {outputs}")
    print(f"{'name':24s} {'identity aligned':>18s} {'model aligned':>18s}")
    rows = []
    for n in names:
        f = load(os.path.join(pairs, "flash", n + ".png"), None)
        a = load(os.path.join(pairs, "ambient", n + ".png"), None)
        o = load(os.path.join(outputs, n + ".png"), None)
        fa, oa = aligned(f, a), aligned(o, a)
        rows.append((psnr(fa, a), ssim_gray(fa, a), psnr(oa, a), ssim_gray(oa, a)))
        print(f"{n:24s} {rows[-1][0]:9.2f} {rows[-1][1]:7.4f}  {rows[-1][2]:9.2f} {rows[-1][3]:7.4f}")
    m = np.mean(rows, axis=0)
    print(f"{'mean (' + str(len(rows)) + ' pairs)':24s} {m[0]:9.2f} {m[1]:7.4f}  {m[2]:9.2f} {m[3]:7.4f}")


if __name__ == "__main__":
    main()
