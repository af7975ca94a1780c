#!/usr/bin/env python3
"""Hostile image inputs through `f2a apply` and `vips flash2ambient`.

Usage: hostile.py BUILD_DIR [WORK_DIR]

Every input must give either a correct output (same width, height and band
count as the input, finite pixels) or a clear error (non-zero exit, a message
on stderr), never a signal (exit code >= 128), never a hang (timeout) and
never more memory than the cap: each command runs with RLIMIT_AS (virtual
address space) = MEMORY_CAP_MB (default 4096 MiB) and its peak RSS is
reported. Uses only the python3 standard library and the vips CLI.
Prints one line per check and "N passed, M failed".
"""
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
WORK = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(BUILD, "hostile"))
F2A = os.path.join(BUILD, "bin", "f2a")
MODEL = os.path.join(BUILD, "share", "flash2ambient", "weights", "default.f2aw")
CAP_MB = int(os.environ.get("MEMORY_CAP_MB", "4096"))
TIMEOUT = int(os.environ.get("HOSTILE_TIMEOUT", "300"))

passed = failed = 0
peak_rss_kb = 0


def ok(msg):
    global passed
    passed += 1
    print(f"ok    {msg}", flush=True)


def fail(msg):
    global failed
    failed += 1
    print(f"FAIL  {msg}", flush=True)


def sh(*args, env=None):
    """Helper commands (making inputs, reading headers): must succeed."""
    r = subprocess.run(list(args), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def capped_rss(args, env):
    """Runs args under the memory cap; returns (exit code, stderr, seconds, peak RSS KiB of
    that child, from wait4). A signal gives 128 + its number, like a shell; a timeout None."""
    def limit():
        cap = CAP_MB << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    errpath = os.path.join(WORK, "stderr.txt")
    start = time.monotonic()
    with open(errpath, "wb") as errfile, open(os.devnull, "wb") as devnull:
        p = subprocess.Popen(args, stdout=devnull, stderr=errfile, env=env, preexec_fn=limit)
        deadline = start + TIMEOUT
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                return None, f"timed out after {TIMEOUT} s", TIMEOUT, 0
            time.sleep(0.02)
    p.returncode = 0  # reaped here; keep Popen from trying again
    if os.WIFSIGNALED(status):
        rc = 128 + os.WTERMSIG(status)
    else:
        rc = os.WEXITSTATUS(status)
    with open(errpath, "rb") as f:
        err = f.read().decode(errors="replace")
    return rc, err, time.monotonic() - start, usage.ru_maxrss


def header(path):
    out = sh("vipsheader", "-a", path)
    fields = {}
    for line in out.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            fields[k.strip()] = v.strip()
    return int(fields["width"]), int(fields["height"]), int(fields["bands"]), fields["format"]


def finite_pixels(path):
    """True when every pixel value of a float/double image is finite (integer formats always are)."""
    w, h, bands, fmt = header(path)
    if fmt not in ("float", "double"):
        return True
    raw = os.path.join(WORK, "pixels.raw")
    sh("vips", "rawsave", path, raw)
    data = open(raw, "rb").read()
    code = "f" if fmt == "float" else "d"
    n = len(data) // struct.calcsize(code)
    values = struct.unpack(f"<{n}{code}", data)
    return all(v == v and abs(v) != float("inf") for v in values)


# --- inputs ------------------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path, w, h):
    """A valid PNG signature and IHDR claiming w x h RGB, then only 4 rows of data and IEND."""
    rows = b"".join(b"\0" + b"\x80" * (3 * min(w, 100000)) for _ in range(4))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b""))


def huge_jpeg(path, src):
    """A real JPEG whose SOF0 frame header is patched to claim 65000 x 65000."""
    data = bytearray(open(src, "rb").read())
    i = 2
    while i < len(data) - 9:
        assert data[i] == 0xFF, "bad marker walk"
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", 65000, 65000)
            break
        i += 2 + length
    open(path, "wb").write(bytes(data))


