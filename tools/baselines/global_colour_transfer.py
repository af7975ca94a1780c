#!/usr/bin/env python3
"""Non-learned baseline for the model card: one global affine colour transform
(3x3 matrix + offset, in sRGB values) fitted by least squares from flash to
ambient on the faid32 training split, evaluated on the fixed validation split
with the same metrics as `f2a eval` (PSNR on 8-bit RGB; SSIM of the scikit-image
grayscale with data_range 1).

    python tools/baselines/global_colour_transfer.py [FAID32_DIR] [--size WxH]

Needs numpy, pillow, scikit-image. --size downsamples the pairs first (area
average), e.g. 320x240 for the seed's working resolution.
"""
import numpy as np

from faid import VALIDATION, arguments, load_pairs, psnr, ssim_gray


def main():
    root, size = arguments()
    pairs = load_pairs(root, size)
    xs = [f.reshape(-1, 3) for n, (f, a) in pairs.items() if n not in VALIDATION]
    ys = [a.reshape(-1, 3) for n, (f, a) in pairs.items() if n not in VALIDATION]
    x = np.concatenate(xs)
    m = np.linalg.lstsq(np.c_[x, np.ones(len(x))], np.concatenate(ys), rcond=None)[0]
    print("fitted transform (rows: R G B weights, offset):")
    print(np.round(m, 4))
    print(f"{'name':24s} {'identity':>16s} {'colour transfer':>16s}")
    rows = []
    for n in VALIDATION:
        f, a = pairs[n]
        o = (np.c_[f.reshape(-1, 3), np.ones(f.shape[0] * f.shape[1])] @ m).reshape(f.shape)
        r = (psnr(f, a), ssim_gray(f, a), psnr(o, a), ssim_gray(o, a))
        rows.append(r)
        print(f"{n:24s} {r[0]:7.2f} {r[1]:7.4f}  {r[2]:7.2f} {r[3]:7.4f}")
    mean = np.mean(rows, axis=0)
    print(f"{'mean':24s} {mean[0]:7.2f} {mean[1]:7.4f}  {mean[2]:7.2f} {mean[3]:7.4f}")


if __name__ == "__main__":
    main()
