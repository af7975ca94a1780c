#!/usr/bin/env python3
"""make bench-train: f2a-train's training step against PyTorch's, on the same networks.

    build/venv-torch/bin/python bench/train/bench_train.py [BUILD_DIR] [options]   (run by `make bench-train`)

For each configuration (CONFIGS below, or --only NAME):

1. `f2a-train bench ... --write-models DIR` writes the configuration's generator (a
   .f2aw weights file) and, with a discriminator, the PatchGAN's parameters, both with
   f2a-train's initial values. PyTorch builds its networks from these files' tensor names
   and shapes (read with tools/onnx/f2a_to_onnx.py's reader), so the two cannot drift
   apart; the generator is then checked against f2a_to_onnx's numpy reference forward
   pass at a small size.
2. ROUNDS rounds, alternating `f2a-train bench --json` and a PyTorch worker (this script,
   `torch-worker`), each in a fresh process: one warm-up step, then STEPS timed steps of
   forward + loss + backward + Adam on random data of the same shapes. A process reports
   the median of its step times; samples/s = batch / that median.
3. Per configuration the medians over the rounds and f2a/torch samples/s; at the end the
   geometric mean of those ratios over the configurations:
   `training speed ratio vs pytorch: X` (> 1: f2a-train is faster).

What a PyTorch step does (mirror of Trainer.trainStep): the generator's forward pass
(frozen encoder blocks under no_grad, their parameters requires_grad=False and not
given to Adam), the reconstruction loss; with a discriminator: its loss on the detached
fake and the real pair, its backward and Adam step, then the adversarial term through
the updated discriminator (no discriminator parameter gradients); the generator's
backward and Adam step. Threads: torch.set_num_threads(THREADS), one inter-op thread;
f2a-train gets --threads THREADS (OpenBLAS) and uses one conv thread per core.
PyTorch runs on its default NCHW layout; --torch-channels-last runs it on NHWC tensors,
which oneDNN may prefer.

--isa avx2 runs both engines as on a CPU without AVX-512 (the AMD Zen 3 class the project
targets), on a machine that has it: f2a-train with F2A_AVX512=0 (its AVX2 kernels) and
OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE), PyTorch with ATEN_CPU_CAPABILITY=avx2 (ATen's
kernels) and ONEDNN_MAX_CPU_ISA=AVX2 (its convolutions); each worker reports what it ran.
"""

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "onnx"))

# Options of `f2a-train bench` each configuration may set, with f2a-train's defaults.
DEFAULTS = dict(width=1.0, decoder_width=None, levels=5, freeze_encoder_blocks=0, formulation="rgb",
                reconstruction="l1", crop=128, batch=8, discriminator="none", disc_width=0.5)

CONFIGS = [
    dict(name="w1.0", title="width 1.0, full training", width=1.0),
    dict(name="w0.125", title="width 0.125 (the shipped model's), full training", width=0.125),
    # The pretrained-encoder setup: HED's VGG-16 encoder frozen under a narrow decoder, trained
    # with the shipped recipe's loss, crop and batch (weights/recipe.json).
    dict(name="frozen", title="encoder 1.0 (blocks 1-5 frozen) + decoder 0.125, recipe loss",
         width=1.0, decoder_width=0.125, freeze_encoder_blocks=5, formulation="ratio-log",
         reconstruction="mse", crop=160, batch=4),
    dict(name="gan", title="width 0.25 + conditional PatchGAN (x0.5, instance norm)",
         width=0.25, discriminator="conditional"),
]

# TrainConfig's defaults for what a step computes (they do not change its cost, but the
# PyTorch side does the same arithmetic).
LR = 2e-4
BETAS = (0.5, 0.999)
RECONSTRUCTION_WEIGHT = 100.0
ADVERSARIAL_WEIGHT = 1.0
CHECK_TOLERANCE = 1e-4
# Fastest / slowest process of one engine and configuration above which the result is
# flagged as noisy.
NOISY_SPREAD = 1.3


def median(values):
    return statistics.median(values)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def load_line():
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f}"


# ==========================================================================
# PyTorch networks, built from f2a-train's parameter files


