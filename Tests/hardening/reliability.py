#!/usr/bin/env python3
"""The f2a and f2a-train tools against misuse of their file arguments (run by `make test-reliability`).

Usage: reliability.py BUILD_DIR

Inputs are never modified, whatever path spells them (another relative path, a hard link,
a symbolic link): the command is refused and the input keeps its bytes. A FIFO or a
character device as image or weights file is a clear error, not a hang. A weights file too
large for the address space is an error in f2a, the C ABI and vips flash2ambient, not an abort;
under any address-space limit f2a finishes promptly (no OpenBLAS retry loop);
a PNG bomb is refused from its header; an SVG cannot pull in a sibling file; a file name that is
not UTF-8 is a failure of its own; a multi-page image is refused, not cut to its first page.
Uses only the python3 standard library and the vips CLI. Prints one line per check and
"reliability: N passed, M failed" (Tests/lib/checks.py); exits 1 on any failure.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
F2A = os.path.join(BUILD, "bin", "f2a")
F2A_TRAIN = os.path.join(BUILD, "bin", "f2a-train")
MODEL = os.path.join(BUILD, "share", "flash2ambient", "weights", "default.f2aw")
sys.path.insert(0, os.path.join(ROOT, "Tests", "lib"))
from checks import check, finish, workdir  # noqa: E402

W = workdir("f2a-reliability-")
TIMEOUT = 60


def env():
    e = dict(os.environ)
    for k in ("F2A_MODEL", "F2A_MAX_MEMORY_MB", "F2A_VIPS_MAX_MB"):
        e.pop(k, None)
    e["VIPSHOME"] = os.path.join(BUILD, "vipshome")
    return e


def f2a(*args, extra_env=None, timeout=TIMEOUT):
    """f2a ARGS in W; returns (exit code, stdout + stderr); a timeout is exit code None."""
    e = env()
    e.update(extra_env or {})
    try:
        r = subprocess.run([F2A, *args], cwd=W, env=e, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    return r.returncode, r.stdout + r.stderr


def p(*parts):
    return os.path.join(W, *parts)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def listing(path):
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, _, names in os.walk(path) for n in names)


def refused(label, rc, out, protected, before):
    """A refusal: exit 2 without a usage line, a message naming the refusal, every protected file unchanged."""
    check(f"{label}: refused (exit {rc})", rc == 2 and "refusing" in out and "Usage:" not in out, out)
    changed = [f for f in protected if digest(f) != before[f]]
    check(f"{label}: input unchanged", not changed, f"changed: {changed}")


def test_inputs_never_overwritten():
    os.makedirs(p("photos"))
    subprocess.run(["vips", "thumbnail", os.path.join(ROOT, "examples", "flash.jpg"), p("photos", "a.jpg"), "48"],
                   check=True)
    shutil.copy(p("photos", "a.jpg"), p("photos", "c.jpg"))
    shutil.copy(p("photos", "a.jpg"), p("b.jpg"))
    shutil.copy(MODEL, p("model.f2aw"))
    os.link(p("b.jpg"), p("hard.jpg"))
    os.symlink("b.jpg", p("sym.jpg"))
    protected = [p("b.jpg"), p("model.f2aw"), p("photos", "a.jpg"), p("photos", "c.jpg")]
    before = {f: digest(f) for f in protected}

    for label, output in (("same string", "b.jpg"), ("./b.jpg", "./b.jpg"), ("absolute path", p("b.jpg")),
                          ("through ..", "photos/../b.jpg"), ("hard link", "hard.jpg"),
                          ("symbolic link", "sym.jpg"), ("the model file", "model.f2aw")):
        rc, out = f2a("apply", "b.jpg", output, "--model", "model.f2aw")
        refused(f"apply b.jpg onto {label}", rc, out, protected, before)
    rc, out = f2a("apply", "b.jpg", "b2.jpg", "--model", "model.f2aw")
    check("apply b.jpg b2.jpg: still works", rc == 0 and os.path.exists(p("b2.jpg")), out)

    # eval: the output directory is the data set's own flash/ or ambient/ directory
    for sub in ("flash", "ambient"):
        os.makedirs(p("pairs", sub))
        subprocess.run(["vips", "copy", p("b.jpg"), p("pairs", sub, "x.png")], check=True)
    pairs = [p("pairs", "flash", "x.png"), p("pairs", "ambient", "x.png")]
    before.update({f: digest(f) for f in pairs})
    for sub in ("flash", "ambient"):
        rc, out = f2a("eval", "--pairs", "pairs", "--out", f"pairs/{sub}", "--model", "model.f2aw")
        refused(f"eval --out pairs/{sub}", rc, out, protected + pairs, before)
    check("eval refused: nothing written into the data set",
          listing(p("pairs")) == ["ambient/x.png", "flash/x.png"], listing(p("pairs")))

    # batch: the report over an input, the report over an output, an output that is a hard link to an input
    rc, out = f2a("batch", "photos", "-o", "out", "--report", "photos/a.jpg", "--model", "model.f2aw")
    refused("batch --report onto an input photo", rc, out, protected, before)
    check("batch --report onto an input photo: exit 2, nothing written", rc == 2 and not os.path.exists(p("out")), out)
    rc, out = f2a("batch", "photos", "-o", "out", "--report", "out/c.jpg", "--model", "model.f2aw")
    check("batch --report onto an output: refused, exit 2", rc == 2 and "refusing" in out, out)
    rc, out = f2a("batch", "photos", "-o", "out", "--report", "model.f2aw", "--model", "model.f2aw")
    refused("batch --report onto the model", rc, out, protected, before)
    os.makedirs(p("out"))
    os.link(p("photos", "c.jpg"), p("out", "c.jpg"))
    rc, out = f2a("batch", "photos", "-o", "out", "--model", "model.f2aw")
    refused("batch: an output is a hard link to an input", rc, out, protected, before)
    os.remove(p("out", "c.jpg"))
    rc, out = f2a("batch", "photos", "-o", "out", "--report", "/dev/full", "--model", "model.f2aw")
    check(f"batch --report /dev/full: a report write error fails the run (exit {rc})",
          rc == 1 and "cannot write the report /dev/full" in out, out)
    rc, out = f2a("batch", "photos", "-o", "out", "--report", "out/report.jsonl", "--model", "model.f2aw")
    lines = open(p("out", "report.jsonl")).read().splitlines() if os.path.exists(p("out", "report.jsonl")) else []
    check("batch --report inside the output directory: still works", rc == 0 and len(lines) == 2, out)

    # synth: textures read from the directory it writes flash pairs into
    os.makedirs(p("synth", "flash"))
    subprocess.run(["vips", "copy", p("b.jpg"), p("synth", "flash", "000000.png")], check=True)
    textures = [p("synth", "flash", "000000.png")]
    before.update({f: digest(f) for f in textures})
    rc, out = f2a("synth", "synth", "--count", "1", "--size", "32x24", "--textures", "synth/flash")
    refused("synth --textures OUT/flash", rc, out, textures, before)


def f2a_train(*args, timeout=300):
    """f2a-train ARGS in W; returns (exit code, stdout + stderr); a timeout is exit code None."""
    try:
        r = subprocess.run([F2A_TRAIN, *args], cwd=W, env=env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    return r.returncode, r.stdout + r.stderr


# A run of a few steps on 64 px pairs: seconds, not a training.
TINY_RUN = ["--resize", "64", "--crop", "32", "--batch", "1", "--width", "0.125", "--discriminator", "none",
            "--val-names", "V", "--validate-every", "1", "--threads", "1"]


def test_trainer_inputs_never_overwritten():
    """f2a-train keeps f2a's rule: export, as-shot and train never write over their inputs."""
    for sub in ("flash", "ambient"):
        os.makedirs(p("tdata", sub))
        for name in ("V", "T1", "T2"):
            shutil.copy(p("b.jpg"), p("tdata", sub, f"{name}.jpg"))
    os.symlink("tdata/flash/T1.jpg", p("link-to-pair.jpg"))
    shutil.copy(MODEL, p("init.f2aw"))
    rc, out = f2a_train("train", "--data", "tdata", "--out", "trun", "--steps", "1", *TINY_RUN)
    check(f"f2a-train: a one-step run (exit {rc})", rc == 0 and os.path.exists(p("trun", "checkpoint")), out)
    rc, out = f2a_train("train", "--data", "tdata", "--out", "trun-init", "--steps", "1", "--init-from", "init.f2aw",
                        "--formulation", "ratio-log", *TINY_RUN)
    check(f"f2a-train: a one-step run from --init-from (exit {rc})", rc == 0, out)
    inputs = [p("tdata", sub, f"{name}.jpg") for sub in ("flash", "ambient") for name in ("V", "T1", "T2")]
    protected = inputs + [p("init.f2aw"), p("trun", "checkpoint"), p("trun", "best-checkpoint"),
                          p("trun-init", "checkpoint")]
    before = {f: digest(f) for f in protected}

    for label, source, output in (("a --data image", "trun", "tdata/flash/T1.jpg"),
                                  ("a --data image through ..", "trun", "tdata/../tdata/ambient/V.jpg"),
                                  ("a --data image through a symbolic link", "trun", "link-to-pair.jpg"),
                                  ("the --init-from weights", "trun-init", "init.f2aw"),
                                  ("the run's checkpoint", "trun", "trun/checkpoint"),
                                  ("the run's best-checkpoint", "trun", "trun/best-checkpoint"),
                                  ("its own source", "trun/best-checkpoint", "trun/best-checkpoint")):
        rc, out = f2a_train("export", source, output)
        refused(f"f2a-train export {source} onto {label}", rc, out, protected, before)
    rc, out = f2a_train("export", "trun", "exported.f2aw")
    check(f"f2a-train export trun exported.f2aw: still works (exit {rc})", rc == 0, out)

    data_listing = listing(p("tdata"))
    for label, output in (("--pairs itself", "tdata"), ("a directory inside --pairs", "tdata/as-shot"),
                          ("--pairs through ..", "tdata/flash/..")):
        rc, out = f2a_train("as-shot", "--pairs", "tdata", "--out", output)
        refused(f"f2a-train as-shot --out {label}", rc, out, protected, before)
    check("f2a-train as-shot refused: nothing written into the data set", listing(p("tdata")) == data_listing,
          listing(p("tdata")))
    rc, out = f2a_train("as-shot", "--pairs", "tdata", "--out", "asshot")
    check(f"f2a-train as-shot --out elsewhere: still works (exit {rc})",
          rc == 0 and os.path.exists(p("asshot", "flash", "T1.png")), out)

    shutil.copy(p("trun", "config.json"), p("trun", "given.json"))
    os.makedirs(p("trun-same"))
    shutil.copy(p("init.f2aw"), p("trun-same", "best.f2aw"))
    shutil.copy(p("trun", "config.json"), p("trun-same", "config.json"))
    protected += [p("trun-same", "best.f2aw"), p("trun-same", "config.json")]
    before.update({f: digest(f) for f in protected[-2:]})
    for label, args in (("--out a --data directory", ["--out", "tdata"]),
                        ("--out inside a --data directory", ["--out", "tdata/flash/run"]),
                        ("--init-from the run's own best.f2aw", ["--out", "trun-same", "--init-from", "trun-same/best.f2aw",
                                                                 "--formulation", "ratio-log"]),
                        ("--config the run's own config.json", ["--out", "trun-same", "--config", "trun-same/config.json"])):
        rc, out = f2a_train("train", "--data", "tdata", "--steps", "1", *args, *TINY_RUN)
        refused(f"f2a-train train {label}", rc, out, protected, before)
    check("f2a-train train refused: nothing written into the data set", listing(p("tdata")) == data_listing,
          listing(p("tdata")))


