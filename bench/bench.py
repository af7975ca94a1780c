#!/usr/bin/env python3
"""make bench: this engine vs onnxruntime, and photo-level timings of `f2a apply`.

    build/venv/bin/python bench/bench.py [BUILD_DIR]        (default: build; run by `make bench`)

Environment (all optional):
    BENCH_RUNS=N     timed runs per engine and cell (default 5; medians are reported)
    BENCH_WARMUP=N   untimed warm-up runs per engine and cell (default 1)
    BENCH_QUICK=1    skip the biggest cell (width 1.0 at 1024^2, ~1.8 TFLOP, ~15 s per ORT run)
    BENCH_WIDTHS="1.0 0.25"  BENCH_SIZES="256 512 1024"   restrict the grid
    BENCH_SPEED=0    skip part 1 (engine speed)
    BENCH_PHOTO=0    skip part 2 (photo level)
    BENCH_LAYERS=1   also part 3: per-layer times at 512^2 (f2a-bench --layers and an
                     onnxruntime profile) for width 1.0 and the shipped width
    BENCH_OUT=DIR    where models, images and results go (default BUILD_DIR/bench)
    BENCH_SETTLE_MS=N  sleep N ms before each timed run (default 100; 0 for back-to-back runs).
                     onnxruntime's pool threads spin for ~60 ms after each run, so back to back
                     every run of this engine shares the 2 cores with that spinning thread, and
                     onnxruntime's second run of a pair finds its own threads still hot. A user
                     runs one engine, not both interleaved: with the pause, every timed run of
                     either engine starts from the same state (its own threads idle, nothing
                     else running), which is the comparison the bench is for.

Part 1, engine speed. For each width (1.0 and the shipped model's) `f2a init` makes random
weights (seed 7, the shipped model's upsample/activation/formulation) and
tools/onnx/f2a_to_onnx.py converts the same file to ONNX (dynamic H/W). For each cell
(width, size) two fresh worker processes are started, one per engine:
  ours: libflash2ambient.so through ctypes, f2a_apply_f32 on interleaved float RGB,
        F2A_MODE_FULL, strength 1 (the timing includes the library's interleaved->planar
        conversion and the final blend/crop, a few ms);
  ort:  onnxruntime CPUExecutionProvider, intra-op threads 2, inter-op 1, sequential
        execution, ORT_ENABLE_ALL, session.run on NCHW float input.
Both generate the same image (numpy default_rng(size), uniform [0, 1), float32); sizes are
multiples of 16, so the library does not pad. After the warm-up the driver asks the two
workers for one timed run at a time, alternating (ours, ort, ort, ours, ...). Each
worker's peak RSS (VmHWM; whole process, Python + numpy + the engine) is read at the end;
a separate baseline shows the RSS of the worker before the model is loaded. The outputs of
the last run of the two engines are compared on every cell (max |diff| <= 1e-3).

Part 2, photo level. Synthetic 12 MP (4000x3000) and 24 MP (6000x4000) JPEGs (smooth
gradients, soft blobs, hard-edged shapes, fine stripes and sensor-like noise, quality 90),
then `f2a apply IN OUT.jpg` (the shipped model) as a child process: wall time and peak
RSS (wait4 rusage). 12 MP default mode: 1 warm-up + median of 3; 24 MP: --mode tiled and
--mode guided, one run each.

The binaries and the library are copied to BENCH_OUT/snapshot first, so that a rebuild of
build/ during the run does not change what is measured.
"""

import ctypes
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "onnx"))

TOLERANCE = 1e-3
WEIGHT_SEED = 7
PHOTO_TARGET_WALL_S = 1.5
PHOTO_TARGET_RSS_MB = 1024


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_on(name, default):
    v = os.environ.get(name, "").strip().lower()
    if not v:
        return default
    return v not in ("0", "no", "false", "off")


