"""The child side of the local runner: runs one program against its tests, inside the limits.

Started by `runner.LocalSandbox` as `python -s -P harness.py` in a scratch folder with a clean
environment; it reads one job (JSON) from stdin, sets its own resource limits, blocks process
creation and sockets at the Python level, then runs each test and writes one JSON line per test to
the result pipe (its original stdout). The program's own stdin/stdout are files in the scratch
folder put on fds 0/1, so `input()`, `sys.stdin.buffer`, `open(0)` and `os.write(1, ...)` all work.
Only the standard library is imported here, and `outputs_match` is also the parent's comparison.
"""

from __future__ import annotations

import builtins
import errno
import json
import math
import os
import resource
import signal
import sys
import traceback
from typing import Any

SHOWN = 2000
"""Characters of an actual output or error message sent back (the parent cuts further)."""


def _same_token(got: str, want: str, tolerance: float) -> bool:
    """Tokens equal as text, or as numbers (floats within `tolerance`, absolute or relative)."""
    if got == want:
        return True
    try:
        a, b = float(got), float(want)
    except ValueError:
        return False
    if not any(c in token for token in (got, want) for c in ".eE"):
        return False  # two different integers
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def outputs_match(actual: str, expected: str, tolerance: float = 1e-6) -> bool:
    """LiveCodeBench's stdout comparison: the same lines once the ends are stripped, each line the
    same whitespace-separated tokens, numbers compared as numbers (floats within `tolerance`)."""
    got, want = actual.strip().split("\n"), expected.strip().split("\n")
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if g.strip() == w.strip():
            continue
        g_tokens, w_tokens = g.split(), w.split()
        if len(g_tokens) != len(w_tokens) or not all(_same_token(a, b, tolerance) for a, b in zip(g_tokens, w_tokens)):
            return False
    return True


def values_match(actual: Any, expected: Any, tolerance: float = 1e-6) -> bool:
    """A function's return value against the expected JSON value (tuples as lists, floats within
    `tolerance`)."""
    if isinstance(actual, float) or isinstance(expected, float):
        if isinstance(actual, (int, float)) and isinstance(expected, (int, float)) and not isinstance(actual, bool):
            return math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance)
        return False
    if isinstance(actual, (list, tuple)) and isinstance(expected, list):
        return len(actual) == len(expected) and all(values_match(a, e, tolerance) for a, e in zip(actual, expected))
    return bool(actual == expected)


class TimeLimit(BaseException):
    """Raised by the per-test alarm (a BaseException, so `except Exception` in a program does not
    swallow it)."""


class OutputLimit(BaseException):
    """Raised when a program's output file reaches the size limit."""


def _blocked(*args: Any, **kwargs: Any) -> Any:
    raise PermissionError(errno.EPERM, "blocked by the code runner (no processes, no network)")


def _exit(status: int) -> None:
    """`os._exit` ends the program, not the harness (its output so far still counts)."""
    raise SystemExit(status)


def _confined(function: Any, scratch: str, arguments: int = 1) -> Any:
    """`function` refusing paths (its first `arguments` ones) outside the scratch folder."""
    def inside(path: Any) -> bool:
        if isinstance(path, int):
            return True  # a file descriptor already open
        real = os.path.realpath(os.fsdecode(path))
        return real == scratch or real.startswith(scratch + os.sep) or real == os.devnull

    def confined(*args: Any, **kwargs: Any) -> Any:
        if not all(inside(path) for path in args[:arguments]):
            raise PermissionError(errno.EPERM, "the code runner allows changes inside its scratch folder only")
        return function(*args, **kwargs)
    return confined


