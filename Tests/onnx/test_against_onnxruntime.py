#!/usr/bin/env python3
"""Swift engine (through the C ABI) vs onnxruntime (through tools/onnx/f2a_to_onnx.py).

    python Tests/onnx/test_against_onnxruntime.py [BUILD_DIR]     (default: build)

Needs BUILD_DIR/bin/f2a and BUILD_DIR/lib/libflash2ambient.so (`make all`) and
numpy, onnx, onnxruntime (tools/requirements.txt). Run by `make test-onnx`.

For each case: random weights from `f2a init`, converted to ONNX; a random
image run (a) through f2a_apply_f32 with padded row strides and default
params (strength 1), and (b) padded in numpy with the library's centred
reflect padding, through onnxruntime, and cropped back. The two must agree to
MAX_DIFF. The numpy float64 reference of the converter checks the ONNX
graph independently (column ref-ort). A few C-ABI and reader checks follow,
and checks of the layer list the converter takes from `f2a info --layers`.
Prints a table and a final line "N passed, M failed"; exits 1 on any failure.
"""

import ctypes
import dataclasses
import os
import subprocess
import sys
import tempfile
import time

# One thread each for OpenBLAS (inside the library) and onnxruntime: the
# test is small and the machine may be shared.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "onnx"))
import f2a_to_onnx  # noqa: E402

MAX_DIFF = 1e-4
F2A_OK, F2A_ERR_IO, F2A_ERR_FORMAT = 0, 2, 3

# (width, upsample, activation, formulation, levels, f16, seed, sizes as (width, height))
SIZES = [(64, 48), (37, 21)]
CASES = []
for width in (0.25, 0.125):
    for upsample in ("transpose", "unpool"):
        CASES.append((width, upsample, "sigmoid", "rgb", 5, False, 11, SIZES))
CASES += [
    (0.25, "transpose", "tanh", "rgb", 5, False, 12, SIZES),
    (0.25, "unpool", "sigmoid", "ratio-log", 5, False, 13, SIZES),
    # Extras: pads larger than the image (periodic reflection), fewer levels, f16 storage.
    (0.125, "unpool", "tanh", "ratio-log", 3, False, 14, [(5, 3), (30, 17)]),
    (0.25, "transpose", "sigmoid", "rgb", 5, True, 15, [(40, 40), (5, 3), (1, 2)]),
    # Channel counts that are not multiples of 8 (19, 38, 77, 154 / 6, 13, 26) and
    # row widths that are not multiples of 8: remainder paths of vectorised kernels.
    (0.3, "transpose", "sigmoid", "rgb", 5, False, 16, [(37, 21), (70, 33)]),
    (0.1, "unpool", "sigmoid", "rgb", 3, False, 17, [(13, 7), (22, 9)]),
    (0.3, "transpose", "tanh", "rgb", 2, False, 18, [(13, 7), (3, 11)]),
    (0.5, "unpool", "sigmoid", "ratio-log", 1, False, 20, [(7, 5)]),  # no pooling, no decoder
    # A wider encoder than decoder (encoder width / decoder width), as a pretrained VGG-16 with a narrow decoder.
    ((0.25, 0.0625), "transpose", "sigmoid", "ratio-log", 5, False, 21, [(64, 48), (37, 21)]),
    ((0.125, 0.3), "transpose", "tanh", "rgb", 4, True, 22, [(40, 24)]),
    # A larger image (several row bands / tiles in the engine's kernels).
    (0.125, "unpool", "sigmoid", "rgb", 5, False, 19, [(203, 150)]),
]


# --------------------------------------------------------------------------
# Library padding, reproduced


def reflect_index(i, n):
    """Sources/F2AModel/ImageApply.swift reflect(): numpy 'reflect', extended periodically."""
    i = np.asarray(i)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    j = np.mod(i, period)
    return np.where(j < n, j, period - j)