def build_generator(path, frozen_blocks, f2a):
    """The U-Net of Sources/F2AModel/GeneratorConfig.swift from a weights file's tensors."""
    import torch
    from torch import nn
    import torch.nn.functional as F
    from f2a_to_onnx import load_generator

    config, tensors = load_generator(path, f2a)
    if config.upsample != "transpose":
        raise SystemExit(f"{path}: upsample '{config.upsample}' is not mirrored here (only transpose)")
    name_re = re.compile(r"^(?:(enc|dec)(\d+)\.(?:conv(\d+)|(up))|(final))\.(weight|bias)$")
    enc, dec, up = {}, {}, {}
    for name in tensors:
        m = name_re.match(name)
        if not m:
            raise SystemExit(f"{path}: unexpected tensor '{name}'")
        part, block, conv, is_up, final, _ = m.groups()
        prefix = name.rsplit(".", 1)[0]
        if final:
            continue
        if is_up:
            up[int(block)] = prefix
        else:
            (enc if part == "enc" else dec).setdefault(int(block), {})[int(conv)] = prefix

    def module(prefix, transposed=False):
        w = torch.from_numpy(tensors[prefix + ".weight"].copy())
        if transposed:  # [in, out, 2, 2]
            m = nn.ConvTranspose2d(w.shape[0], w.shape[1], w.shape[2], stride=w.shape[2])
        else:           # [out, in, k, k]; 3x3 convs keep the size
            m = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
        with torch.no_grad():
            m.weight.copy_(w)
            m.bias.copy_(torch.from_numpy(tensors[prefix + ".bias"].copy()))
        return m

    def chain(convs):
        return nn.ModuleList(module(convs[j]) for j in sorted(convs))

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.levels = max(enc)
            self.frozen = frozen_blocks
            self.enc = nn.ModuleList(chain(enc[b]) for b in range(1, self.levels + 1))
            self.up = nn.ModuleList(module(up[b], transposed=True) for b in range(1, self.levels))
            self.dec = nn.ModuleList(chain(dec[b]) for b in range(1, self.levels))
            self.final = module("final")
            for b in range(frozen_blocks):
                self.enc[b].requires_grad_(False)

        def forward(self, flash):
            """(ambient estimate, raw activation output), both [N, 3, H, W]."""
            x = flash * 2 - 1
            skips = []
            for b in range(1, self.levels + 1):
                if b > 1:
                    skips.append(x)
                    x = F.max_pool2d(x, 2)
                # A frozen block keeps nothing for the backward pass, as in TrainableGenerator.
                with torch.no_grad() if b <= self.frozen else contextlib.nullcontext():
                    for conv in self.enc[b - 1]:
                        x = F.relu(conv(x), inplace=True)
            for b in range(self.levels - 1, 0, -1):
                x = F.relu(self.up[b - 1](x), inplace=True)
                x = torch.cat([x, skips[b - 1]], 1)
                for conv in self.dec[b - 1]:
                    x = F.relu(conv(x), inplace=True)
            z = self.final(x)
            raw = torch.sigmoid(z) if config.activation == "sigmoid" else (torch.tanh(z) + 1) / 2
            if config.formulation == "ratio-log":
                return torch.clamp((flash + 1) * torch.exp2(2 * raw - 1) - 1, 0, 1), raw
            return raw, raw

    return Generator(), config, tensors


def build_discriminator(path):
    """Sources/F2ATrain/Discriminator.swift's PatchGAN from its parameter file: conv
    shapes from the tensors, strides, padding, norm and activation from the config."""
    import torch
    from torch import nn
    from f2a_to_onnx import read_f2aw

    config, tensors, _ = read_f2aw(path)
    if config.get("architecture") != "patchgan":
        raise SystemExit(f"{path}: not a PatchGAN parameter file")
    norm_kind, slope = config["norm"], config["leaky_relu_slope"]
    layers = []
    for i in range(config["layers"]):
        w = torch.from_numpy(tensors[f"D.conv{i}.weight"].copy())
        conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=config[f"conv{i}.stride"],
                         padding=config[f"conv{i}.padding"])
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(torch.from_numpy(tensors[f"D.conv{i}.bias"].copy()))
        layers.append(conv)
        if config[f"conv{i}.norm"]:
            # Affine, eps 1e-5, biased variance, statistics of the batch being trained on.
            norm = (nn.InstanceNorm2d(w.shape[0], affine=True) if norm_kind == "instance"
                    else nn.BatchNorm2d(w.shape[0], track_running_stats=False))
            with torch.no_grad():
                norm.weight.copy_(torch.from_numpy(tensors[f"D.norm{i}.gamma"].copy()))
                norm.bias.copy_(torch.from_numpy(tensors[f"D.norm{i}.beta"].copy()))
            layers.append(norm)
        if config[f"conv{i}.activation"]:
            layers.append(nn.LeakyReLU(slope, inplace=True))
    return nn.Sequential(*layers), config["input_channels"]


