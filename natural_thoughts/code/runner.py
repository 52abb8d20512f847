"""Running programs against tests: the `Sandbox` protocol and the local runner (`LocalSandbox`).

Each program runs in its own process (`harness.py`) under CPU-time, wall-time, memory, output-size
and process-count limits, in a scratch folder with a clean environment and, where `unshare` allows,
without a network. Programs run in parallel over the cores (one thread per process it waits on).
A crash, a fork bomb or an endless loop is that program's verdict, never the run's.

These limits keep honest mistakes from harming the machine; they are not a security boundary.
Run untrusted code through a real sandbox: any object with `run(programs, limits)` (SandboxFusion,
E2B, a container runner) can replace `LocalSandbox`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

HARNESS = Path(__file__).with_name("harness.py")
FAILURE_KINDS: tuple[str, ...] = ("wrong_answer", "runtime_error", "timeout", "memory", "compile")
SHOWN = 500
"""Characters kept of a failure's input, expected and actual output and message."""
STARTUP_SECONDS = 5.0
"""Wall time allowed beyond the tests' own limits (interpreter start, imports), on a loaded machine too."""

READY = "ready"
"""The harness's first line once its limits and guards are set (else it did not start)."""
STOPS = ("timeout", "compile")
"""Verdicts after which a program's remaining tests are not run."""
TestKind = Literal["stdin", "call", "assert"]


@dataclass(frozen=True)
class TestCase:
    """One test: `stdin` (input text; expected stdout), `call` (a JSON list of arguments for the
    function or `Solution` method `name`; the expected JSON value, `wrapped` when APPS/TACO may keep
    it in a one-item list) or `assert` (test code that raises when the program is wrong)."""

    __test__ = False  # not a pytest class, whatever its name

    kind: TestKind
    input: str
    expected: str = ""
    name: str | None = None
    wrapped: bool = False


@dataclass(frozen=True)
class Program:
    """Source code and its tests; `prelude` is code run before it (LiveCodeBench's imports)."""

    code: str
    tests: tuple[TestCase, ...]
    prelude: str = ""


@dataclass(frozen=True)
class Limits:
    """Per-test wall `timeout` (s; CPU time gets the same for all tests together), address space
    `memory_mb`, `output_mb` per test output or written file, `processes` the user may add (where
    the kernel enforces it: not for root), and the float `tolerance` of output comparison."""

    timeout: float = 6.0
    memory_mb: int = 1024
    output_mb: int = 16
    processes: int = 32
    tolerance: float = 1e-6


@dataclass(frozen=True)
class Failure:
    """The first failing test: its kind (`FAILURE_KINDS`), input, expected and actual output and
    message, each cut to `SHOWN` characters."""

    kind: str
    input: str | None = None
    expected: str | None = None
    actual: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One program's verdict: tests in all, run (a timeout or compile error stops the rest), passed."""

    tests: int
    run: int
    passed: int
    failure: Failure | None = None

    @property
    def pass_rate(self) -> float:
        return self.passed / self.tests if self.tests else 0.0

    @property
    def correct(self) -> bool:
        return self.tests > 0 and self.passed == self.tests


@runtime_checkable
class Sandbox(Protocol):
    """Runs programs against their tests: one `Outcome` per program, in order."""

    def run(self, programs: Sequence[Program], limits: Limits) -> list[Outcome]: ...


@functools.cache
def network_isolation() -> list[str]:
    """`unshare -rn --` when this machine lets an unprivileged process leave the network, else []
    (then only the harness's Python-level socket guard remains)."""
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10)
    return ["unshare", "-rn", "--"] if probe.returncode == 0 else []


def _process_cap(limits: Limits) -> int | None:
    """RLIMIT_NPROC for the child: the user's current processes plus `limits.processes`; None for
    root, whom the kernel does not limit (the harness's guard is all there is)."""
    if os.getuid() == 0:
        return None
    uid = str(os.getuid())
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        count += any(line.startswith("Uid:") and line.split()[1] == uid for line in status.splitlines())
    return count + limits.processes


def _cut(text: str | None) -> str | None:
    return None if text is None else text if len(text) <= SHOWN else text[:SHOWN] + " …"


def _is_compile_error(line: str) -> bool:
    """Whether the harness's first line is the compile verdict (written before its ready line)."""
    try:
        return json.loads(line).get("status") == "compile"
    except (json.JSONDecodeError, AttributeError):
        return False