def rss_kb(field="VmHWM"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ==========================================================================
# Worker processes (one engine each)


class OursEngine:
    F2A_MODE_FULL = 1

    class Params(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_size_t), ("strength", ctypes.c_float), ("progress", ctypes.c_void_p),
                    ("progress_user_data", ctypes.c_void_p), ("mode", ctypes.c_int),
                    ("working_size", ctypes.c_int32), ("tile_size", ctypes.c_int32)]

    def __init__(self, lib_path, weights, onnx_path):
        import numpy as np
        self.np = np
        lib = self.lib = ctypes.CDLL(lib_path)
        lib.f2a_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.f2a_model_load.restype = ctypes.c_int
        lib.f2a_last_error.restype = ctypes.c_char_p
        lib.f2a_default_params.restype = OursEngine.Params
        fp = ctypes.POINTER(ctypes.c_float)
        lib.f2a_apply_f32.argtypes = [ctypes.c_void_p, fp, ctypes.c_size_t, fp, ctypes.c_size_t,
                                      ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(OursEngine.Params)]
        lib.f2a_apply_f32.restype = ctypes.c_int
        self.baseline_kb = rss_kb("VmRSS")
        handle = ctypes.c_void_p()
        status = lib.f2a_model_load(weights.encode(), ctypes.byref(handle))
        if status != 0:
            raise RuntimeError(f"f2a_model_load: {status} {lib.f2a_last_error().decode()}")
        self.model = handle
        self.params = lib.f2a_default_params()
        self.params.mode = OursEngine.F2A_MODE_FULL

    def set_input(self, img):
        self.img = img  # H x W x 3 float32, interleaved
        self.out = self.np.empty_like(img)

    def run(self):
        h, w = self.img.shape[:2]
        fp = ctypes.POINTER(ctypes.c_float)
        status = self.lib.f2a_apply_f32(self.model, self.img.ctypes.data_as(fp), w * 12,
                                        self.out.ctypes.data_as(fp), w * 12, w, h, ctypes.byref(self.params))
        if status != 0:
            raise RuntimeError(f"f2a_apply_f32: {status} {self.lib.f2a_last_error().decode()}")

    def output(self):
        return self.out


class OrtEngine:
    def __init__(self, lib_path, weights, onnx_path):
        import numpy as np
        import onnxruntime as ort
        self.np = np
        self.baseline_kb = rss_kb("VmRSS")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])

    def set_input(self, img):
        self.x = self.np.ascontiguousarray(img.transpose(2, 0, 1)[None])  # 1 x 3 x H x W
        self.y = None

    def run(self):
        self.y = self.sess.run(["ambient"], {"flash": self.x})[0]

    def output(self):
        return self.y[0].transpose(1, 2, 0)