# ==========================================================================
# Worker: one PyTorch process, one configuration


def torch_setup(threads):
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    return torch


def torch_worker(args):
    torch = torch_setup(args.threads)
    import torch.nn.functional as F

    G, gconfig, _ = build_generator(os.path.join(args.models, "generator.f2aw"), args.freeze_encoder_blocks, args.f2a)
    d_path = os.path.join(args.models, "discriminator.f2aw")
    D, d_channels = build_discriminator(d_path) if os.path.exists(d_path) else (None, 0)
    optG = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=LR, betas=BETAS)
    optD = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS) if D is not None else None

    gen = torch.Generator().manual_seed(1)
    shape = (args.batch, 3, args.crop, args.crop)
    batches = [(torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)) for _ in range(2)]
    if args.channels_last:
        layout = torch.channels_last
        G.to(memory_format=layout)
        if D is not None:
            D.to(memory_format=layout)
        batches = [tuple(t.contiguous(memory_format=layout) for t in b) for b in batches]

    def d_input(flash, image):
        image = image * 2 - 1
        return torch.cat([flash * 2 - 1, image], 1) if d_channels == 6 else image

    def bce(logits, target):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def step(flash, ambient):
        out, raw = G(flash)
        if args.reconstruction == "mse":
            rec = F.mse_loss(out, ambient)
        elif gconfig.formulation == "ratio-log":
            rec = F.mse_loss(raw, 0.5 * torch.log2((ambient + 1) / (flash + 1)) + 0.5)
        elif args.reconstruction == "attention-l1":
            attention = 1 - (flash - ambient).abs().mean(1, keepdim=True)
            rec = (attention * (out - ambient).abs()).mean()
        else:
            rec = F.l1_loss(out, ambient)
        loss = RECONSTRUCTION_WEIGHT * rec
        if D is not None:
            optD.zero_grad(set_to_none=True)
            fake_in = d_input(flash, out.detach())
            d_loss = 0.5 * (bce(D(fake_in), 0.0) + bce(D(d_input(flash, ambient)), 1.0))
            d_loss.backward()
            optD.step()
            D.requires_grad_(False)
            loss = loss + ADVERSARIAL_WEIGHT * bce(D(d_input(flash, out)), 1.0)
        optG.zero_grad(set_to_none=True)
        loss.backward()
        optG.step()
        if D is not None:
            D.requires_grad_(True)

    step(*batches[0])
    times = []
    for s in range(args.steps):
        t0 = time.perf_counter()
        step(*batches[(s + 1) % len(batches)])
        times.append(time.perf_counter() - t0)
    med = median(times)
    print(json.dumps({
        "engine": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "channels_last": args.channels_last,
        "crop": args.crop, "batch": args.batch,
        "generator_parameters": sum(p.numel() for p in G.parameters()),
        "trainable_generator_parameters": sum(p.numel() for p in G.parameters() if p.requires_grad),
        "discriminator_parameters": sum(p.numel() for p in D.parameters()) if D is not None else 0,
        "step_ms": [round(t * 1000, 3) for t in times], "median_step_ms": med * 1000,
        "samples_per_s": args.batch / med,
    }), flush=True)


def torch_check(args):
    """The PyTorch generator against f2a_to_onnx's numpy reference on a small input."""
    torch = torch_setup(args.threads)
    import numpy as np
    from f2a_to_onnx import reference_forward

    G, config, tensors = build_generator(os.path.join(args.models, "generator.f2aw"), args.freeze_encoder_blocks, args.f2a)
    size = 2 * config.size_multiple
    flash = np.random.default_rng(3).random((1, 3, size, size), dtype=np.float32)
    with torch.no_grad():
        ours = G(torch.from_numpy(flash))[0].numpy()
    diff = float(np.abs(ours - reference_forward(config, tensors, flash)).max())
    print(json.dumps({"max_abs_diff": diff, "size": size}), flush=True)
    return 0 if diff <= CHECK_TOLERANCE else 1


# ==========================================================================
# Driver


# Environment of each engine's processes per --isa (see the docstring).
ISA_ENV = {
    "native": {"f2a-train": {}, "pytorch": {}},
    "avx2": {"f2a-train": {"F2A_AVX512": "0", "OPENBLAS_CORETYPE": "Haswell"},
             "pytorch": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}},
}


