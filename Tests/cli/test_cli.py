#!/usr/bin/env python3
"""End-to-end tests of f2a apply, eval and info as a user drives them (run by `make test-cli`).

Standard input and output (`-`), --format, the terminal refusals, the progress line on a
terminal, --quiet, eval --names/--split, numbers as people read them, info --layers (the layer
list as JSON), and guided mode streamed from the file against the whole-image path
(F2A_NO_STREAM=1) on 8- and 16-bit, alpha, CMYK, grey and EXIF-rotated inputs, standard input
and output, a truncated JPEG, and a JPEG large enough that pass 1 reads it shrunk on load (close,
not equal, to the whole-image path). Small images made with the vips tools; standard library
only. Prints one line per check and "cli: N passed, M failed" (Tests/lib/checks.py); exits 1
on any failure.

Usage: test_cli.py [F2A] [WEIGHTS]   (defaults: build/bin/f2a, weights/default.f2aw)
"""
import json
import math
import os
import pty
import re
import select
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F2A = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build/bin/f2a")
MODEL = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.join(ROOT, "weights/default.f2aw")
sys.path.insert(0, os.path.join(ROOT, "Tests", "lib"))
from checks import check, finish, workdir  # noqa: E402

W = workdir("f2a-cli-test-")


def env(**extra):
    e = {k: v for k, v in os.environ.items() if k not in ("F2A_MODEL", "F2A_MAX_MEMORY_MB", "F2A_NO_STREAM")}
    e.update(extra)
    return e


def f2a(*args, stdin=None, timeout=120, **extra_env):
    """f2a ARGS --model MODEL in W with bytes on stdin; CompletedProcess with bytes."""
    return subprocess.run([F2A, *args, "--model", MODEL], input=stdin, cwd=W, env=env(**extra_env),
                          capture_output=True, timeout=timeout)


