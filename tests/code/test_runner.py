"""The local runner on real programs: each fault is one program's verdict, the run goes on, and the
machine keeps what it had (no file outside the scratch folder, no process left, no connection)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from natural_thoughts.code import Limits, LocalSandbox, Program, TestCase, outputs_match, run_programs, values_match

FAST = Limits(timeout=1.0, memory_mb=256, output_mb=4)
ADD = (TestCase("stdin", "1 2\n", "3\n"), TestCase("stdin", "20 22\n", "42\n"))
GOOD = Program("a, b = map(int, input().split())\nprint(a + b)", ADD)


def _one(code: str, tests: tuple[TestCase, ...] = ADD) -> tuple:
    """The bad program between two good ones: its outcome, and whether both good ones still passed."""
    first, bad, last = run_programs([GOOD, Program(code, tests), GOOD], FAST)
    return bad, first.correct and last.correct


@pytest.mark.parametrize(("code", "kind", "message"), [
    ("a, b = map(int, input().split())\nprint(a - b)", "wrong_answer", None),
    ("print(1 // 0)", "runtime_error", "ZeroDivisionError"),
    ("while True:\n    pass", "timeout", "time limit"),
    ("hog = [0] * (1 << 30)", "memory", "MemoryError"),
    ("print(', '.join(['x' * 1000] * 100_000))", "runtime_error", "output limit"),
    ("def f(:\n    pass", "compile", "SyntaxError"),
    ("import ctypes\nctypes.string_at(0)", "runtime_error", "SIGSEGV"),
])
def test_each_fault_is_one_verdict(code: str, kind: str, message: str | None) -> None:
    bad, others_passed = _one(code)
    assert others_passed
    assert not bad.correct and bad.failure is not None and bad.failure.kind == kind
    assert message is None or message in (bad.failure.message or "")


def test_a_wrong_answer_shows_input_expected_and_actual() -> None:
    bad, _ = _one("a, b = map(int, input().split())\nprint(a * b)")
    assert (bad.tests, bad.run, bad.passed, bad.pass_rate) == (2, 2, 0, 0.0)
    assert (bad.failure.input, bad.failure.expected, bad.failure.actual) == ("1 2\n", "3\n", "2\n")


def test_a_timeout_stops_the_program_but_counts_its_tests() -> None:
    bad, _ = _one("import time\ntime.sleep(30)")
    assert (bad.tests, bad.run, bad.passed) == (2, 1, 0) and bad.failure.kind == "timeout"


def _children() -> list[str]:
    """The processes whose parent is this one."""
    mine = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if any(line.split()[1:2] == [mine] for line in status.splitlines() if line.startswith("PPid:")):
            found.append(pid)
    return found


def test_a_fork_bomb_is_refused_and_leaves_no_process() -> None:
    before = set(_children())  # a test worker may hold other tests' processes (a session's vLLM engine)
    bad, others_passed = _one("import os\nwhile True:\n    os.fork()")
    assert others_passed and bad.failure.kind == "runtime_error" and "blocked" in bad.failure.message
    assert not set(_children()) - before


def test_a_subprocess_is_refused() -> None:
    bad, _ = _one("import subprocess\nprint(subprocess.run(['echo', '3'], capture_output=True).stdout)")
    assert bad.failure.kind == "runtime_error" and "blocked" in bad.failure.message


def test_files_change_only_in_the_scratch_folder(tmp_path: Path) -> None:
    outside, kept = tmp_path / "written", tmp_path / "kept"
    kept.write_text("mine")
    scratch = Program("open('local.txt', 'w').write('3')\nprint(open('local.txt').read())",
                      (TestCase("stdin", "", "3"),))
    writer = Program(f"open({str(outside)!r}, 'w').write('x')", ADD)
    remover = Program(f"import os\nos.remove({str(kept)!r})", ADD)
    own, wrote, removed = run_programs([scratch, writer, remover], FAST)
    assert own.correct
    assert wrote.failure.kind == removed.failure.kind == "runtime_error"
    assert not outside.exists() and kept.read_text() == "mine"


def test_a_socket_is_refused() -> None:
    bad, _ = _one("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)")
    assert bad.failure.kind == "runtime_error" and "blocked" in bad.failure.message


def test_the_network_is_gone_where_unshare_allows() -> None:
    """Below the Python guard: with `unshare -rn` the process has no interface but a down loopback."""
    from natural_thoughts.code import network_isolation

    if not network_isolation():
        pytest.skip("this machine does not let an unprivileged process leave the network namespace")
    done = subprocess.run([*network_isolation(), "cat", "/proc/net/dev"], capture_output=True, text=True, timeout=30)
    assert [line.split(":")[0].strip() for line in done.stdout.splitlines()[2:]] == ["lo"]


def test_stdin_in_every_form_and_threads() -> None:
    forms = ["import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))",
             "print(sum(map(int, open(0).read().split())))",
             "import os\nprint(sum(map(int, os.read(0, 100).split())))",
             "import sys, threading\nthreading.stack_size(1 << 26)\n"
             "threading.Thread(target=lambda: print(sum(map(int, sys.stdin.readline().split())))).start()"]
    assert all(o.correct for o in run_programs([Program(code, ADD) for code in forms], FAST))


def test_calls_a_solution_method_or_a_function() -> None:
    tests = (TestCase("call", "[[1, 2, 3], 2]", "12", "scaled"), TestCase("call", "[[], 5]", "0", "scaled"))
    method = Program("class Solution:\n    def scaled(self, xs: List[int], k: int) -> int:\n        return sum(xs) * k",
                     tests, prelude="from typing import List\n")
    function = Program("def scaled(xs, k):\n    return sum(xs) * k + 1", tests)
    right, wrong = run_programs([method, function], FAST)
    assert right.correct and (wrong.passed, wrong.failure.actual) == (0, "13")


def test_an_assert_test_names_the_failing_line() -> None:
    test = TestCase("assert", "def check(c):\n    assert c(2) == 4\n    assert c(3) == 9\ncheck(square)", name="square")
    outcome, = run_programs([Program("def square(x):\n    return x * 2", (test,))], FAST)
    assert outcome.failure.kind == "wrong_answer" and outcome.failure.input == "assert c(3) == 9"


def test_workers_do_not_change_verdicts() -> None:
    programs = [GOOD, Program("print(3)", ADD), Program("print(1 // 0)", ADD)] * 2
    assert LocalSandbox(workers=1).run(programs, FAST) == LocalSandbox(workers=2).run(programs, FAST)


@pytest.mark.parametrize(("actual", "expected", "same"), [
    ("1 2\n3\n", "1  2\n3", True),            # spaces inside a line and trailing newlines
    ("0.3333333\n", "0.333333333", True),     # floats within 1e-6
    ("0.33\n", "0.333333333", False),
    ("3\n", "3.0", True),                     # a float token compares as a number
    ("10000000000000000001", "10000000000000000000", False),  # integers compare exactly
    ("YES\nNO", "YES\nNO\nYES", False),
    ("yes", "YES", False),
])
def test_outputs_match_like_livecodebench(actual: str, expected: str, same: bool) -> None:
    assert outputs_match(actual, expected) is same


def test_values_match() -> None:
    assert values_match((1, [2, 3]), [1, [2, 3]]) and values_match(0.1 + 0.2, 0.3)
    assert not values_match(True, 1.0) and not values_match([1, 2], [1, 2, 3])


def test_os_exit_ends_the_program_not_the_run() -> None:
    outcome, = run_programs([Program("import os\nprint(3)\nos._exit(0)", (TestCase("stdin", "", "3"),) * 2)], FAST)
    assert outcome.correct


def test_a_runner_that_cannot_start_stops_with_one_message(tmp_path: Path) -> None:
    """Not every program's verdict: an interpreter that never reaches the tests is the run's error."""
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no interpreter here' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(RuntimeError, match="could not start .*exit status 3.*no interpreter here"):
        LocalSandbox(python=str(broken)).run([GOOD], FAST)