def _guard() -> None:
    """Best effort, at the Python level only: process creation and sockets raise PermissionError,
    and files change only inside the scratch folder (the current directory)."""
    import _posixsubprocess
    import io
    import posix
    import socket

    for module in (os, posix):
        for name in ("fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "execv", "execve",
                     "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnl",
                     "spawnle", "spawnvp", "spawnvpe", "spawnlp", "spawnlpe", "kill", "killpg"):
            if hasattr(module, name):
                setattr(module, name, _blocked)
    _posixsubprocess.fork_exec = _blocked
    os._exit = posix._exit = _exit  # type: ignore[assignment]
    socket.socket = socket.create_connection = socket.socketpair = _blocked  # type: ignore[assignment,misc]
    scratch = os.path.realpath(os.getcwd())
    builtin_open, os_open = builtins.open, os.open
    confined_open = _confined(builtin_open, scratch)

    def open_file(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return (confined_open if set(mode) & set("wax+") else builtin_open)(file, mode, *args, **kwargs)

    def open_fd(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        return (_confined(os_open, scratch) if writes else os_open)(path, flags, *args, **kwargs)

    builtins.open = io.open = open_file  # type: ignore[assignment]
    for module in (os, posix):
        module.open = open_fd  # type: ignore[attr-defined]
        for name, paths in (("remove", 1), ("unlink", 1), ("rmdir", 1), ("removedirs", 1), ("mkdir", 1),
                            ("makedirs", 1), ("chmod", 1), ("chown", 1), ("truncate", 1), ("utime", 1),
                            ("rename", 2), ("renames", 2), ("replace", 2), ("link", 2), ("symlink", 2)):
            if hasattr(module, name):
                setattr(module, name, _confined(getattr(module, name), scratch, paths))


def _limit(job: dict[str, Any]) -> None:
    """CPU (all tests together), address space, file size and, where enforced, process count."""
    cpu = math.ceil(job["timeout"] * max(len(job["tests"]), 1)) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["output"], job["output"]))
    if job.get("processes") is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (job["processes"], job["processes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _on_alarm(signum: int, frame: Any) -> None:
    raise TimeLimit


def _write_inputs(tests: list[dict[str, Any]]) -> None:
    """Each stdin test's input as the file `in<index>` (written before the file-size limit)."""
    for index, test in enumerate(tests):
        with open(f"in{index}", "w", encoding="utf-8") as f:
            f.write(test["input"] if test["kind"] == "stdin" else "")


def _redirect(index: int) -> None:
    """fd 0 reads test `index`'s input; fds 1 and 2 write to fresh files; sys.std* follow."""
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, name, flags in ((0, f"in{index}", os.O_RDONLY), (1, "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, "err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(name, flags, 0o600)
        if opened != fd:  # the program may have closed fd (a collected `open(0)` does), so it came back
            os.dup2(opened, fd)
            os.close(opened)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)


def _join_threads() -> None:
    """Wait for threads the program started (competitive programs often run `main` in a thread
    with a larger stack)."""
    threading = sys.modules.get("threading")
    if threading is not None:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()


def _read(name: str) -> str:
    with open(name, encoding="utf-8", errors="replace") as f:
        return f.read()


def _failing_line(exc: BaseException, source: str) -> str | None:
    """The line of the test code (`<test>`) where `exc` was raised, e.g. the failing assert."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<test>"]
    if not frames or not frames[-1].lineno:
        return None
    return source.splitlines()[frames[-1].lineno - 1].strip()


def _run_test(program: Any, test: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """One test: execute the compiled program in fresh globals, then call or check it."""
    scope: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    kind = test["kind"]
    try:
        exec(program, scope)
        _join_threads()
        if kind == "stdin":
            sys.stdout.flush()
            actual = _read("out")
            ok = outputs_match(actual, test["expected"], tolerance)
            return {"status": "passed" if ok else "wrong_answer", "actual": None if ok else actual[:SHOWN]}
        if kind == "call":
            name = test["name"]
            target = getattr(scope["Solution"](), name) if "Solution" in scope and hasattr(scope["Solution"], name) \
                else scope[name]
            result = target(*json.loads(test["input"]))
            expected = json.loads(test["expected"])
            ok = values_match(result, expected, tolerance) or (
                bool(test.get("wrapped")) and isinstance(expected, list) and len(expected) == 1
                and values_match(result, expected[0], tolerance))
            return {"status": "passed" if ok else "wrong_answer", "actual": None if ok else repr(result)[:SHOWN]}
        exec(compile(test["input"], "<test>", "exec"), scope)  # assert: the test code checks the program
        return {"status": "passed"}
    except SystemExit:
        if kind != "stdin":
            return {"status": "runtime_error", "error": "SystemExit"}
        sys.stdout.flush()
        actual = _read("out")
        ok = outputs_match(actual, test["expected"], tolerance)
        return {"status": "passed" if ok else "wrong_answer", "actual": None if ok else actual[:SHOWN]}
    except TimeLimit:
        return {"status": "timeout", "error": "time limit exceeded"}
    except MemoryError:
        return {"status": "memory", "error": "MemoryError"}
    except AssertionError as exc:
        line = _failing_line(exc, test["input"]) if kind == "assert" else None
        return {"status": "wrong_answer" if kind == "assert" else "runtime_error", "failing": line,
                "error": f"AssertionError: {exc}"[:SHOWN]}
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            return {"status": "runtime_error", "error": "output limit exceeded"}
        return {"status": "runtime_error", "error": f"{type(exc).__name__}: {exc}"[:SHOWN]}
    except BaseException as exc:  # noqa: BLE001 - any error of the program is its verdict
        return {"status": "runtime_error", "error": f"{type(exc).__name__}: {exc}"[:SHOWN],
                "failing": _failing_line(exc, test["input"]) if kind == "assert" else None}


def main() -> None:
    """Read the job, set the limits, run each test, write its result line."""
    job = json.loads(sys.stdin.read())
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead
    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        program = compile(job["prelude"] + job["code"], "<program>", "exec")
    except (SyntaxError, ValueError) as exc:
        results.write(json.dumps({"status": "compile", "error": f"{type(exc).__name__}: {exc}"[:SHOWN]}) + "\n")
        return
    _write_inputs(job["tests"])
    _limit(job)
    _guard()
    results.write("ready\n")  # the parent's sign that the harness started
    results.flush()
    for index, test in enumerate(job["tests"]):
        _redirect(index)
        signal.setitimer(signal.ITIMER_REAL, job["timeout"])
        try:
            outcome = _run_test(program, test, job["tolerance"])
        except TimeLimit:  # the alarm rang while the verdict was being written
            outcome = {"status": "timeout", "error": "time limit exceeded"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if outcome["status"] == "runtime_error":
            sys.stderr.flush()
            outcome["stderr"] = _read("err")[-SHOWN:]
        results.write(json.dumps(outcome) + "\n")
        results.flush()
        if outcome["status"] == "timeout":
            break  # the rest would likely cost the full limit each; the parent counts them as not run


if __name__ == "__main__":
    main()