def test_trainer_best_at_step_0():
    """A run whose best validation is its start says so, in train and in export."""
    rc, out = f2a_train("train", "--data", "tdata", "--out", "trun-worse", "--steps", "2", "--init-from", "init.f2aw",
                        "--formulation", "ratio-log", "--reconstruction", "mse", "--lr-g", "0.05", *TINY_RUN)
    check(f"f2a-train: a run that only gets worse warns that its best is step 0 (exit {rc})",
          rc == 0 and "warning: the best validation" in out and "is at step 0" in out, out)
    rc, out = f2a_train("export", "trun-worse/best-checkpoint", "worse-best.f2aw")
    check(f"f2a-train export of a step-0 best-checkpoint warns (exit {rc})",
          rc == 0 and "warning: this checkpoint is from step 0" in out, out)
    rc, out = f2a_train("export", "trun-worse", "worse-last.f2aw")
    check(f"f2a-train export of that run warns that its best is step 0 (exit {rc})",
          rc == 0 and "best validation PSNR" in out and "is at step 0" in out, out)


def vips(*args, extra_env=None, timeout=20):
    e = env()
    e.update(extra_env or {})
    try:
        r = subprocess.run(["vips", *args], cwd=W, env=e, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    return r.returncode, r.stdout + r.stderr


def test_special_files():
    """A FIFO or a character device as image or weights file: a clear error at once, not a hang."""
    os.mkfifo(p("fifo.jpg"))
    os.mkfifo(p("fifo.f2aw"))
    for label, path in (("a FIFO", "fifo.jpg"), ("/dev/zero", "/dev/zero")):
        rc, out = f2a("apply", path, "o.jpg", "--model", "model.f2aw", timeout=20)
        check(f"apply: {label} as input image: clear error (exit {rc})",
              rc is not None and 0 < rc < 128 and "not a regular file" in out, out)
    for label, path in (("a FIFO", "fifo.f2aw"), ("/dev/zero", "/dev/zero")):
        rc, out = f2a("apply", "b.jpg", "o.jpg", "--model", path, timeout=20)
        check(f"apply: {label} as weights file: clear error (exit {rc})",
              rc is not None and 0 < rc < 128 and "not a regular file" in out, out)
        rc, out = vips("flash2ambient", "b.jpg", "o.jpg", "--model", path)
        check(f"vips flash2ambient: {label} as weights file: clear error (exit {rc})",
              rc is not None and 0 < rc < 128 and "not a regular file" in out, out)
    rc, out = f2a("batch", "fifo.jpg", "-o", "fifo-out", "--model", "model.f2aw", timeout=20)
    check(f"batch: a FIFO as input: that file fails (exit {rc})", rc == 1 and "not a regular file" in out, out)


def test_settings():
    """$F2A_MAX_MEMORY_MB and $F2A_VIPS_MAX_MB: one parser; an invalid value is an error naming both."""
    for value in ("abc", "-5", "1e3", "0", "512M"):
        rc, out = f2a("apply", "b.jpg", "o.jpg", "--model", "model.f2aw", extra_env={"F2A_MAX_MEMORY_MB": value})
        check(f"apply with F2A_MAX_MEMORY_MB={value}: refused (exit {rc})",
              rc is not None and 0 < rc < 128 and f"F2A_MAX_MEMORY_MB='{value}'" in out, out)
        rc, out = vips("flash2ambient", "b.jpg", "o.jpg", "--model", "model.f2aw", extra_env={"F2A_VIPS_MAX_MB": value})
        check(f"vips flash2ambient with F2A_VIPS_MAX_MB={value}: refused (exit {rc})",
              rc is not None and 0 < rc < 128 and f"F2A_VIPS_MAX_MB='{value}'" in out, out)
    rc, out = f2a("batch", "photos", "-o", "settings-out", "--model", "model.f2aw", extra_env={"F2A_MAX_MEMORY_MB": "abc"})
    check(f"batch with F2A_MAX_MEMORY_MB=abc: refused before any file (exit {rc})",
          rc == 2 and "F2A_MAX_MEMORY_MB='abc'" in out and not os.path.exists(p("settings-out")), out)
    # valid values still limit, and still allow
    rc, out = f2a("apply", "b.jpg", "o.jpg", "--model", "model.f2aw", extra_env={"F2A_MAX_MEMORY_MB": "1"})
    check(f"apply with F2A_MAX_MEMORY_MB=1: over the limit (exit {rc})", rc not in (None, 0) and "MB" in out, out)
    rc, out = vips("flash2ambient", "b.jpg", "o.jpg", "--model", "model.f2aw", extra_env={"F2A_VIPS_MAX_MB": "1"})
    check(f"vips flash2ambient with F2A_VIPS_MAX_MB=1: over the limit (exit {rc})",
          rc not in (None, 0) and "over the limit" in out, out)
    for name in ("F2A_MAX_MEMORY_MB", "F2A_VIPS_MAX_MB"):
        rc, out = f2a("apply", "b.jpg", "o.jpg", "--model", "model.f2aw", extra_env={name: "4096"})
        check(f"apply with {name}=4096: works", rc == 0, out)
        rc, out = vips("flash2ambient", "b.jpg", "o.jpg", "--model", "model.f2aw", extra_env={name: "4096"})
        check(f"vips flash2ambient with {name}=4096: works", rc == 0, out)


def test_model_setting():
    """$F2A_MODEL naming a missing file is refused, never replaced by the shipped model."""
    rc, out = f2a("apply", "b.jpg", "o-model.jpg", extra_env={"F2A_MODEL": p("no-such-model.f2aw")})
    check(f"apply with F2A_MODEL=<missing file>: refused (exit {rc})",
          rc == 2 and "F2A_MODEL" in out and not os.path.exists(p("o-model.jpg")), out)
    rc, out = f2a("apply", "b.jpg", "o-model.jpg", extra_env={"F2A_MODEL": p("model.f2aw")})
    check(f"apply with F2A_MODEL=<a model>: works (exit {rc})", rc == 0 and os.path.exists(p("o-model.jpg")), out)


def test_exit_codes():
    """64 (with a Usage: line) for usage errors only; 1 for data and I/O errors, 2 for refusals (README)."""
    with open(p("garbage.jpg"), "w") as f:
        f.write("not an image")
    with open(p("garbage.f2aw"), "w") as f:
        f.write("not a model")
    os.makedirs(p("half", "flash"))
    os.makedirs(p("half", "ambient"))
    shutil.copy(p("b.jpg"), p("half", "flash", "y.jpg"))
    cases = [
        ("apply: missing input image", 1, ["apply", "missing.jpg", "o.jpg", "--model", "model.f2aw"], {}),
        ("apply: undecodable input image", 1, ["apply", "garbage.jpg", "o.jpg", "--model", "model.f2aw"], {}),
        ("apply: output cannot be written", 1, ["apply", "b.jpg", "no-such-dir/o.jpg", "--model", "model.f2aw"], {}),
        ("apply: over F2A_MAX_MEMORY_MB", 1, ["apply", "b.jpg", "o.jpg", "--model", "model.f2aw"],
         {"F2A_MAX_MEMORY_MB": "1"}),
        ("apply: missing model", 2, ["apply", "b.jpg", "o.jpg", "--model", "missing.f2aw"], {}),
        ("apply: invalid model", 2, ["apply", "b.jpg", "o.jpg", "--model", "garbage.f2aw"], {}),
        ("apply: invalid F2A_MAX_MEMORY_MB", 2, ["apply", "b.jpg", "o.jpg", "--model", "model.f2aw"],
         {"F2A_MAX_MEMORY_MB": "abc"}),
        ("info: invalid model", 2, ["info", "garbage.f2aw"], {}),
        ("eval: missing ambient image", 1, ["eval", "--pairs", "half", "--out", "eval-out", "--model", "model.f2aw"], {}),
        ("init: output cannot be written", 1, ["init", "no-such-dir/x.f2aw"], {}),
        ("apply: --quality 500 (usage)", 64, ["apply", "b.jpg", "o.jpg", "--quality", "500"], {}),
        ("apply: missing argument (usage)", 64, ["apply", "b.jpg"], {}),
    ]
    for label, expected, args, extra in cases:
        rc, out = f2a(*args, extra_env=extra)
        usage = "Usage:" in out
        check(f"{label}: exit {rc}, {'with' if usage else 'no'} usage line",
              rc == expected and usage == (expected == 64) and "rror" in out, out)


def temporaries(directory):
    return sorted(n for n in os.listdir(directory) if ".f2a-tmp-" in n)


def test_leftovers():
    """No temporary file left by a failed or interrupted save; a name near 255 bytes still saves."""
    os.makedirs(p("left"))
    long_name = "n" * (255 - len(".jpg")) + ".jpg"
    rc, out = f2a("apply", "b.jpg", os.path.join("left", long_name), "--model", "model.f2aw")
    check(f"apply to a 255-byte output name: written (exit {rc})", rc == 0 and os.path.exists(p("left", long_name)), out)
    os.remove(p("left", long_name))
    subprocess.run(["vips", "thumbnail", os.path.join(ROOT, "examples", "flash.jpg"), p("big.png"), "1600"], check=True)

    def fsize_limit(ignore_signal):
        def limit():
            import resource
            import signal
            if ignore_signal:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        return limit

    for ignore, what in ((True, "the write fails (EFBIG)"), (False, "SIGXFSZ kills it")):
        r = subprocess.run([F2A, "apply", "big.png", "left/o.png", "--model", "model.f2aw"], cwd=W, env=env(),
                           capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=fsize_limit(ignore))
        check(f"apply over the file size limit, {what} (exit {r.returncode}): no temporary file left",
              r.returncode != 0 and temporaries(p("left")) == [] and not os.path.exists(p("left", "o.png")),
              r.stderr + str(temporaries(p("left"))))

    import signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        seen = False
        for _ in range(5):
            proc = subprocess.Popen([F2A, "apply", "big.png", "left/o.png", "--model", "model.f2aw"], cwd=W, env=env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + TIMEOUT
            while proc.poll() is None and time.time() < deadline and not temporaries(p("left")):
                time.sleep(0.001)
            seen = bool(temporaries(p("left"))) and proc.poll() is None
            if seen:
                proc.send_signal(sig)
            rc = proc.wait()
            if seen:
                break
            if os.path.exists(p("left", "o.png")):
                os.remove(p("left", "o.png"))
        check(f"apply: {signal.Signals(sig).name} during the save: dies of it (exit {rc}), no temporary file left",
              seen and rc == -sig and temporaries(p("left")) == [], f"seen {seen}, left {temporaries(p('left'))}")


def limited(size):
    """preexec_fn: an address-space limit (ulimit -v) of SIZE bytes for the child."""
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    return limit


def run(args, megabytes=None, extra_env=None, timeout=TIMEOUT, stdin=None, kilobytes=None):
    """ARGS in W, optionally under an address-space limit (MEGABYTES or KILOBYTES); (exit code,
    output), None on a timeout."""
    e = env()
    e.update(extra_env or {})
    size = megabytes << 20 if megabytes else kilobytes << 10 if kilobytes else None
    try:
        r = subprocess.run(args, cwd=W, env=e, capture_output=True, timeout=timeout, input=stdin,
                           preexec_fn=limited(size) if size else None)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    except FileNotFoundError as e:
        return None, str(e)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def huge_tensor_header(path, elements, file_bytes=None):
    """A weights file whose valid, checksummed header declares one float32 tensor of `elements`;
    the file is `file_bytes` long (sparse), or just the header."""
    import struct
    import zlib
    name = b"enc1.conv1.weight"
    header = struct.pack("<I", 0) + struct.pack("<I", 1) + struct.pack("<I", len(name)) + name + bytes([0, 1])
    header += struct.pack("<Q", elements) + struct.pack("<QQI", 0, 4 * elements, 0)
    data = b"F2AW\r\n\x1a\n" + struct.pack("<IIQII", 1, 0, len(header), zlib.crc32(header), 0) + header
    data += bytes(-len(data) % 64)
    with open(path, "wb") as f:
        f.write(data)
        if file_bytes:
            f.truncate(file_bytes)
    return len(data)


def test_weights_memory():
    """A weights file the address space cannot hold: a clear error in f2a, the C ABI and
    vips flash2ambient, never an abort of the (host) process."""
    capi = os.path.join(BUILD, "hardening", "test_capi")
    # Header first: 2^31 elements (8 GiB) declared in a 192-byte file is refused before any allocation.
    huge_tensor_header(p("claims-8g.f2aw"), 1 << 31)
    rc, out = run([F2A, "apply", "b.jpg", "o.jpg", "--model", "claims-8g.f2aw"], megabytes=800)
    check(f"apply: header declaring an 8 GiB tensor in a 192-byte file: refused (exit {rc})",
          rc == 2 and "truncated" in out and "8589934" in out, out)
    # A (sparse) 1 GiB file whose header matches it, and a real 259 MB model (width 1.5, packed
    # weights 1 GB): both too large for an 800 MiB address space.
    n = (255 << 20)
    size = huge_tensor_header(p("sparse-1g.f2aw"), n)
    huge_tensor_header(p("sparse-1g.f2aw"), n, size + 4 * n)
    rc, out = f2a("init", "big.f2aw", "--width", "1.5")
    check(f"init a width-1.5 model (exit {rc})", rc == 0, out)
    for label, model in (("a sparse 1 GiB weights file", "sparse-1g.f2aw"), ("a 259 MB weights file", "big.f2aw")):
        rc, out = run([F2A, "apply", "b.jpg", "o.jpg", "--model", model], megabytes=800)
        check(f"apply: {label} under ulimit -v 800 MiB: clear error (exit {rc})",
              rc == 2 and "not enough memory to load the weights file" in out, out)
        rc, out = run([capi, BUILD, "--load-out-of-memory", model], megabytes=800)
        check(f"C ABI f2a_model_load: {label} under ulimit -v 800 MiB: F2A_ERR_OUT_OF_MEMORY (exit {rc})",
              rc == 0 and "capi-load: 1 passed" in out, out)
        rc, out = run(["vips", "flash2ambient", "b.jpg", "o.jpg", "--model", model], megabytes=800)
        check(f"vips flash2ambient: {label} under ulimit -v 800 MiB: clear error (exit {rc})",
              rc is not None and 0 < rc < 128 and "not enough memory to load the weights file" in out, out)
    rc, out = f2a("apply", "b.jpg", "o.jpg", "--model", "big.f2aw")
    check(f"apply: the 259 MB model without a limit still works (exit {rc})", rc == 0, out)
    for name in ("big.f2aw", "sparse-1g.f2aw"):
        os.remove(p(name))


def test_address_space_ladder():
    """Under any address-space limit (ulimit -v) f2a finishes promptly: it succeeds, or it fails
    with an error naming the limit. OpenBLAS used to retry its 128 MB buffer forever under a
    tight limit (a worker thread spun on a core and the process hung at exit joining it), or
    raised SIGINT when it could not start a worker thread."""
    os.makedirs(p("ladder"))
    for name in ("x.jpg", "y.jpg"):
        shutil.copy(p("b.jpg"), p("ladder", name))
    succeeded = {}
    for label, args in (("apply", ["apply", "b.jpg", "ladder-o.jpg"]),
                        ("batch --jobs 2", ["batch", "ladder", "-o", "ladder-out", "--jobs", "2"])):
        outcomes = []
        # Every 20 MiB where the outcome changes from refusal to success, where the windows of a
        # hang were (batch waited forever for a worker thread that could not be created).
        for megabytes in [*range(200, 720, 20), 800, 1000, 1500]:
            start = time.time()
            rc, out = run([F2A, *args, "--model", "model.f2aw"], megabytes=megabytes, timeout=30)
            took = time.time() - start
            # Below about 200 MiB the dynamic loader cannot map f2a's libraries: its own error.
            clear = rc == 0 or (rc in (1, 2) and "ulimit -v" in out) or (
                rc == 127 and "error while loading shared libraries" in out)
            outcomes.append(rc)
            check(f"{label} under ulimit -v {megabytes} MiB: exit {rc} in {took:.1f} s"
                  + ("" if rc == 0 else ", an error naming the limit"), clear and took < 30, out)
        succeeded[label] = 0 in outcomes
    check("the ladder reaches a limit under which apply and batch succeed", all(succeeded.values()), succeeded)


def test_start_up_edge():
    """Just above the address-space limit under which the dynamic loader cannot map f2a's
    libraries, the Swift runtime's first allocations used to fail and it aborted with a stack
    trace (exit -11 or 134) before f2a's own check of the limit: a band of about half a MB,
    which moves with the program's size (a release that grew by 0.6 MB put 200 MiB in it). Now
    the start-up code refuses there, naming the limit. Every 128 KB from just below the
    loader's edge to 12 MB above it: the loader's error, or an error naming the limit."""
    def loader_fails(kb):
        rc, out = run([F2A, "apply", "b.jpg", "edge-o.jpg", "--model", "model.f2aw"], kilobytes=kb)
        return rc == 127, rc, out
    lo, hi = 64 << 10, 1024 << 10   # KB: the loader fails at 64 MB and succeeds at 1 GB
    check("the loader fails under a 64 MB limit and succeeds under 1 GB", loader_fails(lo)[0] and not loader_fails(hi)[0])
    while hi - lo > 64:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if loader_fails(mid)[0] else (lo, mid)
    bad = []
    for kb in range(hi - 256, hi + (12 << 10), 128):
        _, rc, out = loader_fails(kb)
        fine = (rc == 127 and ("error while loading shared libraries" in out or "cannot allocate" in out)) or (
            rc in (1, 2) and "ulimit -v" in out)
        if not fine:
            bad.append((kb, rc, out[:200]))
    check(f"apply from {hi - 256} to {hi + (12 << 10)} KB (the loader's edge at {hi} KB), every 128 KB: "
          f"the loader's error or one naming the limit, never an abort", not bad, bad[:3])


def test_decompression_bombs():
    """A small file declaring gigapixels is refused from its header, before decoding, in every command."""
    subprocess.run(["vips", "black", p("bomb.png"), "30000", "30000"], check=True)
    size = os.path.getsize(p("bomb.png"))
    check(f"the 30000x30000 PNG bomb is small ({size >> 10} KB)", size < 2 << 20, size)
    limit = {"F2A_MAX_MEMORY_MB": "500"}
    os.makedirs(p("bombs"))
    shutil.copy(p("bomb.png"), p("bombs", "bomb.png"))
    for sub in ("flash", "ambient"):
        os.makedirs(p("bombpairs", sub))
        shutil.copy(p("bomb.png"), p("bombpairs", sub, "bomb.png"))
    for label, args in (("apply", ["apply", "bomb.png", "o.png"]),
                        ("batch", ["batch", "bombs", "-o", "bombs-out", "--report", "bombs.jsonl"]),
                        ("eval", ["eval", "--pairs", "bombpairs", "--out", "bombs-eval"])):
        start = time.time()
        rc, out = run([F2A, *args, "--model", "model.f2aw"], megabytes=4096, extra_env=limit)
        took = time.time() - start
        check(f"{label}: PNG bomb with F2A_MAX_MEMORY_MB=500: refused from the header in {took:.2f} s (exit {rc})",
              rc == 1 and "30000x30000" in out and "only 500 MB" in out and took < 5, out)


def test_untrusted_loaders():
    """An SVG including a sibling file: refused (libvips' untrusted loaders are blocked), unless allowed."""
    subprocess.run(["vips", "black", p("secret0.png"), "20", "20"], check=True)
    subprocess.run(["vips", "invert", p("secret0.png"), p("secret.png")], check=True)
    with open(p("include.svg"), "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" '
                'height="40"><image xlink:href="secret.png" x="0" y="0" width="40" height="40"/></svg>')
    os.makedirs(p("svgs"))
    shutil.copy(p("include.svg"), p("svgs", "include.png"))   # the suffix lies; libvips sniffs the content
    rc, out = f2a("apply", "include.svg", "svg.png", "--model", "model.f2aw")
    check(f"apply: an SVG including a sibling file: refused (exit {rc})",
          rc == 1 and "blocked" in out and "F2A_UNTRUSTED_LOADERS" in out and not os.path.exists(p("svg.png")), out)
    rc, out = f2a("batch", "svgs", "-o", "svgs-out", "--model", "model.f2aw")
    check(f"batch: an SVG named .png including a sibling file: that file fails (exit {rc})",
          rc == 1 and "blocked" in out and not os.path.exists(p("svgs-out", "include.png")), out)
    rc, out = f2a("apply", "include.svg", "svg.png", "--model", "model.f2aw",
                  extra_env={"F2A_UNTRUSTED_LOADERS": "allow"})
    check(f"apply with F2A_UNTRUSTED_LOADERS=allow: the SVG is read (exit {rc})", rc == 0, out)
    rc, out = f2a("apply", "b.jpg", "o.jpg", "--model", "model.f2aw", extra_env={"F2A_UNTRUSTED_LOADERS": "yes"})
    check(f"apply with F2A_UNTRUSTED_LOADERS=yes: refused, naming it (exit {rc})",
          rc == 2 and "F2A_UNTRUSTED_LOADERS='yes'" in out, out)
    # The operation does not change its host's policy: vips itself reads the SVG, the operation runs.
    rc, out = vips("flash2ambient", "include.svg", "svg-vips.png", "--model", "model.f2aw")
    check(f"vips flash2ambient leaves the host's loader policy alone (exit {rc})", rc == 0, out)


def test_names():
    """A file name that is not valid UTF-8: a failure of its own, never skipped, never another file."""
    os.makedirs(p("names"))
    shutil.copy(p("b.jpg"), p("names", "ok.jpg"))
    bad = os.fsencode(p("names")) + b"/bad\xff.jpg"
    shutil.copy(p("b.jpg"), bad)
    # What a lossy decoding of bad\xff.jpg would turn it into: must not be read in its place.
    shutil.copy(p("b.jpg"), p("names", "bad\ufffd.jpg"))
    rc, out = run([F2A, "batch", "names", "-o", "names-out", "--report", "names.jsonl", "--model", "model.f2aw"])
    report = open(p("names.jsonl")).read() if os.path.exists(p("names.jsonl")) else ""
    check(f"batch over a directory: bad\\xff.jpg fails with a clear error (exit {rc})",
          rc == 1 and "bad\\xff.jpg: the file name is not valid UTF-8" in out and "not valid UTF-8" in report
          and '"failed"' in report, out + report)
    rc, out = run([F2A, "batch", "-", "-o", "stdin-out", "--model", "model.f2aw"],
                  stdin=b"names/bad\xff.jpg\nnames/ok.jpg\n")
    check(f"batch from stdin: bad\\xff.jpg fails, not read as bad\ufffd.jpg (exit {rc})",
          rc == 1 and "bad\\xff.jpg: the file name is not valid UTF-8" in out
          and sorted(os.listdir(p("stdin-out"))) == [".f2a-batch", "ok.jpg"], out + str(os.listdir(p("stdin-out"))))
    rc, out = run([F2A, "apply", b"names/bad\xff.jpg", "argv.jpg", "--model", "model.f2aw"])
    check(f"apply names/bad\\xff.jpg on the command line: a usage error, not bad\ufffd.jpg read (exit {rc})",
          rc == 64 and "bad\\xff.jpg is not valid UTF-8" in out and "Usage:" in out and not os.path.exists(p("argv.jpg")),
          out)


def test_pages():
    """Multi-page and animated images: refused naming the page count, not cut to the first page."""
    subprocess.run(["vips", "arrayjoin", f"{p('b.jpg')} {p('b.jpg')}", p("joined.png"), "--across", "1"], check=True)
    height = int(subprocess.run(["vipsheader", "-f", "height", p("b.jpg")], capture_output=True, text=True).stdout)
    subprocess.run(["vips", "tiffsave", p("joined.png"), p("two.tif"), "--page-height", str(height)], check=True)
    subprocess.run(["vips", "copy", p("two.tif") + "[n=-1]", p("two.gif")], check=True)
    for name in ("two.tif", "two.gif"):
        rc, out = f2a("apply", name, "pages.png", "--model", "model.f2aw")
        check(f"apply: a 2-page {name[4:]}: refused naming the pages (exit {rc})",
              rc == 1 and "has 2 pages" in out and not os.path.exists(p("pages.png")), out)
    os.makedirs(p("pages"))
    shutil.copy(p("two.tif"), p("pages", "two.tif"))
    rc, out = f2a("batch", "pages", "-o", "pages-out", "--model", "model.f2aw")
    check(f"batch: a 2-page TIFF fails naming the pages (exit {rc})", rc == 1 and "has 2 pages" in out, out)


def main():
    test_inputs_never_overwritten()
    test_trainer_inputs_never_overwritten()
    test_trainer_best_at_step_0()
    test_special_files()
    test_settings()
    test_model_setting()
    test_exit_codes()
    test_leftovers()
    test_weights_memory()
    test_address_space_ladder()
    test_start_up_edge()
    test_decompression_bombs()
    test_untrusted_loaders()
    test_names()
    test_pages()
    return finish("reliability")


if __name__ == "__main__":
    sys.exit(main())