def nan_tiff(path):
    """A 3-band float TIFF (scRGB-like values) with NaN, +-Inf, huge and negative values."""
    specials = [float("nan"), float("inf"), float("-inf"), 3.4e38, -3.4e38, -1.0, 1e-45, 0.5, 2.0]
    w, h = 33, 17
    values = []
    for y in range(h):
        for x in range(w):
            for c in range(3):
                k = x * 3 + y * 7 + c
                values.append(specials[k % len(specials)] if k % 4 == 0 else ((x + y + c) % 10) / 10)
    raw = os.path.join(WORK, "nan.raw")
    with open(raw, "wb") as f:
        f.write(struct.pack(f"<{len(values)}f", *values))
    sh("vips", "rawload", raw, path, str(w), str(h), "3", "--format", "float", "--interpretation", "scrgb")


def make_inputs():
    W = WORK
    j = lambda name: os.path.join(W, name)
    # base: 97x65 smooth colour pattern
    sh("vips", "xyz", j("xy.v"), "97", "65")
    sh("vips", "linear", j("xy.v"), j("xy8.v"), "2.5 3.5", "10 20", "--uchar")
    sh("vips", "sines", j("sn.v"), "97", "65", "--uchar")
    sh("vips", "bandjoin", f"{j('xy8.v')} {j('sn.v')}", j("rgb0.v"))
    sh("vips", "copy", j("rgb0.v"), j("rgb.v"), "--interpretation", "srgb")
    sh("vips", "copy", j("rgb.v"), j("base.jpg"))
    sh("vips", "copy", j("rgb.v"), j("base.png"))
    inputs = {}
    open(j("empty.jpg"), "wb").close()
    inputs["0-byte file"] = "empty.jpg"
    # truncated JPEG / PNG: the first half of a bigger image
    sh("vips", "replicate", j("rgb.v"), j("big.v"), "4", "4")
    sh("vips", "copy", j("big.v"), j("big.jpg"))
    sh("vips", "copy", j("big.v"), j("big.png"))
    for ext in ("jpg", "png"):
        data = open(j(f"big.{ext}"), "rb").read()
        open(j(f"truncated.{ext}"), "wb").write(data[: len(data) // 2])
        inputs[f"truncated {ext.upper()}"] = f"truncated.{ext}"
    open(j("header-only.png"), "wb").write(open(j("base.png"), "rb").read()[:33])  # signature + IHDR only
    inputs["PNG with signature and IHDR only"] = "header-only.png"
    huge_png(j("huge-100000x100000.png"), 100000, 100000)
    inputs["PNG header claiming 100000x100000"] = "huge-100000x100000.png"
    huge_jpeg(j("huge-65000x65000.jpg"), j("base.jpg"))
    inputs["JPEG frame header claiming 65000x65000"] = "huge-65000x65000.jpg"
    sh("vips", "crop", j("rgb.v"), j("1x1.png"), "10", "10", "1", "1")
    inputs["1x1"] = "1x1.png"
    sh("vips", "black", j("strip0.v"), "30000", "2", "--bands", "3")
    sh("vips", "linear", j("strip0.v"), j("strip1.v"), "1", "90 140 200", "--uchar")
    sh("vips", "copy", j("strip1.v"), j("30000x2.png"), "--interpretation", "srgb")
    inputs["30000x2"] = "30000x2.png"
    sh("vips", "rot", j("30000x2.png"), j("2x30000.png"), "d90")
    inputs["2x30000"] = "2x30000.png"
    nan_tiff(j("nan-inf.tif"))
    inputs["float TIFF with NaN/Inf"] = "nan-inf.tif"
    sh("vips", "icc_transform", j("rgb.v"), j("cmyk.jpg"), "cmyk")
    inputs["CMYK JPEG"] = "cmyk.jpg"
    sh("vips", "colourspace", j("rgb.v"), j("rgb16.png"), "rgb16")
    inputs["16-bit PNG"] = "rgb16.png"
    # a decompression bomb: a real, fully decodable 8000x8000 PNG of ~200 KB (64 MP, 768 MB as floats)
    sh("vips", "black", j("bomb0.v"), "8000", "8000", "--bands", "3")
    sh("vips", "linear", j("bomb0.v"), j("bomb1.v"), "1", "90 140 200", "--uchar")
    sh("vips", "copy", j("bomb1.v"), j("bomb-8000x8000.png[compression=9]"), "--interpretation", "srgb")
    for name in ("bomb0.v", "bomb1.v"):
        os.remove(j(name))
    inputs["PNG bomb 8000x8000 (fully decodable)"] = "bomb-8000x8000.png"
    sh("vips", "colourspace", j("rgb.v"), j("bw.v"), "b-w")
    sh("vips", "extract_band", j("xy8.v"), j("alpha.v"), "0")
    sh("vips", "bandjoin", f"{j('bw.v')} {j('alpha.v')}", j("grey-alpha.png"))
    inputs["2-band grey+alpha PNG"] = "grey-alpha.png"
    return inputs


# --- the checks --------------------------------------------------------------------------------

def run_one(tool, label, name, env, model=MODEL):
    global peak_rss_kb
    src = os.path.join(WORK, name)
    stem = name.rsplit(".", 1)[0]
    # the input's own format (CMYK stays CMYK only in JPEG/TIFF), PNG for the 0-byte file
    ext = name.rsplit(".", 1)[1] if name.endswith((".tif", ".jpg")) and os.path.getsize(src) else "png"
    out = os.path.join(WORK, f"out-{tool}-{stem}.{ext}")
    if os.path.exists(out):
        os.remove(out)
    if tool == "f2a":
        args = [F2A, "apply", src, out, "--model", model]
    else:
        args = ["vips", "flash2ambient", src, out] + ([] if model == MODEL else ["--model", model])
    rc, err, secs, rss = capped_rss(args, env)
    peak_rss_kb = max(peak_rss_kb, rss)
    what = f"{tool:4} {label}"
    stats = f"{secs:.1f} s, peak RSS {rss // 1024} MiB"
    # the first error line; libvips' own warnings only when there is nothing else (vips 8.14
    # reports a PNG cut right after IHDR with the warning "not enough data" alone, even `vips copy`)
    lines = [l.strip() for l in err.splitlines() if l.strip()]
    first = next((l for l in lines if "-WARNING **" not in l), next(iter(lines), ""))
    if rc is None:
        fail(f"{what}: {err}")
        return
    if rc >= 128:
        fail(f"{what}: killed by signal {rc - 128} ({stats}); stderr: {err.strip()[-400:]}")
        return
    if rc != 0:
        if first:
            ok(f"{what}: clear error, exit {rc} ({stats}): {first[:150]}")
        else:
            fail(f"{what}: exit {rc} without a message")
        return
    # success: the output must exist and keep the geometry and bands, with finite pixels
    if not os.path.exists(out):
        fail(f"{what}: exit 0 but no output")
        return
    try:
        iw, ih, ib, _ = header(src)
        ow, oh, ob, _ = header(out)
    except RuntimeError as e:
        fail(f"{what}: exit 0 but cannot read the output: {e}")
        return
    if (iw, ih, ib) != (ow, oh, ob):
        fail(f"{what}: {iw}x{ih}x{ib} became {ow}x{oh}x{ob}")
    elif not finite_pixels(out):
        fail(f"{what}: output has NaN/Inf pixels")
    else:
        ok(f"{what}: output {ow}x{oh}, {ob} bands ({stats})")


def main():
    global CAP_MB
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    env = dict(os.environ)
    env["VIPSHOME"] = os.path.join(BUILD, "vipshome")
    env.pop("F2A_MODEL", None)
    env.setdefault("OPENBLAS_NUM_THREADS", "2")
    inputs = make_inputs()
    print(f"memory cap: RLIMIT_AS = {CAP_MB} MiB per command, timeout {TIMEOUT} s", flush=True)
    for label, name in inputs.items():
        for tool in ("f2a", "vips"):
            run_one(tool, label, name, env)
    # Hostile weights files (the fuzzers cover their contents): a sparse 5 GiB file, a directory.
    sparse = os.path.join(WORK, "sparse-5g.f2aw")
    with open(sparse, "wb") as f:
        f.truncate(5 << 30)
    for label, model in (("sparse 5 GiB weights file", sparse), ("a directory as weights file", WORK)):
        for tool in ("f2a", "vips"):
            run_one(tool, label, "1x1.png", env, model=model)
    os.remove(sparse)
    # The bomb again under caps where decoding fits but the rest may not: refusal or success,
    # never an allocation failure that aborts.
    for cap in (1024, 1536, 2048):
        CAP_MB = cap
        for tool in ("f2a", "vips"):
            run_one(tool, f"PNG bomb 8000x8000 under a {cap} MiB cap", "bomb-8000x8000.png", env)
    print(f"largest peak RSS of any command: {peak_rss_kb // 1024} MiB")
    print(f"hostile: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