def on_terminal(args, stdin=subprocess.DEVNULL, stdout=None):
    """f2a ARGS with stderr (and stdout unless given) on a pseudo-terminal: (exit code, what the terminal showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([F2A, *args, "--model", MODEL], cwd=W, env=env(TERM="xterm"), stdin=stdin,
                            stdout=slave if stdout is None else stdout, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def header(path, field):
    r = subprocess.run(["vipsheader", "-f", field, path], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def p(*parts):
    return os.path.join(W, *parts)


def leftovers():
    return sorted(n for n in os.listdir(W) if ".f2a-tmp-" in n)


subprocess.run(["vips", "thumbnail", os.path.join(ROOT, "examples", "flash.jpg"), p("in.jpg"), "96"], check=True)
subprocess.run(["vips", "thumbnail", os.path.join(ROOT, "examples", "flash.jpg"), p("big.jpg"), "1200"], check=True)
photo = open(p("in.jpg"), "rb").read()

# --- standard input and output --------------------------------------------------------------
r = f2a("apply", "-", "-", stdin=photo)
open(p("stdio.bin"), "wb").write(r.stdout)
check("apply - -: a JPEG on stdout by default", r.returncode == 0 and r.stdout[:3] == b"\xff\xd8\xff"
      and header(p("stdio.bin"), "width") == header(p("in.jpg"), "width"), r.stderr)
for fmt, magic in (("png", b"\x89PNG"), ("tiff", b"II*\x00"), ("webp", b"RIFF")):
    r = f2a("apply", "in.jpg", "-", "--format", fmt)
    check(f"apply in.jpg - --format {fmt}: {fmt} bytes on stdout", r.returncode == 0 and r.stdout[:4] == magic,
          r.stderr)
r = f2a("apply", "-", "from-stdin.png", stdin=photo)
check("apply - out.png: the image from stdin written to a file", r.returncode == 0
      and header(p("from-stdin.png"), "width") == header(p("in.jpg"), "width"), r.stderr)
check("standard output: no temporary file left", leftovers() == [], leftovers())
r = f2a("apply", "in.jpg", "-", "--verbose")
check("apply in.jpg - --verbose: the timing goes to stderr, stdout is only the image",
      r.returncode == 0 and r.stdout[:3] == b"\xff\xd8\xff" and b"load" in r.stderr, r.stderr)
for label, data, message in (("empty", b"", b"it is empty"), ("not an image", b"hello\n", b"not in a known format")):
    r = f2a("apply", "-", "x.jpg", stdin=data)
    check(f"apply - with {label} stdin: exit 1, a clear error", r.returncode == 1 and message in r.stderr
          and not os.path.exists(p("x.jpg")), r.stderr)
r = f2a("apply", "in.jpg", "x.jpg", "--format", "png")
check("--format with a file output: a usage error (the suffix decides)", r.returncode == 64 and b"--format" in r.stderr,
      r.stderr)
r = subprocess.run([F2A, "apply", "-", "x.jpg", "--model", MODEL], input=photo + bytes(2 << 20), cwd=W,
                   capture_output=True, env=env(F2A_MAX_MEMORY_MB="1"), timeout=60)
check("apply - with 2 MB on stdin under F2A_MAX_MEMORY_MB=1: refused while reading (exit 1)",
      r.returncode == 1 and b"standard input: it holds more than 1 MB" in r.stderr, r.stderr)

# --- terminals ------------------------------------------------------------------------------
rc, shown = on_terminal(["apply", "in.jpg", "-"])
check(f"apply in.jpg - with stdout a terminal: refused (exit {rc}), no image bytes on it",
      rc == 2 and "refusing to write image data to a terminal" in shown and "\ufffd" not in shown, shown)
master, slave = pty.openpty()
rc, shown = on_terminal(["apply", "-", "tty-in.jpg"], stdin=slave, stdout=subprocess.DEVNULL)
os.close(slave)
os.close(master)
check(f"apply - with stdin a terminal: refused at once (exit {rc})",
      rc == 2 and "standard input is a terminal" in shown and not os.path.exists(p("tty-in.jpg")), shown)

# --- progress and --quiet -------------------------------------------------------------------
rc, shown = on_terminal(["apply", "big.jpg", "tiled.jpg", "--mode", "tiled", "--tile-size", "256"])
percents = [int(m) for m in re.findall(r"running the model (\d+) %", shown)]
check(f"apply on a terminal: a progress line redrawn in place ({len(percents)} updates)",
      rc == 0 and len(percents) >= 3 and percents == sorted(percents) and "\r\x1b[K" in shown
      and shown.endswith("\r\x1b[K"), shown[-300:])
# The default (streamed guided) mode spends most of a large photo in pass 2, mapping regions
# on libvips' threads while it encodes: that part has a percentage too.
subprocess.run(["vips", "resize", os.path.join(ROOT, "examples", "flash.jpg"), p("huge.jpg"), "11"], check=True)
rc, shown = on_terminal(["apply", "huge.jpg", "huge-out.jpg"])
percents = [int(m) for m in re.findall(r"writing huge-out.jpg (\d+) %", shown)]
megapixels = int(subprocess.check_output(["vipsheader", "-f", "width", p("huge.jpg")])) * \
    int(subprocess.check_output(["vipsheader", "-f", "height", p("huge.jpg")])) / 1e6
check(f"apply of a {megapixels:.0f} MP JPEG in the default mode on a terminal: "
      f"pass 2 counts up to 100 % ({len(percents)} updates)",
      rc == 0 and len(percents) >= 3 and percents == sorted(percents) and percents[-1] == 100
      and shown.endswith("\r\x1b[K"), shown[-300:])
with open(p("huge-stdout.jpg"), "wb") as sink:
    rc, shown = on_terminal(["apply", "huge.jpg", "-"], stdout=sink)
percents = [int(m) for m in re.findall(r"writing to standard output (\d+) %", shown)]
check(f"the same to standard output (a file): 'writing to standard output' counts up to 100 % ({len(percents)} updates)",
      rc == 0 and len(percents) >= 3 and percents == sorted(percents) and percents[-1] == 100
      and os.path.getsize(p("huge-stdout.jpg")) > 0, shown[-300:])
rc, shown = on_terminal(["apply", "big.jpg", "tiled-q.jpg", "--mode", "tiled", "--tile-size", "256", "-q"])
check("apply --quiet on a terminal: nothing shown", rc == 0 and shown == "", shown[-200:])
r = f2a("apply", "big.jpg", "tiled-pipe.jpg", "--mode", "tiled", "--tile-size", "256")
check("apply with stderr not a terminal: no progress line", r.returncode == 0 and r.stderr == b"", r.stderr[-200:])
r = f2a("apply", "in.jpg", "x.jpg", "-q", "--verbose")
check("--quiet with --verbose: a usage error", r.returncode == 64, r.stderr)

# --- numbers as people read them ------------------------------------------------------------
r = f2a("apply", "in.jpg", "timed.jpg", "--verbose")
timing = r.stdout.decode()
check("--verbose: durations in ms or s with at most 3 significant digits",
      re.fullmatch(r"\d+x\d+ \(\w+\): load [\d.]+ m?s, model [\d.]+ m?s, save [\d.]+ m?s\n", timing) is not None
      and all(len(d.replace(".", "").lstrip("0")) <= 3 for d in re.findall(r"([\d.]+) m?s", timing)), timing)
r = subprocess.run([F2A, "info", MODEL], cwd=W, env=env(), capture_output=True, text=True, timeout=60)
cost = re.search(r"cost: +([\d.]+) GFLOP", r.stdout)
check("info: the cost in GFLOP with 3 significant digits", cost is not None
      and len(cost.group(1).replace(".", "").lstrip("0")) <= 3, r.stdout)
params = re.search(r"parameters: +(\d+) in (\d+) tensors", r.stdout)
r = subprocess.run([F2A, "info", "--layers", MODEL], cwd=W, env=env(), capture_output=True, text=True, timeout=60)
try:
    described = json.loads(r.stdout)
except ValueError as e:
    described = {"layers": [], "error": str(e)}
layers = described["layers"]
# VGG-16's blocks (2, 2, 3, 3, 3 convs), then the decoder back up levels 4 to 1, as in GeneratorConfig.
convs = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}
expected = ([f"enc{b}.conv{j}" for b in range(1, 6) for j in range(1, convs[b] + 1)]
            + [n for b in range(4, 0, -1) for n in [f"dec{b}.up"] + [f"dec{b}.conv{j}" for j in range(1, convs[b] + 1)]]
            + ["final"])
check(f"info --layers: the shipped model's {len(expected)} layers (13 encoder, 14 decoder, final) in order",
      r.returncode == 0 and [layer["name"] for layer in layers] == expected, r.stdout + r.stderr)
check("info --layers: pooled before enc2-5, the skip at each decoder level's first conv",
      [layer["name"] for layer in layers if layer["input"] == "pooled"] == [f"enc{b}.conv1" for b in range(2, 6)]
      and [layer["name"] for layer in layers if layer["input"] == "withSkip"] == [f"dec{b}.conv1" for b in range(4, 0, -1)]
      and [layer["kind"] for layer in layers].count("upsample") == 4 and layers[-1]["kind"] == "output", r.stdout)
check("info --layers: the weight and bias shapes add up to info's parameter and tensor counts",
      params is not None and 2 * len(layers) == int(params.group(2))
      and sum(math.prod(layer["weight"]) + math.prod(layer["bias"]) for layer in layers) == int(params.group(1)),
      r.stdout)
r = f2a("apply", "in.jpg", "x.jpg", "--quality", "500")
check("a range in words, not Swift's 0...100", b"from 0 to 100" in r.stderr and b"..." not in r.stderr, r.stderr)
r = f2a("apply", "in.jpg", "no-such-dir/x.jpg")
check("a failed save names the output, not its temporary file",
      r.returncode == 1 and b"no-such-dir/x.jpg" in r.stderr and b".f2a-tmp-" not in r.stderr, r.stderr)

# --- guided mode streamed (the default) against the whole-image path --------------------------
def max_difference(a, b, bands=None):
    """Largest difference of any band (or of band `bands`) between two images (vips tools); None on error."""
    steps = [f"vips extract_band {x} {W}/{n}.v {bands}" for x, n in ((a, "da"), (b, "db"))] if bands is not None \
        else [f"vips copy {a} {W}/da.v", f"vips copy {b} {W}/db.v"]
    r = subprocess.run(" && ".join(steps + [f"vips subtract {W}/da.v {W}/db.v {W}/dd.v", f"vips abs {W}/dd.v {W}/dabs.v",
                                            f"vips max {W}/dabs.v"]), shell=True, capture_output=True, text=True)
    return float(r.stdout) if r.returncode == 0 else None


def fields(path):
    """Every header field but the file's name, as vipsheader -a prints them (metadata included)."""
    r = subprocess.run(["vipsheader", "-a", path], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines()[1:] if not line.startswith("filename:")]


