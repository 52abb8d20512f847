"""Regenerate the in-repo samples from the full public files: `python examples/data/make_samples.py [../shared/data]`.

Each sample keeps whole lines of its source file, byte for byte and in the source's order, so a
test reads the same raw text in a sample as in the full file. Rows are chosen so that every kind a
test or recipe needs is present (quotas per kind first, then a seeded random fill); teacher/weak
pairs keep the same questions, and the benchmark samples hold the sampled questions (decontamination
finds them) plus unrelated rows. Same source files -> identical samples.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 0
THOUGHT_MARKERS = ("<|begin_of_thought|>", "<|end_of_thought|>", "<think>", "</think>", "<|begin_of_solution|>")
CLOSING = ("<|end_of_thought|>", "</think>")
PROSE_ANSWER = re.compile(r"(?:Therefore|So|Thus|Hence), [^.\n]* is (\d+)\.\s*$")

Kinds = Callable[[dict], list[str]]
"""A row's kinds (tags a quota is counted on)."""


def read(path: Path) -> list[tuple[str, dict]]:
    """The file's lines with their parsed rows."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return [(line, json.loads(line)) for line in lines if line.strip()]


def choose(rows: list[dict], n: int, kinds: Kinds, quota: int, *, must: set[int] = frozenset(),
           allowed: Callable[[dict], bool] = lambda r: True) -> list[int]:
    """`n` row indices (sorted): `must`, then up to `quota` rows of each kind, then a seeded fill."""
    rng = random.Random(SEED)
    order = [i for i in range(len(rows)) if allowed(rows[i])]
    rng.shuffle(order)
    chosen = set(must)
    by_kind: dict[str, list[int]] = {}
    for i in order:
        for kind in kinds(rows[i]):
            by_kind.setdefault(kind, []).append(i)
    for kind in sorted(by_kind):
        have = sum(kind in kinds(rows[i]) for i in chosen)
        for i in by_kind[kind]:
            if have >= quota or len(chosen) >= n:
                break
            if i not in chosen:
                chosen.add(i)
                have += 1
    for i in order:
        if len(chosen) >= n:
            break
        chosen.add(i)
    return sorted(chosen)


def write(name: str, lines: list[str]) -> None:
    out = HERE / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{name}: {len(lines)} rows, {out.stat().st_size / 1024:.0f} KiB")


def trace_kinds(row: dict) -> list[str]:
    """What a SkyThought trace is like: markers, cut off, prose answer, a #### heading, its verdict."""
    text = row["code"][0]
    kinds = ["correct" if row["score"][0] else "wrong"]
    if "<|begin_of_thought|>" in text:
        kinds.append("marked-closed" if any(m in text for m in CLOSING) else "marked-unterminated")
    elif re.search(r"\b(Wait|Hmm|Let me)\b", text) and len(text) >= 1000:
        kinds.append("marker-less-chain")
    if "\\boxed" not in text and not any(m in text for m in CLOSING) and not re.search(r"[.!?)\]$}]\s*$", text.strip() or "."):
        kinds.append("cut-off")
    if "\\boxed" not in text and "answer" not in text[-300:].lower() and PROSE_ANSWER.search(text):
        kinds.append("prose-answer")
    if re.search(r"^####[ \t]*\S[^\n]*\n\s*\S", text, re.MULTILINE):
        kinds.append("heading")
    reference = str(row.get("answer") or row["gt"])  # MATH-500's own answer where the file has it
    if re.fullmatch(r"(\\text\{)?\(?[A-E]\)?\}?", reference):
        kinds.append("reference-choice")
    elif re.fullmatch(r"(\\text\{)?[A-Za-z]+\}?", reference):
        kinds.append("reference-word")
    if row.get("answer_type"):
        kinds.append(f"type-{row['answer_type']}")
    return kinds


