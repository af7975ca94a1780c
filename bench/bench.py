#!/usr/bin/env python3
"""make bench: this engine vs onnxruntime and OpenVINO, and photo-level timings.

    build/venv/bin/python bench/bench.py [BUILD_DIR]        (default: build; run by `make bench`)

Environment (all optional):
    BENCH_RUNS=N     timed runs per engine and cell (default 5; medians are reported); more, up to
                     25, where N runs of the slowest engine take under BENCH_CELL_MS (below)
    BENCH_CELL_MS=T  after the warm-up one untimed run per engine sizes the cell: it gets as many runs
                     as its slowest engine fits in T ms (default 2000; 0: exactly BENCH_RUNS), since a
                     median of 5 runs moved with one or two slow runs of the host: by 30 % for a ~10 ms
                     pass, by 1.5x for our ~35 ms pass of width 0.125 at 512^2 (52 ms in a whole bench,
                     35.3 in that cell alone minutes later; its peers' ~100 ms runs sized it at 5 runs
                     under a 200 ms budget)
    BENCH_WARMUP=N   untimed warm-up runs per engine and cell (default 1)
    BENCH_CELLS="MODEL@SIZE ..."   the engine-speed cells instead of the default set. MODEL:
                     `default` (the shipped weights), `wA` (f2a init --width A) or `wA/dB`
                     (--width A --decoder-width B --formulation ratio-log); SIZE: N (N x N) or
                     WxH, multiples of 16. Default: "w1@256 w1@512 w0.125@512 w0.125@1024
                     default@WSxH w1/d0.125@WSxH", WS = F2A_DEFAULT_WORKING_SIZE from
                     flash2ambient.h (the long side), H = 3/4 of it (256x192).
    BENCH_WIDTHS="1.0 0.25"  BENCH_SIZES="256 512"   the old square grid wA@N instead (either set)
    BENCH_QUICK=1    skip cells over 1000 GFLOP (none in the default set)
    BENCH_PEERS="ort ov"   the engines compared with this one (default both; `ort` or `ov` alone)
    BENCH_ISA=avx2   part 1 as on a CPU without AVX-512 (the AMD Zen 3 class the project targets),
                     on a machine that has it: this engine with F2A_AVX512=0 (its AVX2 blocks, the
                     same output bits), OpenVINO with ONEDNN_MAX_CPU_ISA=AVX2 (its oneDNN kernels
                     honour it: width 1.0 at 256^2 0.50 -> 0.76 s). onnxruntime has no such switch
                     (MLAS picks its kernels by CPUID): it keeps AVX-512, so its column is faster
                     than on such a CPU. Default `native`: what this CPU has
    BENCH_SPEED=0    skip part 1 (engine speed)
    BENCH_PHOTO=0    skip part 2 (photo level)
    BENCH_PHOTO_RUNS=N     timed runs per command and photo size (default 5; medians)
    BENCH_PHOTO_WARMUP=N   untimed runs per command and photo size first (default 1)
    BENCH_PHOTO_SIZES="12 24 48"   photo sizes in megapixels
    BENCH_PHOTO_SRC=FILE   the image the photos are made from (default examples/flash.jpg,
                     upscaled with `vips resize`); `synthetic`: the generated test pattern
    BENCH_LAYERS=1   also part 3: per-layer times at 512^2 (f2a-bench --layers and an
                     onnxruntime profile) for width 1.0 and the shipped width
    BENCH_OUT=DIR    where models, images and results go (default BUILD_DIR/bench)
    BENCH_SETTLE_MS=N  sleep N ms before each timed run (default 100; 0 for back-to-back runs).
                     onnxruntime's pool threads spin for ~60 ms after each run, so back to back
                     every run of the next engine shares the 2 cores with that spinning thread, and
                     an engine's second run in a row finds its own threads still hot. A user
                     runs one engine, not several interleaved: with the pause, every timed run of
                     every engine starts from the same state (its own threads idle, nothing
                     else running), which is the comparison the bench is for.

Part 1, engine speed. Per model, the same .f2aw file is loaded by the library and converted
by tools/onnx/f2a_to_onnx.py (dynamic H/W) to the ONNX model both peers run. For each cell
(model, size) a fresh worker process is started per engine:
  ours: libflash2ambient.so through ctypes, f2a_apply_f32 on interleaved float RGB,
        F2A_MODE_FULL, strength 1 (the timing includes the library's interleaved->planar
        conversion and the final blend/crop, a few ms);
  ort:  onnxruntime CPUExecutionProvider, intra-op threads 2, inter-op 1, sequential
        execution, ORT_ENABLE_ALL, session.run on NCHW float input;
  ov:   OpenVINO: Core().read_model(the ONNX file), reshaped to 1x3xHxW, compile_model on
        "CPU" with INFERENCE_NUM_THREADS 2, PERFORMANCE_HINT LATENCY,
        INFERENCE_PRECISION_HINT f32; infer() on an NCHW input tensor set once.
All generate the same image (numpy default_rng((H, W)), uniform [0, 1), float32); sizes are
multiples of 16, so the library does not pad. After the warm-up and the sizing run
(BENCH_CELL_MS) the driver asks the workers for one timed run at a time, in an order that rotates and reverses (ours ort ov, ort ov ours,
ov ours ort, ov ort ours, ours ov ort, ort ours ov, ...). Each worker's peak RSS (VmHWM;
whole process, Python + numpy + the engine) is read at the end; a separate baseline shows
the RSS of the worker before the model is loaded. The outputs of the last run of each peer
are compared with ours on every cell (max |diff| <= 1e-3). Per cell: ratio = faster peer's
median / our median; `speed ratio vs best peer` is the geometric mean over the cells (> 1:
this engine is faster). Effective GFLOP/s = the network's FLOPs (`f2a info`: 2 x
multiply-adds of the direct convolutions, scaled to the cell's size) / median time, also as
a percentage of the FMA peak measured at the start of the run (bench/fma_peak.c, 2 threads).

Part 2, photo level. JPEGs of about 12, 24 and 48 MP made from BENCH_PHOTO_SRC (quality 90),
then three commands per photo, each a child process, alternating (rotating order), medians:
`vips copy IN OUT.jpg` (decode + encode: the floor), `f2a apply IN OUT.jpg` (default mode)
and `vips flash2ambient IN OUT.jpg` (the libvips module, VIPSHOME=the snapshot's vipshome).
Wall time around the process and peak RSS from wait4's ru_maxrss. Printed: the time ratios
against `vips copy` and the peak RSS of each command per size, against the goals of issue 19.

The binaries, the library, the vips module and the shipped weights are copied to
BENCH_OUT/snapshot first, so that a rebuild of build/ during the run does not change what is
measured.
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
ENGINES = {"ours": "this engine", "ort": "onnxruntime", "ov": "OpenVINO"}
PEERS = ("ort", "ov")
FMA_PEAK_THREADS = 2
# Issue 19's goals for the photo level (sizes in MP).
PHOTO_GOAL_RATIO = 2.5
PHOTO_GOAL_RSS_MB = {12: 150, 24: 200, 48: 200}
PHOTO_TOOLS = {"copy": "vips copy", "f2a": "f2a apply", "vfa": "vips flash2ambient"}


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


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


# ==========================================================================
# Worker processes (one engine each)


class OursEngine:
    F2A_MODE_FULL = 1

    class Params(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_size_t), ("strength", ctypes.c_float), ("progress", ctypes.c_void_p),
                    ("progress_user_data", ctypes.c_void_p), ("mode", ctypes.c_int),
                    ("working_size", ctypes.c_int32), ("tile_size", ctypes.c_int32)]

    def __init__(self, lib_path, weights, onnx_path, height, width):
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
    def __init__(self, lib_path, weights, onnx_path, height, width):
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


class OvEngine:
    def __init__(self, lib_path, weights, onnx_path, height, width):
        import numpy as np
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints
        self.np, self.ov = np, ov
        self.baseline_kb = rss_kb("VmRSS")
        core = ov.Core()
        model = core.read_model(onnx_path)
        model.reshape({model.input(0).get_any_name(): ov.PartialShape([1, 3, height, width])})
        self.compiled = core.compile_model(model, "CPU", {
            props.inference_num_threads: 2,
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            hints.inference_precision: ov.Type.f32,
        })
        self.request = self.compiled.create_infer_request()

    def set_input(self, img):
        self.x = self.np.ascontiguousarray(img.transpose(2, 0, 1)[None])  # 1 x 3 x H x W
        self.request.set_input_tensor(self.ov.Tensor(self.x, shared_memory=True))

    def run(self):
        self.request.infer()

    def output(self):
        return self.request.get_output_tensor(0).data[0].transpose(1, 2, 0)


ENGINE_CLASSES = {"ours": OursEngine, "ort": OrtEngine, "ov": OvEngine}


def worker(engine_name, lib_path, weights, onnx_path, height, width):
    """Line protocol on stdin/stdout: 'run' → seconds, 'save PATH' → saves output, 'quit' → stats."""
    import numpy as np
    engine = ENGINE_CLASSES[engine_name](lib_path, weights, onnx_path, height, width)
    img = np.random.default_rng((height, width)).random((height, width, 3), dtype=np.float32)
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


# Environment of each engine's worker per BENCH_ISA (see the docstring).
ISA_ENV = {
    "native": {},
    "avx2": {"ours": {"F2A_AVX512": "0"}, "ov": {"ONEDNN_MAX_CPU_ISA": "AVX2"}},
}


def isa():
    name = os.environ.get("BENCH_ISA", "native")
    if name not in ISA_ENV:
        raise SystemExit(f"BENCH_ISA={name}: give {' or '.join(ISA_ENV)}")
    return name


class WorkerProc:
    def __init__(self, engine, lib_path, weights, onnx_path, height, width):
        self.engine = engine
        extra = ISA_ENV[isa()].get(engine, {})
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", engine, lib_path,
                                   weights, onnx_path, str(height), str(width)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, **extra} if extra else None)
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

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ==========================================================================
# Helpers of the driver


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def model_info(f2a, path):
    """`f2a info` → dict with width, decoder_width, levels, upsample, activation, formulation and
    the cost line (GFLOP at a reference size)."""
    out = sh([f2a, "info", path])
    m = re.search(r"(?:encoder )?width (\S+) (?:decoder width (\S+) )?levels (\d+) upsample (\S+) "
                  r"activation (\S+) formulation (\S+)", out)
    c = re.search(r"cost:\s+(\S+) GFLOP at (\d+)x(\d+)", out)
    if not m or not c:
        raise RuntimeError(f"cannot parse `f2a info {path}`:\n{out}")
    return {"width": float(m.group(1)), "decoder_width": float(m.group(2) or m.group(1)),
            "levels": int(m.group(3)), "upsample": m.group(4), "activation": m.group(5),
            "formulation": m.group(6), "gflop_ref": float(c.group(1)),
            "gflop_ref_pixels": int(c.group(2)) * int(c.group(3))}


def gflop(info, height, width):
    """The network's GFLOP at height x width: `f2a info`'s figure (GeneratorConfig.flops, 2 x the
    multiply-adds of the convolutions as direct convolutions; pooling, concat and the output
    activation not counted) scaled from its reference size. Every layer's cost is proportional to
    the pixel count, so the scaling is exact."""
    return info["gflop_ref"] * height * width / info["gflop_ref_pixels"]


def layer_list(config, h, w):
    """The progress steps of Generator.forward, in order: (name, shape text, GFLOP), one per entry
    of the layer list that `f2a info --layers` prints (config.layers, from load_generator)."""
    out = []
    for layer in config.layers:
        lh, lw = h >> (layer.level - 1), w >> (layer.level - 1)
        cin, c = layer.in_channels, layer.out_channels
        if layer.kind == "conv3x3":
            name = layer.name + {"pooled": f" (+pool{layer.level - 1})", "withSkip": " (concat)"}.get(layer.input, "")
            out.append((name, f"{cin}->{c} 3x3 @{lh}x{lw}", 2 * 9 * cin * c * lh * lw / 1e9))
        elif layer.kind == "upsample" and config.upsample == "transpose":
            out.append((layer.name, f"{cin}->{c} convT2x2 @{lh}x{lw}", 2 * cin * c * lh * lw / 1e9))
        elif layer.kind == "upsample":
            out.append((layer.name, f"{cin}->{c} 1x1+unpool @{lh}x{lw}", 2 * cin * c * lh * lw / 4e9))
        else:
            out.append((layer.name, f"{cin}->{c} 1x1 @{lh}x{lw}", 2 * cin * c * lh * lw / 1e9))
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
    """Copies of f2a, the library, the vips module and the shipped weights, laid out as an install
    (the module's rpath, $ORIGIN/../../../lib, finds snapshot/lib; the library finds the weights
    in snapshot/share)."""
    snap = os.path.join(out, "snapshot")
    for d in ("bin", "lib", "share/flash2ambient/weights"):
        os.makedirs(os.path.join(snap, d), exist_ok=True)
    shutil.copy2(os.path.join(build, "bin", "f2a"), os.path.join(snap, "bin", "f2a"))
    # The library and its SONAME link (libflash2ambient.so.0, what the module is linked against).
    for name in sorted(os.listdir(os.path.join(build, "lib"))):
        if name.startswith("libflash2ambient.so"):
            src, dst = os.path.join(build, "lib", name), os.path.join(snap, "lib", name)
            if os.path.lexists(dst):
                os.remove(dst)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
    weights = os.path.join(build, "share", "flash2ambient", "weights", "default.f2aw")
    if not os.path.exists(weights):
        weights = os.path.join(ROOT, "weights", "default.f2aw")
    shutil.copy2(weights, os.path.join(snap, "share/flash2ambient/weights/default.f2aw"))
    vipshome = os.path.join(snap, "vipshome")
    shutil.rmtree(vipshome, ignore_errors=True)
    if os.path.isdir(os.path.join(build, "vipshome")):
        # The stock modules are symbolic links into the system's module directory: kept as links.
        shutil.copytree(os.path.join(build, "vipshome"), vipshome, symlinks=True)
    return snap


def working_size():
    """F2A_DEFAULT_WORKING_SIZE from the C header: the long side guided mode runs the network at."""
    path = os.path.join(ROOT, "Sources", "CFlash2Ambient", "include", "flash2ambient.h")
    with open(path) as f:
        m = re.search(r"^#define F2A_DEFAULT_WORKING_SIZE (\d+)\s*$", f.read(), re.M)
    if not m:
        raise RuntimeError(f"no F2A_DEFAULT_WORKING_SIZE in {path}")
    return int(m.group(1))


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fma_peak(snap):
    """{threads: GFLOP/s}: the best of 5 runs of bench/fma_peak.c (0.25 s each) with 1 and
    FMA_PEAK_THREADS threads; {} without AVX2 + FMA or a C compiler."""
    if not {"avx2", "fma"} <= cpu_flags():
        print("   FMA peak: not measured (no AVX2 + FMA)")
        return {}
    exe = os.path.join(snap, "bin", "f2a-fma-peak")
    try:
        sh([os.environ.get("CC") or "cc", "-O2", "-mavx2", "-mfma", "-pthread", "-o", exe,
            os.path.join(ROOT, "bench", "fma_peak.c")])
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"   FMA peak: not measured (cannot compile bench/fma_peak.c: {e})")
        return {}
    peak = {}
    for threads in sorted({1, FMA_PEAK_THREADS}):
        peak[threads] = max(json.loads(sh([exe, str(threads), "0.25"]))["gflops"] for _ in range(5))
    return peak


# ==========================================================================
# Part 1: engine speed


CELL_RE = re.compile(r"^(default|w([0-9.]+)(?:/d([0-9.]+))?)@(\d+)(?:x(\d+))?$")


def cell_spec(shipped):
    """The cells to run: (spec text, where it came from)."""
    spec = os.environ.get("BENCH_CELLS", "").strip()
    if spec:
        return spec, "BENCH_CELLS"
    widths = os.environ.get("BENCH_WIDTHS", "").split()
    sizes = os.environ.get("BENCH_SIZES", "").split()
    if widths or sizes:
        widths = [float(w) for w in widths] or sorted({1.0, shipped["width"]}, reverse=True)
        sizes = [int(s) for s in sizes] or [256, 512, 1024]
        return " ".join(f"w{w:g}@{s}" for w in widths for s in sizes), "BENCH_WIDTHS/BENCH_SIZES"
    ws = working_size()
    m = 1 << (shipped["levels"] - 1)
    long_side, short_side = -(-ws // m) * m, -(-round(ws * 3 / 4) // m) * m
    at_ws = f"{long_side}x{short_side}"
    return (f"w1@256 w1@512 w0.125@512 w0.125@1024 default@{at_ws} w1/d0.125@{at_ws}",
            f"default set; F2A_DEFAULT_WORKING_SIZE {ws} -> {at_ws}")


def parse_cells(spec):
    cells = []
    for tok in spec.split():
        m = CELL_RE.match(tok)
        if not m:
            raise SystemExit(f"BENCH_CELLS: cannot parse {tok!r} (MODEL@SIZE; MODEL default, wA or wA/dB; "
                             f"SIZE N or WxH)")
        w = int(m.group(4))
        cells.append({"model": m.group(1), "w": w, "h": int(m.group(5) or w)})
    return cells


def prepare_model(f2a, shipped_weights, shipped, key, out):
    """Weights, ONNX model and `f2a info` of one model key (default, wA, wA/dB)."""
    import onnx
    import f2a_to_onnx
    tag = key.replace("/", "-")
    if key == "default":
        weights = shipped_weights
    else:
        m = re.match(r"w([0-9.]+)(?:/d([0-9.]+))?$", key)
        weights = os.path.join(out, f"random-{tag}.f2aw")
        cmd = [f2a, "init", weights, "--width", repr(float(m.group(1))), "--levels", str(shipped["levels"]),
               "--upsample", shipped["upsample"], "--activation", shipped["activation"], "--seed", str(WEIGHT_SEED)]
        if m.group(2):  # a VGG-16 encoder under a narrow decoder: the pretrained-encoder recipe's model
            cmd += ["--decoder-width", repr(float(m.group(2))), "--formulation", "ratio-log"]
        else:
            cmd += ["--formulation", shipped["formulation"]]
        sh(cmd)
    onnx_path = os.path.join(out, f"{'shipped' if key == 'default' else 'random'}-{tag}.onnx")
    config, tensors = f2a_to_onnx.load_generator(weights, f2a)
    onnx.save(f2a_to_onnx.build_onnx(config, tensors), onnx_path)
    return {"key": key, "weights": weights, "onnx": onnx_path, "config": config, "info": model_info(f2a, weights)}


def run_order(names, r):
    """Order of timed run r: rotations of the engine list, then the reversed rotations, so that
    every engine runs in every position and after every other engine equally often."""
    k = len(names)
    order = names[r % k:] + names[:r % k]
    return order[::-1] if (r // k) % 2 else order


MAX_CELL_RUNS = 25


def run_cell(engines, lib_path, model, h, w, runs, warmup, settle, cell_s, tmp):
    """Times of `runs` timed runs per engine, or more, up to MAX_CELL_RUNS, where that many take
    under cell_s seconds for the slowest engine's warm-up."""
    procs = []
    try:
        for e in engines:
            procs.append(WorkerProc(e, lib_path, model["weights"], model["onnx"], h, w))
        for _ in range(warmup):
            for wp in procs:
                wp.ask("run")
        # One more untimed round, warm, to size the cell (a first run pays one-time costs).
        slowest = max(wp.ask("run")["t"] for wp in procs)
        runs = max(runs, min(MAX_CELL_RUNS, int(cell_s / slowest) if slowest > 0 else runs))
        times = {e: [] for e in engines}
        cpu = {e: [] for e in engines}
        for r in range(runs):
            for wp in run_order(procs, r):
                if settle:
                    time.sleep(settle)  # let the other engines' threads go idle first (see the docstring)
                reply = wp.ask("run")
                times[wp.engine].append(reply["t"])
                cpu[wp.engine].append(reply["cpu"])
        paths = {}
        for wp in procs:
            paths[wp.engine] = os.path.join(tmp, f"{wp.engine}-{h}x{w}.npy")
            wp.ask(f"save {paths[wp.engine]}")
        stats = {wp.engine: wp.close() for wp in procs}
    finally:
        for wp in procs:
            wp.kill()
    import numpy as np
    ours = np.load(paths["ours"])
    diffs = {}
    for e in engines[1:]:
        other = np.load(paths[e])
        diffs[e] = float(np.max(np.abs(ours - other))) if ours.shape == other.shape else float("inf")
    for p in paths.values():
        os.remove(p)
    return times, cpu, stats, diffs, runs