def f2a_bench_args(c):
    args = ["--width", str(c["width"]), "--levels", str(c["levels"]),
            "--freeze-encoder-blocks", str(c["freeze_encoder_blocks"]), "--formulation", c["formulation"],
            "--reconstruction", c["reconstruction"], "--crop", str(c["crop"]), "--batch", str(c["batch"]),
            "--discriminator", c["discriminator"], "--disc-width", str(c["disc_width"])]
    if c["decoder_width"] is not None:
        args += ["--decoder-width", str(c["decoder_width"])]
    return args


def run_json(cmd, what, env=None):
    """Runs a worker process (with `env` added to the environment); its last stdout line is a JSON object."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env={**os.environ, **env} if env else None)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def describe(c):
    loss = {"l1": "L1", "mse": "MSE on the image", "attention-l1": "attention L1"}[c["reconstruction"]]
    if c["formulation"] == "ratio-log" and c["reconstruction"] != "mse":
        loss = "MSE on the log ratio"
    return f"crop {c['crop']}, batch {c['batch']}, {c['formulation']}, {loss}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"), help="build directory (default: build)")
    ap.add_argument("--f2a-train", help="f2a-train binary (default: BUILD/bin/f2a-train)")
    ap.add_argument("--rounds", type=int, default=3, help="processes per engine and configuration (default 3)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per process, after one warm-up step (default 5)")
    ap.add_argument("--threads", type=int, default=2, help="threads of either engine (default 2)")
    ap.add_argument("--only", action="append", choices=[c["name"] for c in CONFIGS],
                    help="run only this configuration (repeatable)")
    ap.add_argument("--crop", type=int, help="override every configuration's crop (for trying the script)")
    ap.add_argument("--batch", type=int, help="override every configuration's batch")
    ap.add_argument("--torch-channels-last", action="store_true",
                    help="PyTorch on NHWC tensors (torch.channels_last) instead of its default NCHW")
    ap.add_argument("--out", help="models, binary snapshot and results.json (default: BUILD/bench-train)")
    ap.add_argument("--isa", choices=sorted(ISA_ENV), default="native",
                    help="avx2: both engines as on a CPU without AVX-512 (default native: what this CPU has)")
    args = ap.parse_args()
    env = ISA_ENV[args.isa]

    out = args.out or os.path.join(args.build, "bench-train")
    os.makedirs(out, exist_ok=True)
    # A snapshot, so that a rebuild of build/ during the run changes nothing measured.
    f2a_train = os.path.join(out, "f2a-train")
    shutil.copy2(args.f2a_train or os.path.join(args.build, "bin", "f2a-train"), f2a_train)
    me = [sys.executable, os.path.abspath(__file__)]

    # The driver only reads the version: importing torch here would keep its memory and
    # threads around while the workers are timed.
    torch_version = importlib.metadata.version("torch")
    layout = "NHWC (channels_last)" if args.torch_channels_last else "NCHW"
    print(f"f2a-train bench vs PyTorch {torch_version} ({layout}): {args.rounds} rounds, {args.steps} timed steps per "
          f"process (+1 warm-up), {args.threads} threads; {os.cpu_count()} CPUs; {load_line()}", flush=True)
    if args.isa != "native":
        print(f"--isa {args.isa}: " + "; ".join(f"{e} with {' '.join(f'{k}={v}' for k, v in kv.items())}"
                                               for e, kv in env.items()), flush=True)

    results = []
    for base in CONFIGS:
        if args.only and base["name"] not in args.only:
            continue
        c = {**DEFAULTS, **base}
        if args.crop:
            c["crop"] = args.crop
        if args.batch:
            c["batch"] = args.batch
        bench_args = f2a_bench_args(c)
        models = os.path.join(out, "models", c["name"])
        shutil.rmtree(models, ignore_errors=True)
        subprocess.run([f2a_train, "bench", *bench_args, "--write-models", models], check=True, stdout=subprocess.DEVNULL)
        # f2a only lists the generator's layers (f2a info --layers), outside the timed steps.
        worker_args = ["--models", models, "--f2a", os.path.join(args.build, "bin", "f2a"),
                       "--freeze-encoder-blocks", str(c["freeze_encoder_blocks"]),
                       "--reconstruction", c["reconstruction"], "--threads", str(args.threads)]
        check = run_json([*me, "torch-check", *worker_args], "torch-check")
        print(f"\n## {c['title']}\n{describe(c)}; PyTorch generator = numpy reference to "
              f"{check['max_abs_diff']:.1e} at {check['size']}²; {load_line()}", flush=True)

        runs = {"f2a-train": [], "pytorch": []}
        for r in range(args.rounds):
            f = run_json([f2a_train, "bench", *bench_args, "--threads", str(args.threads), "--steps", str(args.steps),
                          "--json"], "f2a-train bench", env["f2a-train"])
            t = run_json([*me, "torch-worker", *worker_args, "--crop", str(c["crop"]), "--batch", str(c["batch"]),
                          "--steps", str(args.steps)] + (["--channels-last"] if args.torch_channels_last else []),
                         "torch-worker", env["pytorch"])
            for k, v in (("generator_parameters", "generator parameters"),
                         ("trainable_generator_parameters", "trainable generator parameters"),
                         ("discriminator_parameters", "discriminator parameters")):
                if f[k] != t[k]:
                    raise SystemExit(f"{c['name']}: {v} differ: f2a-train {f[k]}, PyTorch {t[k]}")
            if r == 0 and not results:
                print(f"f2a-train's OpenBLAS kernels: {f.get('blas_kernels', '?')}, AVX-512 kernels: "
                      f"{f.get('avx512', '?')}; PyTorch's CPU capability: {t.get('cpu_capability', '?')}", flush=True)
            runs["f2a-train"].append(f)
            runs["pytorch"].append(t)
            print(f"  round {r + 1}: f2a-train {f['median_step_ms']:.0f} ms/step {f['samples_per_s']:.2f} samples/s, "
                  f"PyTorch {t['median_step_ms']:.0f} ms/step {t['samples_per_s']:.2f} samples/s", flush=True)

        summary = {e: {"median_step_ms": median([x["median_step_ms"] for x in v]),
                       "samples_per_s": median([x["samples_per_s"] for x in v]),
                       "spread_samples_per_s": [min(x["samples_per_s"] for x in v), max(x["samples_per_s"] for x in v)]}
                   for e, v in runs.items()}
        ratio = summary["f2a-train"]["samples_per_s"] / summary["pytorch"]["samples_per_s"]
        print(f"\n| engine | median step | samples/s (median) | spread ({args.rounds} processes) |\n|---|---|---|---|")
        for e, s in summary.items():
            lo, hi = s["spread_samples_per_s"]
            print(f"| {e} | {s['median_step_ms']:.0f} ms | {s['samples_per_s']:.2f} | {lo:.2f}–{hi:.2f} |")
        print(f"\nf2a-train / PyTorch: {ratio:.2f}  ({load_line()})", flush=True)
        results.append({"config": c, "check": check, "runs": runs, "summary": summary, "ratio": ratio})

    print("\n| configuration | f2a-train samples/s | PyTorch samples/s | ratio |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['config']['title']} ({describe(r['config'])}) | {r['summary']['f2a-train']['samples_per_s']:.2f} | "
              f"{r['summary']['pytorch']['samples_per_s']:.2f} | {r['ratio']:.2f} |")
    # A configuration whose processes disagree this much measured the host as much as the
    # engines (one slow phase of a shared host can triple a process's steps): say so.
    for r in results:
        r["noisy"] = [e for e, sm in r["summary"].items()
                      if sm["spread_samples_per_s"][1] > NOISY_SPREAD * sm["spread_samples_per_s"][0]]
        if r["noisy"]:
            print(f"noisy: {r['config']['name']}: {', '.join(r['noisy'])} samples/s spread over more than "
                  f"{NOISY_SPREAD:.2f}x between processes; rerun it on a quieter machine (--only {r['config']['name']})")
    overall = geomean([r["ratio"] for r in results])
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump({"torch": torch_version, "torch_channels_last": args.torch_channels_last, "isa": args.isa,
                   "rounds": args.rounds, "steps": args.steps, "threads": args.threads,
                   "configurations": results, "ratio": overall, "time": int(time.time())}, fh, indent=1)
    print(f"\nresults: {os.path.join(out, 'results.json')}")
    print(f"training speed ratio vs pytorch: {overall:.2f}")
    return 0


def worker_main(argv):
    ap = argparse.ArgumentParser(prog=f"bench_train.py {argv[0]}")
    ap.add_argument("--models", required=True)
    ap.add_argument("--f2a", required=True)
    ap.add_argument("--freeze-encoder-blocks", type=int, default=0)
    ap.add_argument("--reconstruction", default="l1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args(argv[1:])
    return torch_worker(args) if argv[0] == "torch-worker" else torch_check(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("torch-worker", "torch-check"):
        sys.exit(worker_main(sys.argv[1:]) or 0)
    sys.exit(main())
