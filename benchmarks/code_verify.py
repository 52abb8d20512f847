"""Programs verified per second: the local runner against a naive sequential subprocess loop.

The programs and tests are the shared files' (LiveCodeBench o1-mini and Reflexion GPT-4, every
`step`-th row of each). The naive loop is what one writes first: for every test of every program,
`subprocess.run([python, "-c", program], input=..., timeout=...)`, one after another, output
compared with the same `outputs_match`. The runner is `LocalSandbox` with 1 worker and with one per
core. All three run in this one process, one after another, on the same programs; the machine's
load average is printed before and after (a shared machine makes every figure noisy, the ratios
less so). Verdicts are compared too: the same work, not just the same time.

    .venv/bin/python benchmarks/code_verify.py [--step 4] [--timeout 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "code"
sys.path.insert(0, str(REPO))

from natural_thoughts.code import (  # noqa: E402
    Limits, LocalSandbox, Program, build_program, outputs_match, values_match,
)
from natural_thoughts.load import load_traces  # noqa: E402

CALL = ("\nimport json as _json, sys as _sys\n_args = _json.loads(_sys.stdin.read())\n"
        "_f = getattr(Solution(), {name!r}) if 'Solution' in globals() else globals()[{name!r}]\n"
        "print(_json.dumps(_f(*_args)))\n")


def programs(step: int) -> list[Program]:
    """Every `step`-th trace of both shared code files, as the verifier builds it."""
    found = []
    for name, preset in (("lcb_o1-mini-2024-09-12.jsonl", "livecodebench"),
                         ("reflexion_humaneval_mbpp_gpt4.jsonl", "reflexion")):
        ds = load_traces(DATA / name, preset=preset)
        ds = ds.select(range(0, len(ds), step))
        for answer, completion, problem, tests, fn in zip(ds["answer"], ds["completion"], ds["problem"], ds["tests"],
                                                         ds["fn_name"]):
            built = build_program(answer, problem, tests, fn, completion)
            if isinstance(built, Program):
                found.append(built)
    return found


def naive(program: Program, timeout: float) -> bool:
    """The first loop one writes: each test in its own `python -c`, in turn; stop at a failure."""
    for test in program.tests:
        if test.kind == "assert":
            source, given = program.prelude + program.code + "\n" + test.input, ""
        elif test.kind == "call":
            source, given = program.prelude + program.code + CALL.format(name=test.name), test.input
        else:
            source, given = program.prelude + program.code, test.input
        try:
            done = subprocess.run([sys.executable, "-c", source], input=given, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        if done.returncode != 0:
            return False
        if test.kind == "stdin" and not outputs_match(done.stdout, test.expected):
            return False
        if test.kind == "call":
            try:
                got = json.loads(done.stdout)
            except json.JSONDecodeError:
                return False
            want = json.loads(test.expected)
            if not (values_match(got, want) or (test.wrapped and isinstance(want, list) and len(want) == 1
                                                and values_match(got, want[0]))):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", type=int, default=4, help="every step-th row of each file")
    parser.add_argument("--timeout", type=float, default=6.0, help="seconds per test")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    work = programs(args.step)
    tests = sum(len(p.tests) for p in work)
    limits = Limits(timeout=args.timeout)
    report: dict = {"programs": len(work), "tests": tests, "cores": os.cpu_count(), "load_before": os.getloadavg()}
    print(f"{len(work)} programs, {tests} tests, {os.cpu_count()} cores; load average {report['load_before']}")
    runs = [("naive sequential subprocess loop", lambda: [naive(p, args.timeout) for p in work]),
            ("LocalSandbox, 1 worker", lambda: [o.correct for o in LocalSandbox(workers=1).run(work, limits)]),
            (f"LocalSandbox, {os.cpu_count()} workers", lambda: [o.correct for o in LocalSandbox().run(work, limits)])]
    verdicts = {}
    for name, run in runs:
        start = time.perf_counter()
        verdicts[name] = run()
        seconds = time.perf_counter() - start
        report[name] = {"seconds": round(seconds, 2), "programs_per_s": round(len(work) / seconds, 2),
                        "passed": sum(verdicts[name]), "load_after": os.getloadavg()}
        print(f"{name:40s} {seconds:8.1f} s  {len(work) / seconds:7.2f} programs/s  passed {sum(verdicts[name])}"
              f"  load average after {os.getloadavg()}")
    base = report[runs[0][0]]["seconds"]
    for name, _ in runs[1:]:
        report[name]["speedup_vs_naive"] = round(base / report[name]["seconds"], 2)
        report[name]["same_verdicts_as_naive"] = sum(a == b for a, b in zip(verdicts[name], verdicts[runs[0][0]]))
        print(f"{name}: {report[name]['speedup_vs_naive']}x the naive loop; same verdict on "
              f"{report[name]['same_verdicts_as_naive']}/{len(work)} programs")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