def pair(teacher: str, weak: str, n: int, quota: int) -> list[str]:
    """Sample a teacher file and its weak model's file on the same questions; the questions chosen."""
    t_rows, w_rows = read(DATA / teacher), read(DATA / weak)
    weak_by_q = {r["question"].strip(): (line, r) for line, r in w_rows}

    def kinds(row: dict) -> list[str]:
        w = weak_by_q[row["question"].strip()][1]
        return trace_kinds(row) + [f"teacher-{bool(row['score'][0])}-weak-{bool(w['score'][0])}"]

    rows = [r for _, r in t_rows]
    picked = choose(rows, n, kinds, quota, allowed=lambda r: r["question"].strip() in weak_by_q)
    write(teacher, [t_rows[i][0] for i in picked])
    questions = [rows[i]["question"].strip() for i in picked]
    wanted = set(questions)
    write(weak, [line for line, r in w_rows if r["question"].strip() in wanted])
    return questions


def benchmark(name: str, field: str, questions: list[str], extra: int) -> None:
    """The benchmark rows that hold the sampled questions, plus `extra` seeded others."""
    rows = read(DATA / name)
    wanted = set(questions)
    hits = {i for i, (_, r) in enumerate(rows) if r[field].strip() in wanted}
    picked = choose([r for _, r in rows], len(hits) + extra, lambda r: [], 0, must=hits)
    write(name, [rows[i][0] for i in picked])


def simple(name: str, n: int, kinds: Kinds, quota: int) -> None:
    rows = read(DATA / name)
    picked = choose([r for _, r in rows], n, kinds, quota)
    write(name, [rows[i][0] for i in picked])


def reflexion_pairs(name: str, tasks: int, quota: int) -> None:
    """Both runs of each chosen task (one-shot and Reflexion: the weak/strong pair of code_disagree),
    tasks chosen per benchmark x (one-shot solved?) x (Reflexion solved?)."""
    rows = read(DATA / name)
    task = lambda r: r.get("task_id") or r["name"]  # MBPP rows are named, HumanEval rows have an id
    solved = {(task(r), r["run"]): r["is_solved"] for _, r in rows}
    firsts = [r for _, r in rows if r["run"] == "simple_gpt-4"]
    kinds = lambda r: [f"{r['benchmark']}-{r['is_solved']}-{solved.get((task(r), 'reflexion_gpt-4'))}"]
    wanted = {task(firsts[i]) for i in choose(firsts, tasks, kinds, quota,
                                              allowed=lambda r: (task(r), "reflexion_gpt-4") in solved)}
    write(name, [line for line, r in rows if task(r) in wanted])


def mrben_kind(row: dict) -> str:
    """Correct, or incorrect with the right choice (right answer, wrong reasoning), or otherwise incorrect."""
    if row["Model_Solution_Correctness"] == "correct":
        return "correct"
    return "right-answer-wrong-reasoning" if row["derived_final_answer_matches_gt"] else "incorrect"


def main() -> None:
    math500 = pair("skythought_math500_sky-t1-27b.jsonl", "skythought_math500_qwen2.5-math-7b.jsonl", 64, 8)
    olympiad = pair("skythought_olympiadbench_sky-t1-32b-short.jsonl",
                    "skythought_olympiadbench_qwen2.5-14b-instruct.jsonl", 60, 6)
    simple("gsm8k_test.jsonl", 100, lambda r: [], 0)
    benchmark("benchmarks/math.jsonl", "problem", math500, 16)
    benchmark("benchmarks/olympiadbench.jsonl", "question", olympiad, 10)
    simple("benchmarks/aime.jsonl", 10, lambda r: [], 0)
    simple("benchmarks/gpqa.jsonl", 30, lambda r: ["line-separator"] if "\u2028" in r["question"] else [], 3)
    simple("code/lcb_o1-mini-2024-09-12.jsonl", 40,
           lambda r: [r["platform"], r["difficulty"], f"graded-{r['graded']}",
                      "hidden-test" if r.get("hidden_failing_test") else "no-hidden-test"], 6)
    reflexion_pairs("code/reflexion_humaneval_mbpp_gpt4.jsonl", 20, 3)
    simple("process/mrben_math_science.jsonl", 72,
           lambda r: [f"{r['file_subject']}-{mrben_kind(r)}"], 8)
    simple("process/mrben_coding.jsonl", 24, lambda r: [r["Model_Solution_Correctness"], r["Sampled_Model"]], 6)


DATA = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data").resolve()

if __name__ == "__main__":
    main()