def _death(rc: int, killed: bool) -> dict[str, Any]:
    """The verdict on the test that was running when the harness ended without reporting it."""
    if killed or rc == -signal.SIGXCPU:
        return {"status": "timeout", "error": "time limit exceeded (killed)"}
    if rc < 0:
        return {"status": "runtime_error", "error": f"killed by {signal.Signals(-rc).name}"}
    return {"status": "runtime_error", "error": f"the program ended the process (exit status {rc})"}


@dataclass
class LocalSandbox:
    """The embedded runner: each program in a `harness.py` process on this machine, `workers`
    at a time (default: the number of cores)."""

    workers: int | None = None
    python: str = sys.executable
    _cap: int | None = field(default=None, init=False, repr=False)

    def run(self, programs: Sequence[Program], limits: Limits) -> list[Outcome]:
        """Every program's `Outcome`, in order."""
        self._cap = _process_cap(limits)
        with ThreadPoolExecutor(max_workers=self.workers or os.cpu_count() or 1) as pool:
            return list(pool.map(lambda p: self.run_one(p, limits), programs))

    def run_one(self, program: Program, limits: Limits) -> Outcome:
        """One program: the harness runs its tests in order; a test that kills the harness is
        recorded and the rest run in a fresh one, unless it timed out (the rest would cost the same)."""
        results: list[dict[str, Any]] = []
        while len(results) < len(program.tests):
            remaining = program.tests[len(results):]
            reported, death = self._harness(program, remaining, limits)
            results += reported
            if death is not None:
                results.append(death)
            if results and results[-1]["status"] in STOPS:
                break
        return self._outcome(program, results)

    def _harness(self, program: Program, tests: Sequence[TestCase], limits: Limits
                 ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Run `tests` in one harness process: the result lines it wrote, and the verdict on the test
        it died in (None when it finished)."""
        job = {"code": program.code, "prelude": program.prelude, "tests": [vars(t) for t in tests],
               "timeout": limits.timeout, "memory": limits.memory_mb << 20, "output": limits.output_mb << 20,
               "processes": self._cap, "tolerance": limits.tolerance}
        scratch = tempfile.mkdtemp(prefix="nt-code-")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": scratch,
               "TMPDIR": scratch, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = [*network_isolation(), self.python, "-s", "-P", str(HARNESS)]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=scratch, env=env, start_new_session=True)
        killed = False
        try:
            out, err = proc.communicate(json.dumps(job).encode(), timeout=limits.timeout * len(tests) + STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the program left behind
            except ProcessLookupError:
                pass
            shutil.rmtree(scratch, ignore_errors=True)
        lines = out.decode("utf-8", "replace").splitlines()
        if lines[:1] == [READY]:
            lines = lines[1:]
        elif not killed and not _is_compile_error(lines[0] if lines else ""):
            raise RuntimeError(f"the code runner could not start ({' '.join(command)}, exit status {proc.returncode}): "
                               f"{err.decode('utf-8', 'replace').strip()[-SHOWN:] or 'no message'}; check that this "
                               "Python runs and that `unshare -rn true` works here, or pass another Sandbox")
        reported = []
        for line in lines[:len(tests)]:
            try:
                reported.append(json.loads(line))
            except json.JSONDecodeError:
                break
        if len(reported) == len(tests) or reported and reported[-1]["status"] in STOPS:
            return reported, None
        return reported, _death(proc.returncode, killed)

    @staticmethod
    def _outcome(program: Program, results: list[dict[str, Any]]) -> Outcome:
        """Count the passes; describe the first failure."""
        passed = sum(r["status"] == "passed" for r in results)
        failing = next(((i, r) for i, r in enumerate(results) if r["status"] != "passed"), None)
        failure = None
        if failing is not None:
            i, r = failing
            test = program.tests[min(i, len(program.tests) - 1)]
            message = r.get("error")
            if r.get("stderr"):
                message = f"{message}\n{r['stderr']}" if message else r["stderr"]
            shown_input = r.get("failing") or test.input if test.kind == "assert" else test.input
            failure = Failure(r["status"], _cut(None if r["status"] == "compile" else shown_input),
                              _cut(test.expected or None), _cut(r.get("actual")), _cut(message))
        ran = sum(r["status"] != "compile" for r in results)
        return Outcome(len(program.tests), ran, passed, failure)


def run_programs(programs: Sequence[Program], limits: Limits | None = None,
                 sandbox: Sandbox | None = None) -> list[Outcome]:
    """Each program's `Outcome` from `sandbox` (default: a `LocalSandbox` over all cores)."""
    return (sandbox or LocalSandbox()).run(programs, limits or Limits())