def exif_jpeg(src, dst, orientation):
    """dst: the JPEG src with an EXIF segment holding only the orientation tag."""
    data = open(src, "rb").read()
    ifd = (b"II*\0" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little")
           + (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
           + orientation.to_bytes(2, "little") + b"\0\0" + (0).to_bytes(4, "little"))
    payload = b"Exif\0\0" + ifd
    open(dst, "wb").write(data[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:])


def vips(*args):
    subprocess.run(["vips", *args], check=True, cwd=W, capture_output=True)


vips("thumbnail", os.path.join(ROOT, "examples", "flash.jpg"), "s8.jpg", "320")   # 240x320
vips("colourspace", "s8.jpg", "s16.png", "rgb16")
vips("colourspace", "s8.jpg", "grey.jpg", "b-w")
vips("icc_transform", "s8.jpg", "cmyk.jpg", "cmyk")
vips("extract_band", "s8.jpg", "alpha.v", "1")
vips("bandjoin", "s8.jpg alpha.v", "rgba.png")
exif_jpeg(p("s8.jpg"), p("rot6.jpg"), 6)
exif_jpeg(p("s8.jpg"), p("mirror.jpg"), 2)
# (input, output suffix, largest difference allowed: 1/255 at 8 bits, 2 codes at 16)
for src, suffix, limit in (("s8.jpg", ".jpg", 1), ("s8.jpg", ".png", 1), ("s16.png", ".png", 2),
                           ("rgba.png", ".png", 1), ("cmyk.jpg", ".jpg", 1), ("grey.jpg", ".jpg", 1),
                           ("rot6.jpg", ".jpg", 1), ("mirror.jpg", ".png", 1)):
    stem = src.split(".")[0]
    streamed, whole = f"st-{stem}{suffix}", f"wh-{stem}{suffix}"
    r = f2a("apply", src, streamed, "--verbose")
    w = f2a("apply", src, whole, "--verbose", F2A_NO_STREAM="1")
    diff = max_difference(p(streamed), p(whole)) if r.returncode == w.returncode == 0 else None
    check(f"apply {src} {suffix}: streamed = whole-image path (max difference {diff}, at most {limit})",
          diff is not None and diff <= limit and b"(guided)" in r.stdout and b"(guided)" in w.stdout,
          r.stderr + w.stderr)
    check(f"apply {src} {suffix}: streamed output has the whole-image output's header and metadata",
          fields(p(streamed)) == fields(p(whole)) and fields(p(streamed)) != [],
          "\n".join(set(fields(p(streamed))) ^ set(fields(p(whole)))))
# A JPEG four times the working size on both axes: pass 1 reads it shrunk on load (JPEG's DCT
# scaling, here by 2), so the network sees a copy that differs from the full decode's average by
# the scaling, and the output differs from the whole-image path's a little. Measured at most 10/255
# on single pixels and 0.06-0.33/255 on average (12 and 24 MP JPEGs, the faid32 validation flash
# images as JPEGs); allowed: 16/255 and 0.5/255.
def mean_difference(a, b):
    r = subprocess.run(f"vips subtract {a} {b} {W}/da.v && vips abs {W}/da.v {W}/dabs.v && vips avg {W}/dabs.v",
                       shell=True, capture_output=True, text=True)
    return float(r.stdout) if r.returncode == 0 else None


vips("resize", os.path.join(ROOT, "examples", "flash.jpg"), "big.jpg", "2")   # 1080x1440
exif_jpeg(p("big.jpg"), p("bigrot6.jpg"), 6)
for src in ("big.jpg", "bigrot6.jpg"):
    stem = src.split(".")[0]
    r = f2a("apply", src, f"st-{stem}.png", "--verbose")
    w = f2a("apply", src, f"wh-{stem}.png", "--verbose", F2A_NO_STREAM="1")
    ok = r.returncode == w.returncode == 0
    diff = max_difference(p(f"st-{stem}.png"), p(f"wh-{stem}.png")) if ok else None
    mean = mean_difference(p(f"st-{stem}.png"), p(f"wh-{stem}.png")) if ok else None
    check(f"apply {src} (pass 1 shrunk on load): close to the whole-image path (max {diff}, mean {mean}; "
          "at most 16, 0.5)", diff is not None and mean is not None and diff <= 16 and mean <= 0.5
          and fields(p(f"st-{stem}.png")) == fields(p(f"wh-{stem}.png")), r.stderr + w.stderr)
check("apply bigrot6.jpg: turned upright", header(p("st-bigrot6.png"), "width") == "1440")
check("apply rgba.png: the alpha band passes through unchanged", max_difference(p("rgba.png"), p("st-rgba.png"), 3) == 0)
def summary(path):
    """vipsheader's line for path without the name: '240x320 uchar, 4 bands, cmyk, jpegload'."""
    r = subprocess.run(["vipsheader", path], capture_output=True, text=True)
    return r.stdout.split(": ", 1)[-1].strip()


for src, want in (("s16.png", "240x320 ushort, 3 bands, rgb16, pngload"), ("rgba.png", "240x320 uchar, 4 bands, srgb, pngload"),
                  ("cmyk.jpg", "240x320 uchar, 4 bands, cmyk, jpegload"), ("grey.jpg", "240x320 uchar, 1 band, b-w, jpegload")):
    check(f"apply {src}: the output as the input was ({summary(p('st-' + src))})", summary(p("st-" + src)) == want)
check("apply rot6.jpg: turned upright (EXIF orientation 6)", header(p("st-rot6.jpg"), "width") == "320"
      and header(p("st-rot6.jpg"), "orientation") in (None, "1"))
r = f2a("apply", "-", "-", "--format", "png", stdin=open(p("rgba.png"), "rb").read())
open(p("st-stdio.png"), "wb").write(r.stdout)
w = f2a("apply", "-", "-", "--format", "png", stdin=open(p("rgba.png"), "rb").read(), F2A_NO_STREAM="1")
open(p("wh-stdio.png"), "wb").write(w.stdout)
diff = max_difference(p("st-stdio.png"), p("wh-stdio.png")) if r.returncode == w.returncode == 0 else None
check(f"apply - - (stdin to stdout): streamed = whole-image path (max difference {diff})",
      diff is not None and diff <= 1 and max_difference(p("rgba.png"), p("st-stdio.png"), 3) == 0, r.stderr + w.stderr)
data = open(p("s8.jpg"), "rb").read()
open(p("half.jpg"), "wb").write(data[:len(data) // 2])
for args, stdin in ((["half.jpg", "half-out.jpg"], None), (["-", "half-out.jpg"], data[:len(data) // 2])):
    before = leftovers()
    r = f2a("apply", *args, stdin=stdin)
    check(f"apply {args[0]} (a JPEG truncated half-way): exit 1, a clear error, no output, no temporary file",
          r.returncode == 1 and b"Error: cannot read" in r.stderr and b"Premature end" in r.stderr
          and not os.path.exists(p("half-out.jpg")) and leftovers() == before == [], r.stderr)

# --- eval: a subset of the pairs ------------------------------------------------------------
for sub in ("flash", "ambient"):
    os.makedirs(p("pairs", sub))
    for name in ("Objects_054", "Toys_224", "Train_1", "Train_2"):
        shutil.copy(p("in.jpg"), p("pairs", sub, f"{name}.jpg"))


def rows(result):
    return [line.split()[0] for line in result.stdout.decode().splitlines()[1:] if not line.startswith(("mean", "better"))]


r = f2a("eval", "--pairs", "pairs", "--out", "ev-val", "--split", "validation")
check("eval --split validation: the faid32 validation pairs only", r.returncode == 0
      and rows(r) == ["Objects_054", "Toys_224"] and b"mean (2 pairs)" in r.stdout, r.stdout + r.stderr)
r = f2a("eval", "--pairs", "pairs", "--out", "ev-train", "--split", "training")
check("eval --split training: every other pair", r.returncode == 0 and rows(r) == ["Train_1", "Train_2"],
      r.stdout + r.stderr)
r = f2a("eval", "--pairs", "pairs", "--out", "ev-names", "--names", "Train_2,Objects_054")
check("eval --names: those pairs", r.returncode == 0 and rows(r) == ["Objects_054", "Train_2"]
      and sorted(os.listdir(p("ev-names"))) == ["Objects_054.png", "Train_2.png"], r.stdout + r.stderr)
r = f2a("eval", "--pairs", "pairs", "--out", "ev-missing", "--names", "Train_1,Nope")
check("eval --names with a missing pair: exit 1 naming it", r.returncode == 1 and b"no pair named Nope" in r.stderr,
      r.stderr)
r = f2a("eval", "--pairs", "pairs", "--out", "ev-both", "--names", "Train_1", "--split", "training")
check("eval --names with --split: a usage error", r.returncode == 64, r.stderr)
r = f2a("eval", "--pairs", "pairs", "--out", "ev-quiet", "--quiet")
check("eval --quiet: the header, the mean and the comparison, no row per pair",
      r.returncode == 0 and rows(r) == [] and b"mean (4 pairs)" in r.stdout and b"better than" in r.stdout,
      r.stdout)

sys.exit(finish("cli"))