def engine_versions(peers):
    v = {}
    if "ort" in peers:
        import onnxruntime
        v["ort"] = onnxruntime.__version__
    if "ov" in peers:
        import openvino
        v["ov"] = openvino.__version__.split("-")[0]
    return v


def part_speed(f2a, lib_path, shipped_weights, shipped, snap, out, results):
    runs = env_int("BENCH_RUNS", 5)
    warmup = env_int("BENCH_WARMUP", 1)
    settle_ms = env_int("BENCH_SETTLE_MS", 100)
    cell_ms = env_int("BENCH_CELL_MS", 2000)
    quick = env_on("BENCH_QUICK", False)
    peers = os.environ.get("BENCH_PEERS", "").split() or list(PEERS)
    if not peers or any(p not in PEERS for p in peers):
        raise SystemExit(f"BENCH_PEERS: {' '.join(peers)!r}: give ort, ov or both")
    engines = ["ours"] + [p for p in PEERS if p in peers]
    spec, spec_from = cell_spec(shipped)
    cells = parse_cells(spec)
    versions = engine_versions(peers)
    print(f"== 1. engine speed: this engine (libflash2ambient via ctypes, f2a_apply_f32, F2A_MODE_FULL, "
          f"interleaved float RGB)")
    if "ort" in versions:
        print(f"   vs onnxruntime {versions['ort']} (CPUExecutionProvider, 2 intra-op threads, 1 inter-op, "
              f"sequential, ORT_ENABLE_ALL)")
    if "ov" in versions:
        print(f"   vs OpenVINO {versions['ov']} (CPU, INFERENCE_NUM_THREADS 2, PERFORMANCE_HINT LATENCY, "
              f"INFERENCE_PRECISION_HINT f32), both on the same ONNX file per model")
    if isa() != "native":
        print(f"   BENCH_ISA={isa()}: " + "; ".join(f"{e} with {' '.join(f'{k}={v}' for k, v in kv.items())}"
                                               for e, kv in ISA_ENV[isa()].items())
              + "; onnxruntime as this CPU is (no switch)")
    print(f"   {warmup} warm-up + 1 sizing + {runs} timed runs per engine and cell (up to {MAX_CELL_RUNS} where "
          f"they take under {cell_ms} ms: BENCH_CELL_MS), alternating (rotating order), "
          f"{settle_ms} ms pause before each (BENCH_SETTLE_MS); medians")
    print(f"   cells ({spec_from}): {spec}")
    print(f"   models: default = the shipped weights ({os.path.basename(shipped_weights)}: width "
          f"{shipped['width']:g}, {shipped['formulation']}); wA = f2a init --width A --seed {WEIGHT_SEED} "
          f"with the shipped model's levels/upsample/activation/formulation; wA/dB = the same with "
          f"--decoder-width B --formulation ratio-log (random weights cost what trained ones do)")
    if os.environ.get("OPENBLAS_NUM_THREADS"):
        print(f"   note: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']} is set")
    peak = fma_peak(snap)
    peak2 = peak.get(FMA_PEAK_THREADS)
    if peak:
        lanes = 16 if "avx512f" in cpu_flags() else 8
        print(f"   FMA peak measured now (bench/fma_peak.c, fp32 {lanes}-lane FMA ({'AVX-512' if lanes == 16 else 'AVX2'}), best of 5 x 0.25 s): "
              + ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.1f} GFLOP/s" for t, g in sorted(peak.items()))
              + f"; '% peak' below is against the {FMA_PEAK_THREADS}-thread figure "
              f"(/work/shared/notes/performance-anchors.md, an AVX2 machine: 96 per core, 192 for 2 threads)")
        one = peak.get(1)
        if peak2 and one and FMA_PEAK_THREADS > 1 and peak2 < 1.6 * one:
            print(f"   note: the {FMA_PEAK_THREADS}-thread peak is only {peak2 / one:.2f}x the 1-thread one: the "
                  f"machine is busy (or its CPUs share cores), and every figure of this run is low with it")
    models = {}
    rows = []
    header = (f"{'cell':<10} {'size':>9} {'GFLOP':>7} | " + " ".join(f"{ENGINES[e] if e != 'ours' else 'ours':>11}"
                                                                     for e in engines)
              + f" | {'faster peer':>11} {'ratio':>6}")
    print("   times: median seconds of one forward pass; ratio = faster peer's time / ours (> 1: ours is faster)")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="f2a-bench-") as tmp:
        for cell in cells:
            key, h, w = cell["model"], cell["h"], cell["w"]
            if key not in models:
                models[key] = prepare_model(f2a, shipped_weights, shipped, key, out)
            model = models[key]
            multiple = 1 << (model["info"]["levels"] - 1)
            if h % multiple or w % multiple:
                raise SystemExit(f"cell {key}@{w}x{h}: sizes must be multiples of {multiple}")
            g = gflop(model["info"], h, w)
            if quick and g > 1000:
                print(f"{key:<10} {f'{w}x{h}':>9} {g:>7.1f} | skipped (BENCH_QUICK)")
                continue
            t0 = time.time()
            times, cpu, stats, diffs, cell_runs = run_cell(engines, lib_path, model, h, w, runs, warmup,
                                                           settle_ms / 1000, cell_ms / 1000, tmp)
            med = {e: statistics.median(times[e]) for e in engines}
            best = min(engines[1:], key=lambda e: med[e])
            row = {"cell": f"{key}@{w}x{h}", "model": key, "width": model["info"]["width"],
                   "decoder_width": model["info"]["decoder_width"], "h": h, "w": w, "gflop": g,
                   "engines": {e: {"s": med[e], "times": times[e], "cpu_s": statistics.median(cpu[e]),
                                   "gflops": g / med[e],
                                   "peak_rss_mb": stats[e]["hwm_kb"] / 1024,
                                   "baseline_rss_mb": stats[e]["baseline_kb"] / 1024,
                                   **({"max_abs_diff": diffs[e]} if e in diffs else {})} for e in engines},
                   "best_peer": best, "ratio_best": med[best] / med["ours"],
                   "ratios": {e: med[e] / med["ours"] for e in engines[1:]},
                   "runs": cell_runs, "cell_seconds": time.time() - t0}
            rows.append(row)
            bad = [e for e in diffs if not diffs[e] <= TOLERANCE]
            print(f"{key:<10} {f'{w}x{h}':>9} {g:>7.1f} | " + " ".join(f"{med[e]:>11.4f}" for e in engines)
                  + f" | {ENGINES[best]:>11} {row['ratio_best']:>6.2f}"
                  + (f"  OUTPUT MISMATCH ({', '.join(bad)})" if bad else ""), flush=True)
    if not rows:
        return
    geo_best = geomean(r["ratio_best"] for r in rows)
    geo = {e: geomean(r["ratios"][e] for r in rows) for e in engines[1:]}
    results["speed"] = {"cells": rows, "engines": engines, "versions": versions, "cell_spec": spec,
                        "geomean_ratio_best": geo_best, "geomean_ratios": geo, "fma_peak_gflops": peak,
                        "runs": runs, "cell_ms": cell_ms, "warmup": warmup, "settle_ms": settle_ms, "isa": isa()}

    print("\n   per engine: median (min-max) s of the cell's n timed runs, effective GFLOP/s (direct-convolution FLOPs / median time) "
          "and % of the FMA peak, process CPU s per pass (all threads), peak RSS of the worker, "
          "max |output - ours|")
    for r in rows:
        for i, e in enumerate(engines):
            d = r["engines"][e]
            pct = f"{100 * d['gflops'] / peak2:>5.0f}%" if peak2 else "     -"
            diff = f"{d['max_abs_diff']:.1e}" if "max_abs_diff" in d else "-"
            label = f"{r['cell']} n={r['runs']}" if i == 0 else ""
            print(f"   {label:<24} {ENGINES[e]:<12} {d['s']:>8.4f} "
                  f"({min(d['times']):.4f}-{max(d['times']):.4f}) {d['gflops']:>7.1f} GFLOP/s {pct} "
                  f"CPU {d['cpu_s']:>7.3f} s  RSS {d['peak_rss_mb']:>5.0f} MB  |diff| {diff}")
    worst = max(r["engines"][e]["max_abs_diff"] for r in rows for e in engines[1:])
    print(f"outputs agree: max |ours - peer| over all cells {worst:.1e} "
          f"({'PASS' if worst <= TOLERANCE else 'FAIL'}, tolerance {TOLERANCE:g})")
    print("peak RSS (max over cells, whole worker process incl. Python+numpy): "
          + ", ".join(f"{ENGINES[e]} {max(r['engines'][e]['peak_rss_mb'] for r in rows):.0f} MB" for e in engines)
          + "; worker before the model is loaded: "
          + ", ".join(f"{e} {rows[0]['engines'][e]['baseline_rss_mb']:.0f} MB" for e in engines))
    # Process CPU time per pass (all threads): much less sensitive to other load than wall
    # time (the peers' spinning pool threads count, as they would cost wall time on a busy machine).
    geo_cpu = {e: geomean(r["engines"][e]["cpu_s"] / r["engines"]["ours"]["cpu_s"] for r in rows)
               for e in engines[1:]}
    results["speed"]["geomean_cpu_ratios"] = geo_cpu
    print("CPU-time ratios (peer CPU s / ours, geometric mean; a check when the machine is busy, not the "
          "headline): " + ", ".join(f"{ENGINES[e]} {v:.2f}" for e, v in geo_cpu.items()))
    if peak2:
        print("effective GFLOP/s, % of the measured FMA peak, geometric mean over cells: "
              + ", ".join(f"{ENGINES[e]} {geomean(r['engines'][e]['gflops'] for r in rows):.1f} "
                          f"({100 * geomean(r['engines'][e]['gflops'] for r in rows) / peak2:.0f}%)"
                          for e in engines))
    for e in engines[1:]:
        print(f"speed ratio vs {ENGINES[e].lower()}: {geo[e]:.2f}")
    print(speed_summary(results))
    print(f"   (per cell the faster peer's median / ours, geometric mean over {len(rows)} cells; "
          f"> 1 means this engine is faster)")