def pad_centred(img, multiple):
    """HxWx3 → (1x3xPHxPW, top, left), as Generator.padded."""
    h, w = img.shape[:2]
    ph = -(-h // multiple) * multiple
    pw = -(-w // multiple) * multiple
    top, left = (ph - h) // 2, (pw - w) // 2
    rows = reflect_index(np.arange(ph) - top, h)
    cols = reflect_index(np.arange(pw) - left, w)
    padded = img[rows][:, cols]
    if top < h and ph - h - top < h and left < w and pw - w - left < w:
        # Within one reflection this is exactly numpy's 'reflect' mode.
        ref = np.pad(img, ((top, ph - h - top), (left, pw - w - left), (0, 0)), mode="reflect")
        assert np.array_equal(ref, padded), "reflect_index disagrees with np.pad(mode='reflect')"
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None]), top, left


# --------------------------------------------------------------------------
# C ABI


class Params(ctypes.Structure):
    """f2a_params (flash2ambient.h), field for field."""
    _fields_ = [("struct_size", ctypes.c_size_t), ("strength", ctypes.c_float), ("progress", ctypes.c_void_p),
                ("progress_user_data", ctypes.c_void_p), ("mode", ctypes.c_int),
                ("working_size", ctypes.c_int32), ("tile_size", ctypes.c_int32)]


F2A_MODE_FULL = 1


class Lib:
    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)
        lib.f2a_default_params.restype = Params
        lib.f2a_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.f2a_model_load.restype = ctypes.c_int
        lib.f2a_model_free.argtypes = [ctypes.c_void_p]
        lib.f2a_model_free.restype = None
        lib.f2a_last_error.argtypes = []
        lib.f2a_last_error.restype = ctypes.c_char_p
        lib.f2a_version.restype = ctypes.c_char_p
        fp = ctypes.POINTER(ctypes.c_float)
        lib.f2a_apply_f32.argtypes = [ctypes.c_void_p, fp, ctypes.c_size_t, fp, ctypes.c_size_t,
                                      ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(Params)]
        lib.f2a_apply_f32.restype = ctypes.c_int
        # The raw network output is what onnxruntime computes: full mode (the default, auto,
        # is guided, which re-fits the output with a guided filter).
        self.full = lib.f2a_default_params()
        self.full.mode = F2A_MODE_FULL

    def last_error(self):
        return (self.lib.f2a_last_error() or b"").decode("utf-8", "replace")

    def load(self, path):
        """(status, model handle or None, message)."""
        handle = ctypes.c_void_p()
        status = self.lib.f2a_model_load(path.encode(), ctypes.byref(handle))
        return status, handle.value, "" if status == F2A_OK else self.last_error()

    def apply(self, model, img):
        """HxWx3 float32 through f2a_apply_f32 with padded rows on both sides."""
        h, w = img.shape[:2]
        in_floats, out_floats = 3 * w + 5, 3 * w + 2  # strides that are not width*3
        src = np.full((h, in_floats), np.nan, dtype=np.float32)
        src[:, :3 * w] = img.reshape(h, 3 * w)
        dst = np.full((h, out_floats), -7.0, dtype=np.float32)
        fp = ctypes.POINTER(ctypes.c_float)
        status = self.lib.f2a_apply_f32(model, src.ctypes.data_as(fp), in_floats * 4,
                                        dst.ctypes.data_as(fp), out_floats * 4, w, h, ctypes.byref(self.full))
        if status != F2A_OK:
            raise RuntimeError(f"f2a_apply_f32 returned {status}: {self.last_error()}")
        if not np.all(dst[:, 3 * w:] == -7.0):
            raise RuntimeError("f2a_apply_f32 wrote past the row width into the stride padding")
        return dst[:, :3 * w].reshape(h, w, 3)


# --------------------------------------------------------------------------
# The layer list from `f2a info --layers` against the file's tensors


