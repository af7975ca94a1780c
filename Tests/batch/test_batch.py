#!/usr/bin/env python3
"""End-to-end tests of `f2a batch` (run by `make test-batch`).

Drives the built binary on small images made with the vips command-line tools
(64x48 and smaller, so the whole file runs in well under a minute on 2 cores).
Standard library only. Prints one line per check and a final "batch: N passed, M failed"
(Tests/lib/checks.py); exits 1 on any failure.

Usage: test_batch.py [F2A] [WEIGHTS]   (defaults: build/bin/f2a, weights/default.f2aw)
"""
import base64
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F2A = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build/bin/f2a")
MODEL = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.join(ROOT, "weights/default.f2aw")
sys.path.insert(0, os.path.join(ROOT, "Tests", "lib"))
from checks import check, finish, workdir  # noqa: E402

W = workdir("f2a-batch-test-")


def run(*args, stdin=None, env=None, cwd=W, timeout=60):
    """f2a batch ARGS with the test model; returns CompletedProcess (text)."""
    e = dict(os.environ)
    for k in ("JOB_COMPLETION_INDEX", "F2A_SHARD_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
              "SLURM_ARRAY_TASK_COUNT", "F2A_MODEL", "F2A_NO_STREAM"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([F2A, "batch", *args, "--model", MODEL], input=stdin, env=e, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def fnv1a64(data):
    """The hash in the saver's temporary names (f2aio_temporary_path in Sources/CVipsIO/vipsio.c)."""
    h = 14695981039346656037
    for byte in data:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, cwd=W)


def header(path, field):
    r = subprocess.run(["vipsheader", "-f", field, path], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def field_md5(path, field):
    r = subprocess.run(["vipsheader", "-f", field, path], capture_output=True)
    return hashlib.md5(r.stdout).hexdigest() if r.returncode == 0 else None


def max_alpha_difference(a, b):
    r = subprocess.run(f"vips extract_band {a} {W}/a3.v 3 && vips extract_band {b} {W}/b3.v 3 && "
                       f"vips subtract {W}/a3.v {W}/b3.v {W}/d3.v && vips abs {W}/d3.v {W}/ad3.v && vips max {W}/ad3.v",
                       shell=True, capture_output=True, text=True)
    return float(r.stdout) if r.returncode == 0 else None


def xmp(path):
    text = header(path, "xmp-data") or ""
    try:
        return base64.b64decode(text).decode(errors="replace")
    except ValueError:
        return text


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def files_under(d):
    """Relative paths of all files below d (hidden ones included)."""
    out = set()
    for dirpath, _, names in os.walk(d):
        for n in names:
            out.add(os.path.relpath(os.path.join(dirpath, n), d))
    return out


def report_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def temporaries(d):
    return sorted(p for p in files_under(d) if ".f2a-tmp-" in p)


def p(*parts):
    return os.path.join(W, *parts)


# --- inputs -------------------------------------------------------------------------------
def make_jpeg_with_metadata(src, dst):
    """dst: src's JPEG with an sRGB ICC profile, EXIF (orientation 6 = rotate 90 CW,
    ImageDescription) and XMP segments inserted after SOI."""
    sh("vips", "icc_transform", src, p("icc.jpg"), "srgb")
    data = open(p("icc.jpg"), "rb").read()
    desc = b"f2a batch test\0"
    ifd = (b"II*\0" + (8).to_bytes(4, "little") + (2).to_bytes(2, "little")
           + (0x010E).to_bytes(2, "little") + (2).to_bytes(2, "little") + len(desc).to_bytes(4, "little")
           + (38).to_bytes(4, "little")
           + (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
           + (6).to_bytes(2, "little") + b"\0\0"
           + (0).to_bytes(4, "little") + desc)
    exif = b"Exif\0\0" + ifd
    xmp = (b"http://ns.adobe.com/xap/1.0/\0" +
           b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="f2a-batch-test"/>'
           b'</rdf:RDF></x:xmpmeta>')
    seg = lambda payload: b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    assert data[:2] == b"\xff\xd8"
    open(dst, "wb").write(data[:2] + seg(exif) + seg(xmp) + data[2:])


sh("vips", "thumbnail", os.path.join(ROOT, "examples/flash.jpg"), p("base.jpg"), "48")  # 36x48
sh("vips", "thumbnail", os.path.join(ROOT, "examples/flash.jpg"), p("wide.png"), "64", "--height", "48", "--crop", "centre")
sh("vips", "cast", p("wide.png"), p("w16.v"), "ushort")
sh("vips", "linear", p("w16.v"), p("w16s.v"), "257", "0", "--uchar=false")
sh("vips", "cast", p("w16s.v"), p("w16c.v"), "ushort")
sh("vips", "copy", p("w16c.v"), p("wide16.tif"), "--interpretation", "rgb16")
sh("vips", "extract_band", p("wide.png"), p("alpha.v"), "0")
sh("vips", "bandjoin", p("wide.png") + " " + p("alpha.v"), p("rgba.png"))


def make_tree(root, n_extra=0):
    """root/{x.jpg, a/y.png, a/b/z.tif(16-bit), c/w.webp, c/rgba.png, notes.txt, .hidden.jpg,
    x.f2a-tmp-1.jpg} + n_extra JPEGs in root/many/."""
    os.makedirs(os.path.join(root, "a/b"))
    os.makedirs(os.path.join(root, "c"))
    shutil.copy(p("base.jpg"), os.path.join(root, "x.jpg"))
    shutil.copy(p("wide.png"), os.path.join(root, "a/y.png"))
    shutil.copy(p("wide16.tif"), os.path.join(root, "a/b/z.tif"))
    sh("vips", "copy", p("base.jpg"), os.path.join(root, "c/w.webp"))
    shutil.copy(p("rgba.png"), os.path.join(root, "c/rgba.png"))
    open(os.path.join(root, "notes.txt"), "w").write("not an image\n")
    shutil.copy(p("base.jpg"), os.path.join(root, ".hidden.jpg"))
    shutil.copy(p("base.jpg"), os.path.join(root, "x.f2a-tmp-1.jpg"))
    if n_extra:
        os.makedirs(os.path.join(root, "many"))
        for i in range(n_extra):
            shutil.copy(p("base.jpg"), os.path.join(root, f"many/m{i:02d}.jpg"))


IMAGES = {"x.jpg", "a/y.png", "a/b/z.tif", "c/w.webp", "c/rgba.png"}

# --- mirror tree, formats, metadata ------------------------------------------------------
make_tree(p("in"))
r = run("in", "-o", "out", "--report", "out.jsonl")
check("mirror: exit status 0", r.returncode == 0, r.stderr + r.stdout)
outputs = files_under(p("out")) - {".f2a-batch"}
check("mirror: output tree mirrors the input images (hidden, non-image, temporary names skipped)",
      outputs == IMAGES, f"got {sorted(outputs)}")
check("mirror: marker file written", os.path.isfile(p("out/.f2a-batch")))
check("mirror: sizes kept", all(header(p("in", f), "width") == header(p("out", f), "width") and
                                header(p("in", f), "height") == header(p("out", f), "height") for f in IMAGES))
check("16-bit TIFF stays 16-bit", "USHORT" in (header(p("out/a/b/z.tif"), "format") or ""),
      header(p("out/a/b/z.tif"), "format"))
check("alpha kept (4 bands, alpha band identical)",
      header(p("out/c/rgba.png"), "bands") == "4" and max_alpha_difference(p("in/c/rgba.png"), p("out/c/rgba.png")) == 0)
check("summary line", "5 files: 5 written, 0 skipped (existing), 0 failed" in r.stdout, r.stdout)
lines = report_lines(p("out.jsonl"))
check("report: one line per file, status ok, seconds and time",
      sorted(l["relative"] for l in lines) == sorted(IMAGES) and all(
          l["status"] == "ok" and isinstance(l["seconds"], float) and l["time"].endswith("Z") for l in lines),
      json.dumps(lines[:2]))
check("plain log lines when stderr is not a terminal", r.stderr.count("] ok") == 5 and "\r" not in r.stderr, r.stderr)
r = run("in", "-o", "out-whole", env={"F2A_NO_STREAM": "1"})
check("guided mode streamed (the default) writes the files the whole-image path writes (F2A_NO_STREAM=1)",
      r.returncode == 0 and all(l["mode"] == "guided" for l in lines)
      and [f for f in sorted(IMAGES) if md5(p("out", f)) != md5(p("out-whole", f))] == [],
      r.stderr + str([f for f in sorted(IMAGES) if os.path.exists(p("out-whole", f)) and md5(p("out", f)) != md5(p("out-whole", f))]))

os.makedirs(p("meta"))
make_jpeg_with_metadata(p("base.jpg"), p("meta/photo.jpg"))
r = run("meta", "-o", "meta-out", "--format", "png", "--suffix", "_amb")
r2 = run("meta", "-o", "meta-out2")
src, out_png, out_jpg = p("meta/photo.jpg"), p("meta-out/photo_amb.png"), p("meta-out2/photo.jpg")
check("metadata: inputs carry EXIF orientation 6, ICC, XMP",
      (header(src, "orientation") or "").startswith("6") and header(src, "icc-profile-data") and "f2a-batch-test" in xmp(src))
check("--format png --suffix names the output photo_amb.png", r.returncode == 0 and os.path.isfile(out_png),
      r.stderr)
for name, out in (("jpeg", out_jpg), ("png", out_png)):
    check(f"metadata ({name}): orientation applied once (rotated size, no rotation left)",
          header(out, "width") == header(src, "height") and header(out, "height") == header(src, "width")
          and (header(out, "orientation") or "1").startswith("1"),
          f"{header(out, 'width')}x{header(out, 'height')} orientation {header(out, 'orientation')}")
    check(f"metadata ({name}): ICC profile kept", field_md5(out, "icc-profile-data") == field_md5(src, "icc-profile-data"))
    check(f"metadata ({name}): EXIF and XMP kept",
          "f2a batch test" in (header(out, "exif-ifd0-ImageDescription") or "") and
          "f2a-batch-test" in xmp(out), f"{header(out, 'exif-ifd0-ImageDescription')} / {xmp(out)}")

# --- stdin list, --format conversion ----------------------------------------------------
r = run("-", "-o", "list-out", "--format", "jpeg", stdin="in/a/b/z.tif\nin/c/rgba.png\n\n")
check("stdin list (-): mirrored below the common directory, jpeg outputs",
      r.returncode == 0 and files_under(p("list-out")) - {".f2a-batch"} == {"a/b/z.jpg", "c/rgba.jpg"},
      r.stderr + str(files_under(p("list-out"))))
check("--format jpeg from 16-bit TIFF gives an 8-bit JPEG", "UCHAR" in (header(p("list-out/a/b/z.jpg"), "format") or ""))

# --- -0: NUL-separated list (find -print0), names with newlines -----------------------------
os.makedirs(p("nul/sub dir"))
for name in ("new\nline.jpg", "sub dir/two\nnew\nlines.png", "plain.jpg"):
    shutil.copy(p("base.jpg") if name.endswith(".jpg") else p("wide.png"), p("nul", name))
listed = "".join(os.path.join("nul", n) + "\0" for n in ("new\nline.jpg", "sub dir/two\nnew\nlines.png", "plain.jpg"))
r = run("-", "-0", "-o", "nul-out", "--report", "nul.jsonl", stdin=listed)
check("-0: names with newlines and spaces, NUL-separated on stdin: each written under its own name",
      r.returncode == 0 and files_under(p("nul-out")) - {".f2a-batch"}
      == {"new\nline.jpg", "sub dir/two\nnew\nlines.png", "plain.jpg"}, r.stderr + str(files_under(p("nul-out"))))
check("-0: the report names them exactly (JSON-escaped newlines)",
      sorted(l["relative"] for l in report_lines(p("nul.jsonl")))
      == sorted(["new\nline.jpg", "sub dir/two\nnew\nlines.png", "plain.jpg"]), open(p("nul.jsonl")).read()[:300])
r = run("-", "--null", "-o", "nul-out2", "--dry-run", stdin=listed)
check("--null is -0", r.returncode == 0 and r.stdout.count("\t") == 3, r.stdout + r.stderr)
r = run("-", "-o", "nl-out", "--dry-run", stdin=listed.replace("\0", "\n"))
check("without -0 each newline splits a name in two (why -0 exists)", r.stdout.count("\t") == 6, r.stdout)

# --- the model in the header and the report ---------------------------------------------------
model_sha256 = hashlib.sha256(open(MODEL, "rb").read()).hexdigest()
lines = report_lines(p("nul.jsonl"))
check("report: every line names the model and its SHA-256 (sha256sum's)",
      all(l.get("model") == os.path.abspath(MODEL) and l.get("model_sha256") == model_sha256 for l in lines),
      json.dumps(lines[:1]))
r = run("nul", "-o", "hdr-out")
check("header line: the model's path and SHA-256", f"model {os.path.abspath(MODEL)} (SHA-256 {model_sha256})" in r.stderr,
      r.stderr[:400])

# --- --quiet ---------------------------------------------------------------------------------
r = run("nul", "-o", "quiet-out", "-q")
check("--quiet: success prints nothing, exit 0",
      r.returncode == 0 and r.stdout == "" and r.stderr == "" and len(files_under(p("quiet-out"))) == 4,
      r.stdout + r.stderr)

# --- corrupt inputs among good ones -------------------------------------------------------
shutil.copytree(p("in"), p("bad"))
open(p("bad/c/broken.jpg"), "wb").write(b"\xff\xd8\xff\xe0 this is not a JPEG")
open(p("bad/empty.png"), "wb").close()
r = run("bad", "-o", "bad-out", "--report", "bad.jsonl", "-j", "2")
lines = {l["relative"]: l for l in report_lines(p("bad.jsonl"))}
check("corrupt inputs: exit status 1", r.returncode == 1, r.returncode)
check("corrupt inputs: the good ones are written", files_under(p("bad-out")) - {".f2a-batch"} == IMAGES,
      files_under(p("bad-out")))
check("corrupt inputs: reported failed with a message, the rest ok",
      lines.get("c/broken.jpg", {}).get("status") == "failed" and lines.get("empty.png", {}).get("status") == "failed"
      and "error" in lines["c/broken.jpg"] and sum(l["status"] == "ok" for l in lines.values()) == 5,
      json.dumps(lines))
check("corrupt inputs: summary counts 2 failed", "7 files: 5 written, 0 skipped (existing), 2 failed" in r.stdout
      and "failed: " in r.stdout, r.stdout)
r = run("bad", "-o", "bad-quiet-out", "--quiet")
check("--quiet: only the failures are printed, exit 1",
      r.returncode == 1 and r.stdout == "" and sorted(r.stderr.splitlines())
      == sorted(l for l in r.stderr.splitlines() if l.startswith("failed: ")) and r.stderr.count("failed: ") == 2,
      r.stdout + r.stderr)
r = run("in/x.jpg", "in/missing.jpg", "-o", "miss-out")
check("missing input file: counted as failed, the others still run",
      r.returncode == 1 and os.path.isfile(p("miss-out/x.jpg")) and "no such file" in r.stdout, r.stdout + r.stderr)

os.makedirs(p("coll"))
shutil.copy(p("wide.png"), p("coll/a.png"))
shutil.copy(p("wide16.tif"), p("coll/a.tif"))
shutil.copy(p("base.jpg"), p("coll/b.jpeg"))
r = run("coll", "-o", "coll-out", "--format", "jpeg", "--report", "coll.jsonl")
lines = {l["relative"]: l for l in report_lines(p("coll.jsonl"))}
check("two inputs mapping to one output: the second fails, the rest written (b.jpeg keeps its suffix)",
      r.returncode == 1 and lines["a.png"]["status"] == "ok" and lines["a.tif"]["status"] == "failed"
      and "already the output of" in lines["a.tif"].get("error", "")
      and files_under(p("coll-out")) - {".f2a-batch"} == {"a.jpg", "b.jpeg"}, r.stdout + json.dumps(lines))

os.makedirs(p("perm/sub"))
shutil.copy(p("base.jpg"), p("perm/ok.jpg"))
shutil.copy(p("base.jpg"), p("perm/sub/locked.jpg"))
os.chmod(p("perm/sub/locked.jpg"), 0)
os.makedirs(p("perm/closed"))
shutil.copy(p("base.jpg"), p("perm/closed/hidden.jpg"))
os.chmod(p("perm/closed"), 0)
nocap = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
r = subprocess.run(nocap + [F2A, "batch", "perm", "-o", "perm-out", "--model", MODEL, "--report", "perm.jsonl"], cwd=W,
                   capture_output=True, text=True, timeout=60,
                   env={k: v for k, v in os.environ.items() if k != "F2A_MODEL"})
lines = {l["relative"]: l for l in report_lines(p("perm.jsonl"))}
check("unreadable file: failed with the reason, the others written",
      r.returncode == 1 and os.path.isfile(p("perm-out/ok.jpg")) and "locked.jpg" in r.stdout
      and "ermission denied" in r.stdout and lines.get("sub/locked.jpg", {}).get("status") == "failed",
      r.stdout + r.stderr)
check("unreadable directory: reported failed (summary and report), the run continues",
      "closed: cannot list directory: Permission denied" in r.stdout
      and lines.get("closed", {}).get("status") == "failed" and lines.get("ok.jpg", {}).get("status") == "ok",
      r.stdout + json.dumps(lines))
os.chmod(p("perm/closed"), 0o755)

r = run("in/a/y.png", "in/c/w.webp", "-o", "base-out", "--base", "in", "--suffix=-amb")
check("--base and --suffix: out/a/y-amb.png, out/c/w-amb.webp",
      r.returncode == 0 and files_under(p("base-out")) - {".f2a-batch"} == {"a/y-amb.png", "c/w-amb.webp"},
      r.stderr + str(files_under(p("base-out"))))

# --- safety -------------------------------------------------------------------------------
before = {f: md5(p("in", f)) for f in files_under(p("in"))}
r = run("in", "-o", "in")
check("output = input directory refused (exit 2, clear message)",
      r.returncode == 2 and "refusing" in r.stderr and "input" in r.stderr, r.stderr)
r = run("in/x.jpg", "-o", "in", "--format", "same")
check("output = input file refused", r.returncode == 2 and "refusing" in r.stderr, r.stderr)
os.symlink("in", p("in-link"))
r = run("in", "-o", "in-link")
check("output = input through a symlink refused", r.returncode == 2 and "refusing" in r.stderr, r.stderr)
r = run("in/a", "-o", "in")
check("output directory containing an input refused", r.returncode == 2 and "refusing" in r.stderr, r.stderr)
check("refused runs touched nothing", {f: md5(p("in", f)) for f in files_under(p("in"))} == before)
r = run("in", "-o", "in/c")
check("output inside the input tree holding inputs refused", r.returncode == 2 and "refusing" in r.stderr, r.stderr)
r = run("in", "-o", "in/ambient")
r2 = run("in", "-o", "in/ambient", "--skip-existing")
check("output as a separate subtree of the input: allowed, never scanned (rerun finds 5, skips 5)",
      r.returncode == 0 and r2.returncode == 0 and "5 files: 5 written" in r.stdout
      and "5 files: 0 written, 5 skipped" in r2.stdout, r.stdout + r2.stdout + r2.stderr)
shutil.rmtree(p("in/ambient"))
check("inputs unchanged after all safety checks",
      {f: md5(p("in", f)) for f in files_under(p("in"))} == before)

os.makedirs(p("ro"))
os.chmod(p("ro"), 0o555)
# As root, permission bits are not enforced: drop CAP_DAC_OVERRIDE for this run.
prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
e = {k: v for k, v in os.environ.items() if k != "F2A_MODEL"}
r = subprocess.run(prefix + [F2A, "batch", "in", "-o", "ro", "--model", MODEL], cwd=W, env=e,
                   capture_output=True, text=True, timeout=60)
check("read-only output directory: clear error, exit 2, nothing written",
      r.returncode == 2 and "cannot write to the output directory" in r.stderr and "Permission denied" in r.stderr
      and files_under(p("ro")) == set(), r.stderr)
r = subprocess.run(prefix + [F2A, "batch", "in", "-o", "ro/sub", "--model", MODEL], cwd=W, env=e,
                   capture_output=True, text=True, timeout=60)
check("output directory that cannot be created: clear error", r.returncode == 2 and
      "cannot create the output directory" in r.stderr, r.stderr)

# --- resume after SIGKILL -----------------------------------------------------------------
os.makedirs(p("kill-in"))
sh("vips", "thumbnail", os.path.join(ROOT, "examples/flash.jpg"), p("kill.jpg"), "160")
for i in range(8):
    shutil.copy(p("kill.jpg"), p(f"kill-in/k{i}.jpg"))
proc = subprocess.Popen([F2A, "batch", "kill-in", "-o", "kill-out", "-j", "1", "--model", MODEL], cwd=W,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 30
while time.time() < deadline and not any(f.endswith(".jpg") and ".f2a-tmp-" not in f
                                         for f in (os.listdir(p("kill-out")) if os.path.isdir(p("kill-out")) else [])):
    time.sleep(0.01)
time.sleep(0.05)
proc.send_signal(signal.SIGKILL)
proc.wait()
done_before = sorted(f for f in os.listdir(p("kill-out")) if f.endswith(".jpg") and ".f2a-tmp-" not in f)
check("SIGKILL mid-run: some outputs written, not all", 0 < len(done_before) < 8, done_before)
check("SIGKILL mid-run: every output present is a complete image",
      all(subprocess.run(["vips", "avg", p("kill-out", f)], capture_output=True).returncode == 0 for f in done_before))
# What a kill during a save leaves behind (same name pattern as the saver's temporary file).
open(p(f"kill-out/.f2a-tmp-4242-{fnv1a64(b'k7.jpg'):016x}.jpg"), "wb").write(b"\xff\xd8 partial")
mtimes = {f: os.path.getmtime(p("kill-out", f)) for f in done_before}
r = run("kill-in", "-o", "kill-out", "--skip-existing", "--report", "kill.jsonl")
lines = {l["relative"]: l["status"] for l in report_lines(p("kill.jsonl"))}
check("resume: exit 0, all 8 outputs, complete", r.returncode == 0 and
      sorted(f for f in os.listdir(p("kill-out")) if f.endswith(".jpg")) == [f"k{i}.jpg" for i in range(8)] and
      all(subprocess.run(["vips", "avg", p("kill-out", f"k{i}.jpg")], capture_output=True).returncode == 0
          for i in range(8)), r.stderr + r.stdout)
check("resume: no temporary files left", temporaries(p("kill-out")) == [], temporaries(p("kill-out")))
check("resume: finished outputs skipped (not rewritten), the rest written",
      all(lines[f] == "skipped" for f in done_before) and
      sum(s == "ok" for s in lines.values()) == 8 - len(done_before) and
      all(os.path.getmtime(p("kill-out", f)) == t for f, t in mtimes.items()), lines)

# --- SIGTERM: graceful stop -----------------------------------------------------------------
os.makedirs(p("term-in"))
for i in range(24):
    shutil.copy(p("kill.jpg"), p(f"term-in/t{i:02d}.jpg"))
proc = subprocess.Popen([F2A, "batch", "term-in", "-o", "term-out", "-j", "2", "--model", MODEL, "--report",
                         "term.jsonl"], cwd=W, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
deadline = time.time() + 30
while time.time() < deadline and not (os.path.isfile(p("term.jsonl")) and os.path.getsize(p("term.jsonl")) > 0):
    time.sleep(0.01)
proc.send_signal(signal.SIGTERM)
out, err = proc.communicate(timeout=30)
term = report_lines(p("term.jsonl"))
check("SIGTERM: exit 143 after finishing or cancelling the files in flight, summary printed",
      proc.returncode == 143 and "not started" in out and 0 < len(term) < 24, f"{proc.returncode}\n{out}\n{err}")
check("SIGTERM: no temporary files, every output complete", temporaries(p("term-out")) == [] and all(
    subprocess.run(["vips", "avg", p("term-out", f)], capture_output=True).returncode == 0
    for f in os.listdir(p("term-out")) if f.endswith(".jpg")))

# --- shards --------------------------------------------------------------------------------
make_tree(p("sh"), n_extra=6)
all_inputs = None
shard_inputs = []
ok = True
for k in range(3):
    r = run("sh", "-o", "sh-out", "--shard", f"{k}/3", "--report", "sh-{shard}.jsonl", "-j", "1")
    ok = ok and r.returncode == 0
    shard_inputs.append([l["input"] for l in report_lines(p(f"sh-{k}.jsonl"))])
r = run("sh", "-o", "sh-check", "--dry-run")
all_inputs = [line.split("\t")[0] for line in r.stdout.splitlines()]
union = [x for s in shard_inputs for x in s]
check("shards 0..2 of 3: each exits 0, report per shard via {shard}", ok)
check("shards 0..2 of 3 partition the input exactly (11 files, no overlap, none missing)",
      len(all_inputs) == 11 and sorted(union) == sorted(all_inputs) and len(set(union)) == len(union),
      f"{len(all_inputs)} inputs, shards {[len(s) for s in shard_inputs]}")
check("shard sizes differ by at most one", max(map(len, shard_inputs)) - min(map(len, shard_inputs)) <= 1)
check("all shards together wrote every output",
      files_under(p("sh-out")) - {".f2a-batch"} == IMAGES | {f"many/m{i:02d}.jpg" for i in range(6)})

os.makedirs(p("names"))
names = [f"d{i % 7}/f{i:03d}.jpg" for i in range(61)]
for n in names:
    os.makedirs(p("names", os.path.dirname(n)), exist_ok=True)
    open(p("names", n), "wb").close()  # --dry-run never reads them
listed = "\n".join(p("names", n) for n in reversed(names))
parts = [run("-", "-o", "names-out", "--dry-run", "--shard", f"{k}/4", stdin=listed).stdout.splitlines()
         for k in range(4)]
flat = [l.split("\t")[0] for part in parts for l in part]
check("--dry-run shards 0..3 of 4 over 61 paths (stdin, reversed order): exact partition",
      sorted(flat) == sorted(p("names", n) for n in names) and len(set(flat)) == 61, [len(x) for x in parts])
same = run("names", "-o", "names-out", "--dry-run", "--shard", "2/4").stdout.splitlines() == parts[2]
check("shard selection does not depend on how the inputs were listed", same)
k8s = run("names", "-o", "names-out", "--dry-run", env={"JOB_COMPLETION_INDEX": "2", "F2A_SHARD_COUNT": "4"})
check("JOB_COMPLETION_INDEX + F2A_SHARD_COUNT = --shard 2/4", k8s.stdout.splitlines() == parts[2], k8s.stderr)
k8s2 = run("names", "-o", "names-out", "--dry-run", "--shard-count", "4", env={"JOB_COMPLETION_INDEX": "2"})
check("JOB_COMPLETION_INDEX + --shard-count = --shard 2/4", k8s2.stdout.splitlines() == parts[2], k8s2.stderr)
slurm = run("names", "-o", "names-out", "--dry-run",
            env={"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"})
check("SLURM_ARRAY_TASK_ID 3 of an array 1-4 = --shard 2/4", slurm.stdout.splitlines() == parts[2], slurm.stderr)
bad = run("names", "-o", "names-out", "--dry-run", env={"JOB_COMPLETION_INDEX": "2"})
check("JOB_COMPLETION_INDEX without a count: clear error", bad.returncode == 2 and "F2A_SHARD_COUNT" in bad.stderr,
      bad.stderr)
bad = run("names", "-o", "names-out", "--dry-run", "--shard", "4/4")
check("--shard 4/4 rejected, the range in words", bad.returncode == 2 and "is not from 0 to 3" in bad.stderr, bad.stderr)

# --- progress bar on a terminal -------------------------------------------------------------
master, slave = pty.openpty()
e = {k: v for k, v in os.environ.items() if k != "F2A_MODEL"}
e["TERM"] = "xterm"
proc = subprocess.Popen([F2A, "batch", "bad", "-o", "tty-out", "--model", MODEL], cwd=W, env=e,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
os.close(slave)
chunks = []
while True:
    ready, _, _ = select.select([master], [], [], 30)
    if not ready:
        break
    try:
        data = os.read(master, 4096)
    except OSError:
        break
    if not data:
        break
    chunks.append(data)
proc.wait()
tty = b"".join(chunks).decode(errors="replace")
check("terminal: progress bar with done/total, images/s, ETA, failures",
      "7/7" in tty and "img/s" in tty and "ETA" in tty and "failed 2" in tty and "\r" in tty, tty[-300:])

sys.exit(finish("batch"))