def worker(engine_name, lib_path, weights, onnx_path, size):
    """Line protocol on stdin/stdout: 'run' → seconds, 'save PATH' → saves output, 'quit' → stats."""
    import numpy as np
    engine = (OursEngine if engine_name == "ours" else OrtEngine)(lib_path, weights, onnx_path)
    img = np.random.default_rng(size).random((size, size, 3), dtype=np.float32)
    engine.set_input(img)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            c0, t0 = time.process_time(), time.perf_counter()
            engine.run()
            t1, c1 = time.perf_counter(), time.process_time()
            print(json.dumps({"t": t1 - t0, "cpu": c1 - c0}), flush=True)
        elif cmd[0] == "save":
            np.save(cmd[1], engine.output())
            print(json.dumps({"saved": cmd[1]}), flush=True)
        elif cmd[0] == "quit":
            print(json.dumps({"hwm_kb": rss_kb("VmHWM"),
                              "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                              "baseline_kb": engine.baseline_kb}), flush=True)
            return 0
    return 1


class WorkerProc:
    def __init__(self, engine, lib_path, weights, onnx_path, size):
        self.engine = engine
        env = dict(os.environ)
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", engine, lib_path,
                                   weights, onnx_path, str(size)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.reply()

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.reply()

    def reply(self):
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            raise RuntimeError(f"{self.engine} worker died (exit {self.p.returncode})")
        return json.loads(line)

    def close(self):
        stats = self.ask("quit")
        self.p.wait()
        return stats


# ==========================================================================
# Helpers of the driver


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def model_info(f2a, path):
    """`f2a info` → dict with width, upsample, activation, formulation, levels."""
    out = sh([f2a, "info", path])
    m = re.search(r"width (\S+) levels (\d+) upsample (\S+) activation (\S+) formulation (\S+)", out)
    if not m:
        raise RuntimeError(f"cannot parse `f2a info {path}`:\n{out}")
    return {"width": float(m.group(1)), "levels": int(m.group(2)), "upsample": m.group(3),
            "activation": m.group(4), "formulation": m.group(5)}


def gflop(config, h, w):
    """GeneratorConfig.flops (multiply-adds x 2), mirrored."""
    total, hh, ww, cin, sizes = 0.0, float(h), float(w), 3.0, []
    for b in range(1, config.levels + 1):
        if b > 1:
            hh, ww = hh / 2, ww / 2
        sizes.append((hh, ww))
        for _ in range(config.conv_count(b)):
            total += 2 * 9 * cin * config.channels(b) * hh * ww
            cin = config.channels(b)
    for b in range(config.levels - 1, 0, -1):
        bh, bw = sizes[b - 1]
        c = config.channels(b)
        total += 2 * cin * c * bh * bw if config.upsample == "transpose" else 2 * cin * c * bh * bw / 4
        cin = 2 * c
        for _ in range(config.conv_count(b)):
            total += 2 * 9 * cin * c * bh * bw
            cin = c
    total += 2 * cin * 3 * h * w
    return total / 1e9


def layer_list(config, h, w):
    """The progress steps of Generator.forward, in order: (name, shape text, GFLOP)."""
    out, hh, ww, cin, sizes = [], h, w, 3, []
    for b in range(1, config.levels + 1):
        if b > 1:
            hh, ww = hh // 2, ww // 2
        sizes.append((hh, ww))
        for j in range(1, config.conv_count(b) + 1):
            c = config.channels(b)
            name = f"enc{b}.conv{j}" + (f" (+pool{b - 1})" if b > 1 and j == 1 else "")
            out.append((name, f"{cin}->{c} 3x3 @{hh}x{ww}", 2 * 9 * cin * c * hh * ww / 1e9))
            cin = c
    for b in range(config.levels - 1, 0, -1):
        bh, bw = sizes[b - 1]
        c = config.channels(b)
        if config.upsample == "transpose":
            out.append((f"dec{b}.up", f"{cin}->{c} convT2x2 @{bh}x{bw}", 2 * cin * c * bh * bw / 1e9))
        else:
            out.append((f"dec{b}.up", f"{cin}->{c} 1x1+unpool @{bh}x{bw}", 2 * cin * c * bh * bw / 4e9))
        cin = 2 * c
        for j in range(1, config.conv_count(b) + 1):
            out.append((f"dec{b}.conv{j}" + (" (concat)" if j == 1 else ""), f"{cin}->{c} 3x3 @{bh}x{bw}",
                        2 * 9 * cin * c * bh * bw / 1e9))
            cin = c
    out.append(("final", f"{cin}->3 1x1 @{h}x{w}", 2 * cin * 3 * h * w / 1e9))
    return out


def load_and_uptime():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return ["?"] * 3


def busy_processes(limit=6):
    """Processes using >= 5 % CPU over half a second (second frame of top -b)."""
    try:
        out = sh(["top", "-b", "-n", "2", "-d", "0.5", "-w", "200"])
    except Exception:
        return []
    frame = out.split("\n  PID")[-1] if "\n  PID" in out else out
    rows = []
    for line in frame.splitlines()[1:]:
        f = line.split(None, 11)
        if len(f) < 12:
            continue
        try:
            cpu = float(f[8])
        except ValueError:
            continue
        if cpu >= 5.0 and f[11] != "top":
            rows.append(f"{f[11][:40]} ({cpu:.0f}%)")
    return rows[:limit]


def machine_summary():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {cpu}"


def snapshot(build, out):
    """Copies of f2a, the library and the shipped weights, laid out as an install."""
    snap = os.path.join(out, "snapshot")
    for d in ("bin", "lib", "share/flash2ambient/weights"):
        os.makedirs(os.path.join(snap, d), exist_ok=True)
    shutil.copy2(os.path.join(build, "bin", "f2a"), os.path.join(snap, "bin", "f2a"))
    shutil.copy2(os.path.join(build, "lib", "libflash2ambient.so"), os.path.join(snap, "lib", "libflash2ambient.so"))
    weights = os.path.join(build, "share", "flash2ambient", "weights", "default.f2aw")
    if not os.path.exists(weights):
        weights = os.path.join(ROOT, "weights", "default.f2aw")
    shutil.copy2(weights, os.path.join(snap, "share/flash2ambient/weights/default.f2aw"))
    return snap


# ==========================================================================
# Part 1: engine speed


def prepare_models(f2a, shipped, widths, out):
    import onnx
    import f2a_to_onnx
    models = {}
    for width in widths:
        tag = f"w{width:g}"
        weights = os.path.join(out, f"random-{tag}.f2aw")
        onnx_path = os.path.join(out, f"random-{tag}.onnx")
        sh([f2a, "init", weights, "--width", repr(width), "--levels", str(shipped["levels"]),
            "--upsample", shipped["upsample"], "--activation", shipped["activation"],
            "--formulation", shipped["formulation"], "--seed", str(WEIGHT_SEED)])
        config, tensors = f2a_to_onnx.load_generator(weights)
        onnx.save(f2a_to_onnx.build_onnx(config, tensors), onnx_path)
        models[width] = (weights, onnx_path, config)
    return models


def run_cell(lib_path, weights, onnx_path, size, runs, warmup, tmp):
    ours = WorkerProc("ours", lib_path, weights, onnx_path, size)
    ort = WorkerProc("ort", lib_path, weights, onnx_path, size)
    try:
        for _ in range(warmup):
            ours.ask("run")
            ort.ask("run")
        times = {"ours": [], "ort": []}
        cpu = {"ours": [], "ort": []}
        settle = env_int("BENCH_SETTLE_MS", 100) / 1000
        for r in range(runs):
            order = (ours, ort) if r % 2 == 0 else (ort, ours)
            for wp in order:
                if settle:
                    time.sleep(settle)  # let the other engine's threads go idle first (see the docstring)
                reply = wp.ask("run")
                times[wp.engine].append(reply["t"])
                cpu[wp.engine].append(reply["cpu"])
        paths = {}
        for wp in (ours, ort):
            paths[wp.engine] = os.path.join(tmp, f"{wp.engine}-{size}.npy")
            wp.ask(f"save {paths[wp.engine]}")
    finally:
        stats = {"ours": ours.close(), "ort": ort.close()}
    import numpy as np
    a, b = np.load(paths["ours"]), np.load(paths["ort"])
    diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
    for p in paths.values():
        os.remove(p)
    return times, cpu, stats, diff


def part_speed(f2a, lib_path, shipped, out, results):
    runs = env_int("BENCH_RUNS", 5)
    warmup = env_int("BENCH_WARMUP", 1)
    quick = env_on("BENCH_QUICK", False)
    widths = [float(w) for w in os.environ.get("BENCH_WIDTHS", "").split()] or sorted({1.0, shipped["width"]}, reverse=True)
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "").split()] or [256, 512, 1024]
    import onnxruntime
    print(f"== 1. engine speed: this engine (libflash2ambient via ctypes, f2a_apply_f32, F2A_MODE_FULL, "
          f"interleaved float RGB) vs onnxruntime {onnxruntime.__version__} (2 intra-op threads, 1 inter-op, "
          f"sequential, ORT_ENABLE_ALL)")
    print(f"   random weights (f2a init --seed {WEIGHT_SEED}, {shipped['upsample']}/{shipped['activation']}/"
          f"{shipped['formulation']}), {warmup} warm-up + {runs} timed runs per engine, alternating, "
          f"{env_int('BENCH_SETTLE_MS', 100)} ms pause before each (BENCH_SETTLE_MS); "
          f"medians{'; BENCH_QUICK: width 1.0 at 1024^2 skipped' if quick else ''}")
    if os.environ.get("OPENBLAS_NUM_THREADS"):
        print(f"   note: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']} is set")
    models = prepare_models(f2a, shipped, widths, out)
    header = (f"{'width':>5} {'size':>6} {'GFLOP':>8} | {'ours s':>8} {'GFLOP/s':>7} {'spread':>11} | "
              f"{'ort s':>8} {'GFLOP/s':>7} {'spread':>11} | {'ratio':>5} | {'max|diff|':>9} | "
              f"{'RSS ours':>8} {'RSS ort':>8}")
    print(header)
    print("-" * len(header))
    cells = []
    with tempfile.TemporaryDirectory(prefix="f2a-bench-") as tmp:
        for width in widths:
            weights, onnx_path, config = models[width]
            for size in sizes:
                g = gflop(config, size, size)
                if quick and g > 1000:
                    continue
                t0 = time.time()
                times, cpu, stats, diff = run_cell(lib_path, weights, onnx_path, size, runs, warmup, tmp)
                mo, mr = statistics.median(times["ours"]), statistics.median(times["ort"])
                cell = {"width": width, "size": size, "gflop": g, "ours_s": mo, "ort_s": mr,
                        "ours_times": times["ours"], "ort_times": times["ort"], "ratio": mr / mo,
                        "ours_cpu_s": statistics.median(cpu["ours"]), "ort_cpu_s": statistics.median(cpu["ort"]),
                        "max_abs_diff": diff,
                        "ours_peak_rss_mb": stats["ours"]["hwm_kb"] / 1024,
                        "ort_peak_rss_mb": stats["ort"]["hwm_kb"] / 1024,
                        "ours_baseline_rss_mb": stats["ours"]["baseline_kb"] / 1024,
                        "ort_baseline_rss_mb": stats["ort"]["baseline_kb"] / 1024,
                        "cell_seconds": time.time() - t0}
                cells.append(cell)
                spread = lambda ts: f"{min(ts):.3f}-{max(ts):.3f}"
                ok = "" if diff <= TOLERANCE else " FAIL"
                print(f"{width:>5.3g} {size:>5}² {g:>8.1f} | {mo:>8.3f} {g / mo:>7.1f} {spread(times['ours']):>11} | "
                      f"{mr:>8.3f} {g / mr:>7.1f} {spread(times['ort']):>11} | {mr / mo:>5.2f} | {diff:>9.1e}{ok} | "
                      f"{cell['ours_peak_rss_mb']:>6.0f}MB {cell['ort_peak_rss_mb']:>6.0f}MB", flush=True)
    if not cells:
        return
    geo = math.exp(sum(math.log(c["ratio"]) for c in cells) / len(cells))
    results["speed"] = {"cells": cells, "geomean_ratio": geo, "runs": runs, "warmup": warmup, "quick": quick,
                        "settle_ms": env_int("BENCH_SETTLE_MS", 100)}
    print(f"speed ratio vs onnxruntime: {geo:.2f}")
    print(f"   (geometric mean over {len(cells)} cells of ort_time/our_time; > 1 means this engine is faster)")
    worst = max(c["max_abs_diff"] for c in cells)
    print(f"outputs agree: max |ours - ort| over all cells {worst:.1e} "
          f"({'PASS' if worst <= TOLERANCE else 'FAIL'}, tolerance {TOLERANCE:g})")
    po = max(c["ours_peak_rss_mb"] for c in cells)
    pr = max(c["ort_peak_rss_mb"] for c in cells)
    print(f"peak RSS (max over cells, whole worker process incl. Python+numpy): this engine {po:.0f} MB, "
          f"onnxruntime {pr:.0f} MB; worker baseline before model load: ours "
          f"{cells[0]['ours_baseline_rss_mb']:.0f} MB, ort {cells[0]['ort_baseline_rss_mb']:.0f} MB")
    results["speed"]["peak_rss_mb"] = {"ours": po, "ort": pr}
    # Process CPU time per pass (all threads): much less sensitive to other load than wall
    # time; CPU/2 approximates the wall time on an idle 2-core machine (ORT's spinning
    # worker threads count as CPU time, as they would cost wall time there too).
    print("CPU seconds per pass (process CPU time, all threads; median), and the ratio of those:")
    for c in cells:
        print(f"   width {c['width']:g} {c['size']}²: ours {c['ours_cpu_s']:.3f} s, ort {c['ort_cpu_s']:.3f} s, "
              f"ort/ours {c['ort_cpu_s'] / c['ours_cpu_s']:.2f}")
    geo_cpu = math.exp(sum(math.log(c["ort_cpu_s"] / c["ours_cpu_s"]) for c in cells) / len(cells))
    results["speed"]["geomean_cpu_ratio"] = geo_cpu
    print(f"   geometric mean of the CPU-time ratios: {geo_cpu:.2f} (not the headline figure; a check on it "
          f"when the machine is busy)")


# ==========================================================================
# Part 2: photo level


def make_photo(path, width, height, seed):
    """A photo-like synthetic JPEG: gradients, soft blobs, hard edges, fine texture, noise."""
    import numpy as np
    rng = np.random.default_rng(seed)
    ppm = path + ".ppm"
    with open(ppm, "wb") as f:
        f.write(f"P6\n{width} {height}\n255\n".encode())
        x = np.linspace(0, 1, width, dtype=np.float32)
        # Separable low-frequency structure: sum of products of 1-D sinusoids.
        waves = [(rng.uniform(0.5, 4), rng.uniform(0, 6.3), rng.uniform(0.5, 4), rng.uniform(0, 6.3),
                  rng.uniform(-0.12, 0.12, 3).astype(np.float32)) for _ in range(6)]
        rects = []
        for _ in range(60):
            w = int(rng.integers(width // 40, width // 6))
            h = int(rng.integers(height // 40, height // 6))
            x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            kind = int(rng.integers(0, 3))
            rects.append((x0, y0, w, h, rng.uniform(0, 1, 3).astype(np.float32), kind, int(rng.integers(2, 7))))
        band = 256
        for y0b in range(0, height, band):
            rows = min(band, height - y0b)
            y = (np.arange(y0b, y0b + rows, dtype=np.float32) / height)[:, None]
            img = np.empty((rows, width, 3), dtype=np.float32)
            img[..., 0] = 0.25 + 0.5 * x[None, :] * (1 - 0.3 * y)
            img[..., 1] = 0.2 + 0.45 * y + 0.1 * x[None, :]
            img[..., 2] = 0.55 - 0.3 * x[None, :] * y
            for fx, px, fy, py, amp in waves:
                s = np.sin(fx * 6.283 * x + px)[None, :] * np.sin(fy * 6.283 * y + py)
                img += s[..., None] * amp
            for x0, yr, w, h, colour, kind, period in rects:
                lo, hi = max(yr, y0b), min(yr + h, y0b + rows)
                if lo >= hi:
                    continue
                region = img[lo - y0b:hi - y0b, x0:x0 + w]
                if kind == 0:      # flat object with a hard edge
                    region[:] = 0.35 * region + 0.65 * colour
                elif kind == 1:    # fine stripes (fabric, text-like detail)
                    stripes = ((np.arange(x0, x0 + w) // period) % 2).astype(np.float32)
                    region[:] = 0.5 * region + 0.5 * colour * (0.6 + 0.4 * stripes[None, :, None])
                else:              # checker texture
                    yy = (np.arange(lo, hi) // period)[:, None]
                    xx = (np.arange(x0, x0 + w) // period)[None, :]
                    region[:] = region * (0.75 + 0.25 * ((xx + yy) % 2)[..., None])
            img += rng.normal(0, 0.018, img.shape).astype(np.float32)
            f.write(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8).tobytes())
    sh(["vips", "copy", ppm, f"{path}[Q=90]"])
    os.remove(ppm)


def timed_child(cmd):
    """(wall seconds, peak RSS MB, stdout) of a child process, via wait4."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{out}")
    return wall, ru.ru_maxrss / 1024, out.strip()


def part_photo(snap, out, results):
    f2a = os.path.join(snap, "bin", "f2a")
    info = model_info(f2a, os.path.join(snap, "share/flash2ambient/weights/default.f2aw"))
    print(f"\n== 2. photo level: `f2a apply IN OUT.jpg` with the shipped model (width {info['width']:g}), "
          f"child process wall time and peak RSS (wait4)")
    photos = {}
    for name, (w, h, seed) in {"12MP": (4000, 3000, 12), "24MP": (6000, 4000, 24)}.items():
        path = os.path.join(out, f"synthetic-{name}-{w}x{h}.jpg")
        if not os.path.exists(path):
            make_photo(path, w, h, seed)
        photos[name] = path
        print(f"   {path}: {w}x{h}, {os.path.getsize(path) / 1e6:.1f} MB JPEG")
    res = {}
    out_jpg = os.path.join(out, "photo-out.jpg")

    def apply(photo, mode=None):
        cmd = [f2a, "apply", photos[photo], out_jpg, "--verbose"] + (["--mode", mode] if mode else [])
        try:
            return timed_child(cmd)
        except RuntimeError as e:
            print(f"   ERROR: {e}")
            return float("nan"), float("nan"), "failed"

    wall, rss, log = apply("12MP")  # warm-up (page cache, first-touch)
    print(f"   12 MP default, warm-up: {wall:.2f} s, {rss:.0f} MB   [{log}]")
    walls, rsss = [], []
    for _ in range(3):
        wall, rss, log = apply("12MP")
        walls.append(wall)
        rsss.append(rss)
        print(f"   12 MP default: {wall:.2f} s, {rss:.0f} MB   [{log}]")
    walls = [w for w in walls if w == w] or [float("nan")]
    rsss = [r for r in rsss if r == r] or [float("nan")]
    res["12MP_default"] = {"wall_s": statistics.median(walls), "walls": walls, "peak_rss_mb": max(rsss), "log": log}
    for mode in ("guided", "tiled"):
        wall, rss, log = apply("24MP", mode)
        res[f"24MP_{mode}"] = {"wall_s": wall, "peak_rss_mb": rss, "log": log}
        print(f"   24 MP --mode {mode}: {wall:.2f} s, {rss:.0f} MB   [{log}]")
    if os.path.exists(out_jpg):
        os.remove(out_jpg)

    def mark(ok):
        return "PASS" if ok else "MISS"  # NaN (a failed run) compares False: MISS

    d = res["12MP_default"]
    print(f"12 MP default mode: wall {d['wall_s']:.2f} s (median of 3), peak RSS {d['peak_rss_mb']:.0f} MB   "
          f"target <= {PHOTO_TARGET_WALL_S} s: {mark(d['wall_s'] <= PHOTO_TARGET_WALL_S)}")
    for mode in ("tiled", "guided"):
        d = res[f"24MP_{mode}"]
        print(f"24 MP --mode {mode}: peak RSS {d['peak_rss_mb']:.0f} MB (wall {d['wall_s']:.1f} s)   "
              f"target <= {PHOTO_TARGET_RSS_MB} MB: {mark(d['peak_rss_mb'] <= PHOTO_TARGET_RSS_MB)}")
    results["photo"] = res


# ==========================================================================
# Part 3: per-layer times


def ort_profile(onnx_path, size, runs):
    import numpy as np
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="f2a-prof-") as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(size).random((1, 3, size, size), dtype=np.float32)
        for _ in range(runs + 1):
            sess.run(["ambient"], {"flash": x})
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    per = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        name = e["name"][:-len("_kernel_time")]
        op = e.get("args", {}).get("op_name", "?")
        per.setdefault((name, op), []).append(e["dur"] / 1e3)
    # The first run is the warm-up.
    return {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in per.items()}


def ort_layer_of(name):
    if name.startswith("ambient"):  # the final 1x1 conv, fused with the sigmoid, named after the output
        return "final"
    m = re.match(r"(enc\d\.conv\d|dec\d\.conv\d|dec\d\.up|final|pool\d)", name)
    return m.group(1) if m else None


def part_layers(bench_bin, shipped, out, results):
    import f2a_to_onnx
    size = 512
    runs = env_int("BENCH_LAYER_RUNS", 5)
    print(f"\n== 3. per-layer times at {size}², median of {runs} passes: this engine (f2a-bench --layers; "
          f"a step is one layer evaluation, pooling counted in the next conv; wall and process CPU time) and "
          f"onnxruntime (profile, node kernel times; 'other' = layout reorders, concat, pool, sigmoid)")
    results["layers"] = {}
    for width in sorted({1.0, shipped["width"]}, reverse=True):
        text = sh([bench_bin, "--width", repr(width), "--size", str(size), "--runs", "1", "--layers",
                   "--layer-runs", str(runs), "--cpu-time"])
        steps = [float(m) for m in re.findall(r"step\s+\d+\s+([\d.]+) ms", text)]
        cpu_steps = [float(m) for m in re.findall(r"([\d.]+) ms cpu", text)]
        tag = f"w{width:g}"
        onnx_path = os.path.join(out, f"random-{tag}.onnx")
        if not os.path.exists(onnx_path):
            prepare_models(os.path.join(out, "snapshot", "bin", "f2a"), shipped, [width], out)
        config, _ = f2a_to_onnx.load_generator(os.path.join(out, f"random-{tag}.f2aw"))
        prof = ort_profile(onnx_path, size, runs)
        ort_by_layer, ort_other = {}, 0.0
        for (name, op), ms in prof.items():
            layer = ort_layer_of(name)
            if layer and not layer.startswith("pool"):
                ort_by_layer[layer] = ort_by_layer.get(layer, 0.0) + ms
            else:
                ort_other += ms
        layers = layer_list(config, size, size)
        if len(layers) != len(steps):
            print(f"   width {width:g}: {len(steps)} steps from f2a-bench, expected {len(layers)}:\n{text}")
            continue
        if len(cpu_steps) != len(steps):
            cpu_steps = [float("nan")] * len(steps)
        total_ours, total_ort = sum(steps), sum(ort_by_layer.values()) + ort_other
        print(f"\n   width {width:g} ({gflop(config, size, size):.1f} GFLOP): ours {total_ours:.0f} ms "
              f"({sum(cpu_steps):.0f} ms CPU, all threads), ort {total_ort:.0f} ms (sum of node kernel times)")
        print(f"   {'layer':<24} {'shape':<26} {'GFLOP':>6} | {'ours ms':>8} {'GF/s':>6} {'%':>5} {'cpu ms':>8} | "
              f"{'ort ms':>8} {'GF/s':>6} | {'ort/ours':>8}")
        rows = []
        for (name, shape, g), ms, cms in zip(layers, steps, cpu_steps):
            key = name.split()[0]
            o = ort_by_layer.get(key)
            rows.append({"layer": name, "shape": shape, "gflop": g, "ours_ms": ms, "ours_cpu_ms": cms, "ort_ms": o})
            print(f"   {name:<24} {shape:<26} {g:>6.2f} | {ms:>8.1f} {g / ms * 1e3 if ms else 0:>6.0f} "
                  f"{100 * ms / total_ours:>5.1f} {cms:>8.1f} | " +
                  (f"{o:>8.1f} {g / o * 1e3:>6.0f} | {o / ms:>8.2f}" if o else f"{'-':>8} {'-':>6} | {'-':>8}"))
        print(f"   {'other (ort)':<24} {'':<26} {'':>6} | {'':>8} {'':>6} {'':>5} | {ort_other:>8.1f}")
        results["layers"][tag] = {"rows": rows, "ours_total_ms": total_ours, "ort_total_ms": total_ort,
                                  "ours_total_cpu_ms": sum(cpu_steps),
                                  "ort_other_ms": ort_other}


# ==========================================================================


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(*sys.argv[2:6], int(sys.argv[6]))
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    out = os.path.abspath(os.environ.get("BENCH_OUT", os.path.join(build, "bench")))
    os.makedirs(out, exist_ok=True)
    for p in ("bin/f2a", "lib/libflash2ambient.so"):
        if not os.path.exists(os.path.join(build, p)):
            print(f"missing {build}/{p}: run `make all` first", file=sys.stderr)
            return 2
    snap = snapshot(build, out)
    f2a = os.path.join(snap, "bin", "f2a")
    lib_path = os.path.join(snap, "lib", "libflash2ambient.so")
    shipped = model_info(f2a, os.path.join(snap, "share/flash2ambient/weights/default.f2aw"))
    started = time.time()
    la = load_and_uptime()
    busy = busy_processes()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine_summary(),
               "load_start": la, "busy_start": busy, "shipped": shipped}
    print(f"flash2ambient bench, {results['date']}, {results['machine']}")
    print(f"load average at start: {' '.join(la)}; other busy processes: {', '.join(busy) or 'none'}")
    print(f"shipped model: width {shipped['width']:g}, {shipped['upsample']}, {shipped['activation']}, "
          f"{shipped['formulation']}\n")
    def save():
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)

    if env_on("BENCH_SPEED", True):
        part_speed(f2a, lib_path, shipped, out, results)
        save()
    if env_on("BENCH_PHOTO", True):
        part_photo(snap, out, results)
        save()
    if env_on("BENCH_LAYERS", False):
        bench_bin = os.path.join(build, "bin", "f2a-bench")
        if os.path.exists(bench_bin):
            shutil.copy2(bench_bin, os.path.join(snap, "bin", "f2a-bench"))
            part_layers(os.path.join(snap, "bin", "f2a-bench"), shipped, out, results)
        else:
            print(f"\n(BENCH_LAYERS: {bench_bin} missing; `make bench` builds it)")
    results["load_end"] = load_and_uptime()
    results["busy_end"] = busy_processes()
    results["seconds"] = time.time() - started
    print(f"\nload average at end: {' '.join(results['load_end'])}; other busy processes: "
          f"{', '.join(results['busy_end']) or 'none'}; bench took {results['seconds']:.0f} s")
    save()
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import report
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write(report.render(results))
    except Exception as e:  # the Markdown copy is a convenience
        print(f"(results.md not written: {e})")
    print(f"results: {os.path.join(out, 'results.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