def speed_summary(results):
    s = results.get("speed")
    return f"speed ratio vs best peer: {s['geomean_ratio_best']:.2f}" if s else None


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


def run_child(cmd, env):
    """(wall seconds, peak RSS kB, exit status, output) of one child process, via wait4."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss, p.returncode, out.strip()


def launcher():
    """`bench.py --launcher`: runs the photo-level commands for the driver. One JSON request per line
    on stdin ({"cmd": [...], "env": {...}}), one JSON reply per line on stdout. A child's ru_maxrss
    includes the high-water RSS of the process that spawned it (vfork + exec keep the spawning
    address space's mark), and the driver grows to hundreds of MB while it converts models to ONNX;
    this process stays at ~10 MB, below any command measured."""
    for line in sys.stdin:
        req = json.loads(line)
        wall, maxrss_kb, status, out = run_child(req["cmd"], req["env"])
        print(json.dumps({"wall": wall, "maxrss_kb": maxrss_kb, "status": status, "output": out}), flush=True)
    return 0


class Launcher:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--launcher"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def timed_child(self, cmd, env):
        """(wall seconds, peak RSS MB, output) of cmd run by the launcher; RuntimeError if it fails."""
        self.p.stdin.write(json.dumps({"cmd": cmd, "env": env}) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"launcher died (exit {self.p.wait()})")
        r = json.loads(line)
        if r["status"] != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r['status']}):\n{r['output']}")
        return r["wall"], r["maxrss_kb"] / 1024, r["output"]

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def image_size(path):
    return int(sh(["vipsheader", "-f", "width", path])), int(sh(["vipsheader", "-f", "height", path]))


def make_photos(src, out, mps):
    """{mp: path}: JPEGs (quality 90) of about mp megapixels. From a file: `vips resize` (lanczos3)
    of it, keeping its aspect ratio and metadata; `synthetic`: make_photo's pattern at 4:3."""
    photos = {}
    for mp in mps:
        if src == "synthetic":
            w = round(math.sqrt(mp * 1e6 * 4 / 3))
            h = round(w * 3 / 4)
            path = os.path.join(out, f"synthetic-{w}x{h}.jpg")
            if not os.path.exists(path):
                make_photo(path, w, h, int(mp))
        else:
            sw, sh_ = image_size(src)
            scale = math.sqrt(mp * 1e6 / (sw * sh_))
            stem = os.path.splitext(os.path.basename(src))[0]
            path = os.path.join(out, f"photo-{stem}-{mp:g}MP.jpg")
            if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(src):
                sh(["vips", "resize", src, f"{path}.tmp.jpg[Q=90]", f"{scale:.6f}"])
                os.replace(f"{path}.tmp.jpg", path)
        photos[mp] = path
    return photos


def part_photo(snap, out, results):
    f2a = os.path.join(snap, "bin", "f2a")
    runs = env_int("BENCH_PHOTO_RUNS", 5)
    warmup = env_int("BENCH_PHOTO_WARMUP", 1)
    mps = [float(s) for s in os.environ.get("BENCH_PHOTO_SIZES", "12 24 48").split()]
    mps = [int(m) if m == int(m) else m for m in mps]
    src = os.environ.get("BENCH_PHOTO_SRC", "").strip() or os.path.join(ROOT, "examples", "flash.jpg")
    if src != "synthetic":
        src = os.path.abspath(src)
    info = model_info(f2a, os.path.join(snap, "share/flash2ambient/weights/default.f2aw"))
    # Both f2a and the module use the snapshot's shipped model (the one beside the binary /
    # the library): no F2A_MODEL, and no VIPSHOME except for the module.
    env = {k: v for k, v in os.environ.items() if k not in ("F2A_MODEL", "VIPSHOME")}
    vips_env = dict(env, VIPSHOME=os.path.join(snap, "vipshome"))
    out_jpg = {t: os.path.join(out, f"photo-out-{t}.jpg") for t in PHOTO_TOOLS}
    commands = {
        "copy": lambda photo: (["vips", "copy", photo, out_jpg["copy"]], env),
        "f2a": lambda photo: ([f2a, "apply", photo, out_jpg["f2a"], "--verbose"], env),
        "vfa": lambda photo: (["vips", "flash2ambient", photo, out_jpg["vfa"]], vips_env),
    }
    tools = list(PHOTO_TOOLS)
    if not os.path.exists(os.path.join(snap, "vipshome")):
        print("   (no build/vipshome: `make plugin` builds the vips module; vips flash2ambient skipped)")
        tools.remove("vfa")
    print(f"\n== 2. photo level: JPEG -> JPEG with the shipped model (width {info['width']:g}), each command a "
          f"child process; {warmup} warm-up + {runs} timed runs per command and size, alternating (rotating "
          f"order); median wall time, peak RSS (wait4 ru_maxrss, max over the timed runs)")
    print("   " + "; ".join(f"{PHOTO_TOOLS[t]}: {' '.join(os.path.basename(a) for a in commands[t]('IN.jpg')[0])}"
                           for t in tools) + " (VIPSHOME=snapshot/vipshome for the module; default modes, "
          "libvips' default JPEG quality for all three)")
    photos = make_photos(src, out, mps)
    what = ("the synthetic test pattern (make_photo)" if src == "synthetic"
            else f"{os.path.relpath(src, ROOT) if src.startswith(ROOT) else src} ({'x'.join(map(str, image_size(src)))}), "
                 f"upscaled with `vips resize` (lanczos3)")
    print(f"   photos: {what}, JPEG quality 90")
    sizes = []
    launch = Launcher()
    try:
        for mp in mps:
            photo = photos[mp]
            w, h = image_size(photo)
            entry = {"mp": mp, "path": photo, "width": w, "height": h, "bytes": os.path.getsize(photo), "tools": {}}
            walls = {t: [] for t in tools}
            rsss = {t: [] for t in tools}
            logs = {}
            failed = set()
            for r in range(warmup + runs):
                for t in run_order(tools, r):
                    if t in failed:
                        continue
                    cmd, cenv = commands[t](photo)
                    try:
                        wall, rss, log = launch.timed_child(cmd, cenv)
                    except RuntimeError as e:
                        print(f"   ERROR: {e}")
                        failed.add(t)
                        continue
                    if r >= warmup:
                        walls[t].append(wall)
                        rsss[t].append(rss)
                        logs[t] = log
            for t in tools:
                if walls[t]:
                    entry["tools"][t] = {"wall_s": statistics.median(walls[t]), "walls": walls[t],
                                         "peak_rss_mb": max(rsss[t]), "rss_mb": rsss[t], "log": logs.get(t, "")}
            base = entry["tools"].get("copy")
            for t in ("f2a", "vfa"):
                if base and t in entry["tools"]:
                    entry[f"ratio_{t}"] = entry["tools"][t]["wall_s"] / base["wall_s"]
            sizes.append(entry)
            print(f"   {mp:g} MP ({w}x{h}, {entry['bytes'] / 1e6:.1f} MB):")
            for t in tools:
                d = entry["tools"].get(t)
                if not d:
                    print(f"      {PHOTO_TOOLS[t]:<19} failed")
                    continue
                ratio = f", {d['wall_s'] / base['wall_s']:.2f}x vips copy" if base and t != "copy" else ""
                print(f"      {PHOTO_TOOLS[t]:<19} {d['wall_s']:.3f} s ({min(d['walls']):.3f}-{max(d['walls']):.3f})"
                      f"{ratio}, peak RSS {d['peak_rss_mb']:.0f} MB" + (f"   [{d['log']}]" if t == "f2a" else ""))
    finally:
        launch.close()
    for p in out_jpg.values():
        if os.path.exists(p):
            os.remove(p)
    results["photo"] = {"sizes": sizes, "runs": runs, "warmup": warmup, "source": src}
    for line in photo_summary(results):
        print(line)


def photo_summary(results):
    """Issue 19's photo-level lines: time ratios against vips copy and peak RSS per size."""
    p = results.get("photo")
    if not p or not p["sizes"]:
        return []
    sizes = p["sizes"]
    lines = []

    def mark(ok):
        return "PASS" if ok else "MISS"  # NaN (a failed run) compares False: MISS

    for t in ("f2a", "vfa"):
        if not any(t in x["tools"] for x in sizes):
            continue
        first = sizes[0]
        ratio = first.get(f"ratio_{t}", float("nan"))
        text = f"{PHOTO_TOOLS[t]} / vips copy at {first['mp']:g} MP: {ratio:.2f}"
        if first["mp"] == 12:
            text += f" (goal <= {PHOTO_GOAL_RATIO:g})  {mark(ratio <= PHOTO_GOAL_RATIO)}"
        lines.append(text)
        if len(sizes) > 1:
            lines.append(f"   {PHOTO_TOOLS[t]} / vips copy at " + ", ".join(
                f"{x['mp']:g} MP: {x.get(f'ratio_{t}', float('nan')):.2f}" for x in sizes[1:]))
    label = "/".join(f"{s['mp']:g}" for s in sizes)
    goals = [PHOTO_GOAL_RSS_MB.get(s["mp"]) for s in sizes]
    for t in ("f2a", "vfa", "copy"):
        if not any(t in x["tools"] for x in sizes):
            continue
        rss = [s["tools"].get(t, {}).get("peak_rss_mb", float("nan")) for s in sizes]
        text = f"peak RSS {PHOTO_TOOLS[t]} {label} MP: " + "/".join(f"{v:.0f}" for v in rss) + " MB"
        if t != "copy" and all(goals):
            ok = all(v <= g for v, g in zip(rss, goals))
            text += f" (goal <= {'/'.join(str(g) for g in goals)})  {mark(ok)}"
        lines.append(text)
    return lines


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
        model = prepare_model(os.path.join(out, "snapshot", "bin", "f2a"), None, shipped, tag, out)
        onnx_path, config = model["onnx"], model["config"]
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
        print(f"\n   width {width:g} ({gflop(model['info'], size, size):.1f} GFLOP): ours {total_ours:.0f} ms "
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
        return worker(*sys.argv[2:6], int(sys.argv[6]), int(sys.argv[7]))
    if len(sys.argv) > 1 and sys.argv[1] == "--launcher":
        return launcher()
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
    shipped_weights = os.path.join(snap, "share/flash2ambient/weights/default.f2aw")
    shipped = model_info(f2a, shipped_weights)
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
        part_speed(f2a, lib_path, shipped_weights, shipped, snap, out, results)
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
    # The headline figures again, the speed ratio last.
    summary = photo_summary(results) + [line for line in [speed_summary(results)] if line]
    if summary:
        print("\n== summary")
        for line in summary:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
