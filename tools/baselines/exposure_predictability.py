#!/usr/bin/env python3
"""Can the flash image tell how bright the ambient photo is? The oracle ceiling
(oracle_ceiling.py) shows that one exposure gain fitted to the answer is worth
most of the flash -> ambient gap on faid32. This script asks whether that gain
is predictable *blind*, from the flash image alone.

Per pair, the target is the exposure gain (log2, stops, one gain for all
channels in linear light) that maximises PSNR against the ambient image. It is
regressed on global statistics of the flash image (log mean, median and
percentiles of linear luminance, clipped and black fractions, centre/edge
ratio: what a photographer's meter or a network's bottleneck could see) with
standardised ridge regression:

  - leave-one-out over the 26 training pairs, for each ridge strength, against
    predicting the training mean (a constant);
  - fitted on the training split, applied to the validation split: PSNR / SSIM
    of flash x predicted gain, against identity, the training-mean gain and the
    oracle gain.

    python tools/baselines/exposure_predictability.py [FAID32_DIR] [--size WxH]

Needs numpy, pillow, scikit-image. The model card quotes its output (320x240).
"""
import numpy as np

from faid import VALIDATION, arguments, best_gain, lin, load_pairs, psnr, srgb, ssim_gray

ALPHAS = [0.1, 1, 10, 100]


def luminance(x):
    return lin(x) @ [0.2126, 0.7152, 0.0722]


def features(f):
    y = luminance(f)
    h, w = y.shape
    centre = y[h // 4:3 * h // 4, w // 4:3 * w // 4]
    edge = (y.sum() - centre.sum()) / (y.size - centre.size)
    eps = 1e-4
    return [np.log2(y.mean() + eps), np.log2(np.median(y) + eps),
            np.log2(np.percentile(y, 10) + eps), np.log2(np.percentile(y, 90) + eps),
            (f.max(-1) > 0.98).mean(), (y < 0.01).mean(), np.log2((centre.mean() + eps) / (edge + eps))]


def ridge(x, y, alpha):
    """Standardised ridge regression; returns a predictor."""
    mu, sd = x.mean(0), x.std(0) + 1e-12
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda q: (q - mu) / sd @ w + y.mean()


def main():
    root, size = arguments()
    pairs = load_pairs(root, size)
    train = [n for n in pairs if n not in VALIDATION]
    x = {n: np.array(features(f)) for n, (f, a) in pairs.items()}
    g = {n: best_gain(f, a) for n, (f, a) in pairs.items()}

    xt, gt = np.array([x[n] for n in train]), np.array([g[n] for n in train])
    print(f"PSNR-optimal exposure gain, training split: mean {gt.mean():+.2f} stops, "
          f"sd {gt.std():.2f}, range {gt.min():+.2f} .. {gt.max():+.2f}")
    print("validation: " + ", ".join(f"{n} {g[n]:+.2f}" for n in VALIDATION))
    print("\nleave-one-out over the training split, RMSE of the predicted gain (stops):")
    const = np.sqrt(np.mean([(gt[i] - np.delete(gt, i).mean()) ** 2 for i in range(len(gt))]))
    print(f"  constant (mean of the others)  {const:.3f}")
    loo = {}
    for alpha in ALPHAS:
        pred = [ridge(np.delete(xt, i, 0), np.delete(gt, i), alpha)(xt[i]) for i in range(len(gt))]
        loo[alpha] = np.sqrt(np.mean((np.array(pred) - gt) ** 2))
        print(f"  ridge, alpha {alpha:<5}           {loo[alpha]:.3f}  (corr {np.corrcoef(pred, gt)[0, 1]:+.2f})")

    alpha = min(loo, key=loo.get)
    predict = ridge(xt, gt, alpha)
    print(f"\nvalidation split (ridge alpha {alpha}, fitted on all training pairs): mean PSNR / SSIM")
    rows = {"identity": [], "training-mean gain": [], "predicted gain": [], "oracle gain": []}
    for n in VALIDATION:
        f, a = pairs[n]
        for name, stops in (("identity", 0.0), ("training-mean gain", gt.mean()),
                            ("predicted gain", predict(x[n])), ("oracle gain", g[n])):
            o = srgb(lin(f) * 2 ** stops)
            rows[name].append((psnr(o, a), ssim_gray(o, a)))
    for name, r in rows.items():
        p, s = np.mean(r, axis=0)
        print(f"  {name:<20} {p:6.2f} dB / {s:.3f}")


if __name__ == "__main__":
    main()
