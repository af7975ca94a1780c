"""How the Python test scripts check, print and count; Tests/lib/checks.sh is the same for the shell
scripts, so every suite reads alike:

    ok    NAME
    FAIL  NAME
          the last 8 lines of the detail, indented
    failed: NAME                      (once more for each failure, just before the summary)
    SUITE: N passed, M failed

    sys.path.insert(0, os.path.join(ROOT, "Tests", "lib"))
    from checks import check, attempt, workdir, finish
    W = workdir("f2a-cli-test-")      # removed at exit unless a check failed
    check("name", condition, detail)  # detail: text or bytes shown on failure
    attempt("name", fn)               # passes when fn() returns (its result, if any, follows the name)
    sys.exit(finish("cli"))           # prints the summary; 1 when any check failed
"""
import atexit
import os
import shutil
import sys
import tempfile

passed = 0
failed = 0
_failures = []  # their names, repeated before the summary: a CI log is often read from its tail
_workdirs = []


def _text(detail):
    return detail.decode(errors="replace") if isinstance(detail, (bytes, bytearray)) else str(detail)


def check(name, condition, detail=""):
    """Counts and prints one check; returns whether it passed."""
    global passed, failed
    if condition:
        passed += 1
        print(f"ok    {name}", flush=True)
    else:
        failed += 1
        _failures.append(name)
        print(f"FAIL  {name}", flush=True)
        for line in _text(detail).strip().splitlines()[-8:]:
            print(f"      {line}", flush=True)
    return bool(condition)


def attempt(name, fn):
    """A check that passes when fn() returns and fails when it raises (any exception, reported and
    survived, so the remaining checks still run); fn's result, if any, is shown after the name."""
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - report and go on
        return check(name, False, f"{type(e).__name__}: {e}")
    return check(f"{name} ({result})" if result else name, True)


def workdir(prefix):
    """A new empty directory under /tmp, removed at exit when every check passed; kept (and named)
    when one failed, to look at what it left."""
    path = tempfile.mkdtemp(prefix=prefix)
    _workdirs.append(path)
    return path


@atexit.register
def _cleanup():
    for path in _workdirs:
        if failed == 0:
            shutil.rmtree(path, ignore_errors=True)
        else:
            print(f"kept  {path} (a check failed)", flush=True)


def finish(suite):
    """Prints the failed checks' names and "SUITE: N passed, M failed"; returns the exit status (1
    when any check failed)."""
    for name in _failures:
        print(f"failed: {name}", flush=True)
    print(f"{suite}: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0
