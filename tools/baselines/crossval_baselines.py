#!/usr/bin/env python3
"""The non-learned baselines of the model card, cross-validated on the same
folds as tools/crossval.sh: every pair is held out once, and whatever a
baseline fits is fitted on the other folds only.

  identity                  the flash image itself
  colour transfer           one global 3x3 matrix + offset in sRGB values,
                            least squares over the training pairs
  illumination equalisation Retinex-style: divide the image, in linear light,
                            by its blurred log luminance raised to alpha
                            (gain = exp(alpha * (mean(B) - B)), B = Gaussian
                            blur of log luminance, sigma a fraction of the long
                            side); sigma and alpha chosen on the training pairs
                            by mean EA-PSNR at 320 px

    python tools/baselines/crossval_baselines.py [DIR ...] [--k 4] [--as-shot DIR] [--also DIR]

DIRs hold flash/NAME.png + ambient/NAME.png (default: faid32 and
faid-extra20 under ../shared/data). Fold k holds out the pairs whose index in
name order over all DIRs is k mod K. Scores (PSNR, SSIM gray, EA-PSNR) at 320
px on the long side and at the native size. --as-shot DIR also scores the
baselines, with each fold's fitted parameters, on the as-shot composites of
that fold's held-out pairs (DIR written by `f2a-train as-shot`); --also DIR
scores DIR (e.g. asshot4) with parameters fitted on all pairs. Needs numpy,
pillow, scipy, scikit-image.
"""
import argparse
import os

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from faid import ea_psnr, lin, psnr, srgb, ssim_gray

SIGMAS = [0.02, 0.05, 0.1, 0.2]
ALPHAS = [0.1, 0.2, 0.3, 0.5, 0.7]


def load(path, long_side):
    im = Image.open(path).convert("RGB")
    if long_side:
        s = long_side / max(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.BOX)
    return np.asarray(im, dtype=np.float64) / 255


def pairs_of(dirs):
    out = {}
    for d in dirs:
        for n in sorted(os.listdir(os.path.join(d, "flash"))):
            if n.endswith(".png"):
                out[n[:-4]] = (os.path.join(d, "flash", n), os.path.join(d, "ambient", n))
    return dict(sorted(out.items()))


def equalise(f, sigma, alpha):
    fl = lin(f)
    log_l = np.log(fl @ [0.2126, 0.7152, 0.0722] + 1e-3)
    b = gaussian_filter(log_l, sigma * max(log_l.shape), mode="reflect")
    return srgb(fl * np.exp(alpha * (b.mean() - b))[..., None])


def fit_colour(train):
    x = np.concatenate([f.reshape(-1, 3) for f, _ in train])
    y = np.concatenate([a.reshape(-1, 3) for _, a in train])
    return np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]


def colour(f, m):
    return (np.c_[f.reshape(-1, 3), np.ones(f.shape[0] * f.shape[1])] @ m).reshape(f.shape)


def scores(o, a):
    return psnr(o, a), ssim_gray(o, a), ea_psnr(o, a)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="*")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--as-shot")
    ap.add_argument("--also", help="pair directory scored with parameters fitted on all pairs (e.g. asshot4)")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = args.dirs or [os.path.join(here, "../../../shared/data", d) for d in ("faid32", "faid-extra20")]
    files = pairs_of(dirs)
    names = list(files)
    small = {n: (load(f, 320), load(a, 320)) for n, (f, a) in files.items()}
    rows = {"320": {}, "native": {}, "as-shot": {}, "also": {}}
    for fold in range(args.k):
        held = [n for i, n in enumerate(names) if i % args.k == fold]
        train = [small[n] for n in names if n not in held]
        m = fit_colour(train)
        best = max(((s, al) for s in SIGMAS for al in ALPHAS),
                   key=lambda p: np.mean([ea_psnr(equalise(f, *p), a) for f, a in train]))
        print(f"fold {fold}: equalisation sigma {best[0]} alpha {best[1]}", flush=True)
        sets = [("320", lambda n: small[n]), ("native", lambda n: (load(files[n][0], 0), load(files[n][1], 0)))]
        if args.as_shot:
            sets.append(("as-shot", lambda n: (load(os.path.join(args.as_shot, "flash", n + ".png"), 0),
                                               load(os.path.join(args.as_shot, "ambient", n + ".png"), 0))))
        for size, get in sets:
            for n in held:
                f, a = get(n)
                rows[size][n] = scores(f, a) + scores(colour(f, m), a) + scores(equalise(f, *best), a)
    if args.also:
        train = list(small.values())
        m = fit_colour(train)
        best = max(((s, al) for s in SIGMAS for al in ALPHAS),
                   key=lambda p: np.mean([ea_psnr(equalise(f, *p), a) for f, a in train]))
        print(f"all pairs: equalisation sigma {best[0]} alpha {best[1]}; scoring {args.also}", flush=True)
        for n, (fp, ap_) in pairs_of([args.also]).items():
            f, a = load(fp, 0), load(ap_, 0)
            rows["also"][n] = scores(f, a) + scores(colour(f, m), a) + scores(equalise(f, *best), a)
    for size, r in rows.items():
        if not r:
            continue
        v = np.array(list(r.values()))
        mean = v.mean(axis=0)
        print(f"== {len(r)} held-out pairs, {size}: PSNR / SSIM / EA-PSNR (better than identity in PSNR, EA-PSNR)")
        for i, label in enumerate(["identity", "colour transfer", "illumination equalisation"]):
            better = "" if i == 0 else (f"  ({int((v[:, 3 * i] > v[:, 0]).sum())}, "
                                        f"{int((v[:, 3 * i + 2] > v[:, 2]).sum())} of {len(r)})")
            print(f"{label:26s} {mean[3 * i]:6.2f} dB / {mean[3 * i + 1]:.4f} / {mean[3 * i + 2]:6.2f} dB{better}")


if __name__ == "__main__":
    main()