def layer_checks(tmp, good, f2a, record):
    """The converter takes the network's layers from f2a and holds the file's tensors to them."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "import_vgg"))
    from f2aw_writer import serialize

    config, tensors = f2a_to_onnx.load_generator(good, f2a)
    names = [layer.name for layer in config.layers]
    ok = (names[0] == "enc1.conv1" and names[-1] == "final" and len(tensors) == 2 * len(names)
          and {layer.kind for layer in config.layers} == {"conv3x3", "upsample", "output"})
    record(ok)
    print(f"layer list from f2a info --layers: {len(names)} layers, {names[0]} ... {names[-1]}  "
          f"{'ok' if ok else 'FAIL'}")

    def refused(label, run, want):
        try:
            run()
            msg = None
        except f2a_to_onnx.F2AWError as e:
            msg = str(e)
        ok = msg is not None and all(w in msg for w in want)
        record(ok)
        print(f"{label}: {msg!r:.110}  {'ok' if ok else 'FAIL'}")

    # A layer list that disagrees with the file (as if f2a and the file were of different
    # versions): the error names the tensor and both shapes.
    first = config.layers[0]
    wrong = (dataclasses.replace(first, weight=(first.out_channels + 1, *first.weight[1:])),) + config.layers[1:]
    refused("tensor shape against the layer list", lambda: f2a_to_onnx.check_tensors(wrong, tensors),
            ["enc1.conv1.weight", str(list(first.weight)), str([first.out_channels + 1, *first.weight[1:]])])
    # A file that is well formed but that the Swift library refuses: f2a's reason comes through.
    raw_config, raw_tensors, _ = f2a_to_onnx.read_f2aw(good)
    missing = os.path.join(tmp, "no-final-bias.f2aw")
    with open(missing, "wb") as f:
        f.write(serialize(list(raw_config.items()), [(k, v) for k, v in raw_tensors.items() if k != "final.bias"]))
    refused("tensor missing (f2a info refuses)", lambda: f2a_to_onnx.load_generator(missing, f2a),
            ["f2a info", "final.bias"])
    refused("no f2a", lambda: f2a_to_onnx.load_generator(good, os.path.join(tmp, "no-such-f2a")), ["--f2a"])


# --------------------------------------------------------------------------


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    f2a = os.path.join(build, "bin", "f2a")
    libpath = os.path.abspath(os.path.join(build, "lib", "libflash2ambient.so"))
    for p in (f2a, libpath):
        if not os.path.exists(p):
            print(f"missing {p}: run `make all` first", file=sys.stderr)
            return 2
    import onnxruntime as ort

    lib = Lib(libpath)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    print(f"libflash2ambient {lib.lib.f2a_version().decode()}, onnxruntime {ort.__version__}, "
          f"numpy {np.__version__}, tolerance {MAX_DIFF:g}")

    passed, failed = 0, 0

    def record(ok):
        nonlocal passed, failed
        passed += ok
        failed += not ok

    header = (f"{'case':<52} {'size':>7} {'padded':>7} {'swift-ort':>10} {'ref-ort':>10} {'swift-ref':>10}  result")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="f2a-onnx-") as tmp:
        for ci, (width, upsample, activation, formulation, levels, f16, seed, sizes) in enumerate(CASES):
            widths = width if isinstance(width, tuple) else (width, width)
            name = (f"w{widths[0]}" + (f"/{widths[1]}" if widths[1] != widths[0] else "")
                    + f" {upsample} {activation} {formulation} L{levels}" + (" f16" if f16 else ""))
            weights = os.path.join(tmp, f"case{ci}.f2aw")
            onnx_path = os.path.join(tmp, f"case{ci}.onnx")
            cmd = [f2a, "init", weights, "--width", str(widths[0]), "--decoder-width", str(widths[1]), "--upsample", upsample,
                   "--activation", activation, "--formulation", formulation,
                   "--levels", str(levels), "--seed", str(seed)] + (["--f16"] if f16 else [])
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            # Convert through the CLI once, through the module otherwise.
            if ci == 0:
                subprocess.run([sys.executable, os.path.join(ROOT, "tools", "onnx", "f2a_to_onnx.py"),
                                weights, onnx_path, "--f2a", f2a], check=True, stdout=subprocess.DEVNULL)
                config, tensors = f2a_to_onnx.load_generator(weights, f2a)
            else:
                config, tensors = f2a_to_onnx.load_generator(weights, f2a)
                import onnx
                onnx.save(f2a_to_onnx.build_onnx(config, tensors), onnx_path)
            session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
            status, model, msg = lib.load(weights)
            if status != F2A_OK:
                print(f"{name:<52} f2a_model_load failed ({status}): {msg}")
                record(False)
                continue
            try:
                for si, (w, h) in enumerate(sizes):
                    rng = np.random.default_rng(1000 * ci + si)
                    img = rng.random((h, w, 3), dtype=np.float32)
                    t0 = time.time()
                    swift = lib.apply(model, img)
                    padded, top, left = pad_centred(img, config.size_multiple)
                    full = session.run(["ambient"], {"flash": padded})[0]
                    ort_out = full[0, :, top:top + h, left:left + w].transpose(1, 2, 0)
                    ref_full = f2a_to_onnx.reference_forward(config, tensors, padded)
                    ref_out = ref_full[0, :, top:top + h, left:left + w].transpose(1, 2, 0)
                    d_swift = float(np.max(np.abs(swift - ort_out)))
                    d_ref = float(np.max(np.abs(ref_full - full)))
                    d_swift_ref = float(np.max(np.abs(swift - ref_out)))
                    ok = (np.all(np.isfinite(swift)) and d_swift <= MAX_DIFF and d_ref <= MAX_DIFF
                          and swift.min() >= 0 and swift.max() <= 1)
                    record(ok)
                    print(f"{name:<52} {w:>3}x{h:<3} {padded.shape[3]:>3}x{padded.shape[2]:<3} "
                          f"{d_swift:>10.2e} {d_ref:>10.2e} {d_swift_ref:>10.2e}  "
                          f"{'ok' if ok else 'FAIL'} ({time.time() - t0:.1f}s)")
            finally:
                lib.lib.f2a_model_free(model)

        # ---- the ONNX model with a batch of 2 (MaxPool indices in ONNX are flat over
        # N*C*H*W, not per plane as in PyTorch and the Swift engine): vs the reference
        print()
        for ci in (1, 3):  # the unpool cases at widths 0.25 and 0.125
            config, tensors = f2a_to_onnx.load_generator(os.path.join(tmp, f"case{ci}.f2aw"), f2a)
            session = ort.InferenceSession(os.path.join(tmp, f"case{ci}.onnx"), opts,
                                           providers=["CPUExecutionProvider"])
            x = np.random.default_rng(77).random((2, 3, 32, 48), dtype=np.float32)
            d = float(np.max(np.abs(session.run(["ambient"], {"flash": x})[0]
                                    - f2a_to_onnx.reference_forward(config, tensors, x))))
            ok = d <= MAX_DIFF
            record(ok)
            print(f"onnx batch N=2 w{config.width} {config.upsample} 48x32: max |ort-ref| {d:.2e}  "
                  f"{'ok' if ok else 'FAIL'}")

        # ---- C ABI and reader checks on damaged files
        print()
        good = os.path.join(tmp, "case0.f2aw")
        data = bytearray(open(good, "rb").read())

        def damaged(label, mutate):
            b = bytearray(data)
            b = mutate(b)
            p = os.path.join(tmp, f"bad-{label}.f2aw")
            with open(p, "wb") as f:
                f.write(b)
            return p

        checks = [
            ("tensor byte flipped", damaged("flip", lambda b: b[:-100] + bytes([b[-100] ^ 0x40]) + b[-99:])),
            ("truncated", damaged("trunc", lambda b: b[:len(b) // 2])),
            ("bad magic", damaged("magic", lambda b: b"F2AX" + b[4:])),
            ("header byte flipped", damaged("header", lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:])),
            ("version 2", damaged("version", lambda b: b[:8] + bytes([2, 0, 0, 0]) + b[12:])),
            ("trailing byte", damaged("trailing", lambda b: b + b"\0")),
        ]
        for label, path in checks:
            status, model, msg = lib.load(path)
            if model:
                lib.lib.f2a_model_free(model)
            try:
                f2a_to_onnx.load_generator(path, f2a)
                py_msg = None
            except f2a_to_onnx.F2AWError as e:
                py_msg = str(e)
            ok = status == F2A_ERR_FORMAT and model is None and len(msg) > 0 and py_msg is not None
            record(ok)
            print(f"corrupt file ({label}): f2a_model_load -> {status} (want {F2A_ERR_FORMAT}) "
                  f"'{msg[-70:]}'; python reader: {py_msg!r:.70}  {'ok' if ok else 'FAIL'}")
        layer_checks(tmp, good, f2a, record)
        status, model, msg = lib.load(os.path.join(tmp, "does-not-exist.f2aw"))
        ok = status == F2A_ERR_IO and model is None and len(msg) > 0
        record(ok)
        print(f"missing file: f2a_model_load -> {status} (want {F2A_ERR_IO}) '{msg[-70:]}'  {'ok' if ok else 'FAIL'}")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
