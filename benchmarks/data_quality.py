"""What the parser and the shipped recipes make of the shared real traces, as figures for the docs.

Per file: formats read, chains without markers, the truncation detector against two references
taken from the raw text (traces that stop mid-text: recall; traces that end on a boxed answer:
false alarms), prose answers. Per recipe: pool vs export, correctness by the file's own evaluator,
cut-off rate and mean reasoning length.

    .venv/bin/python benchmarks/data_quality.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SAMPLES = "examples/data/"
"""Where the shipped recipes read (the in-repo samples of the same files)."""
sys.path.insert(0, str(REPO))

import natural_thoughts as nt  # noqa: E402
from tests.test_real_traces import FILES, ends_on_a_box, raw_texts, stops_mid_text  # noqa: E402


CUT = {"truncated", "unterminated_reasoning"}


def parser_figures(name: str) -> None:
    texts = raw_texts(name)
    ds = nt.add_reasoning_tokens(nt.load_traces(DATA / name, preset="skythought_eval"), approximate=True)
    flags = ds["flags"]
    cut = {i for i, t in enumerate(texts) if stops_mid_text(t)}
    boxed = {i for i, t in enumerate(texts) if ends_on_a_box(t)}
    flagged = {i for i, f in enumerate(flags) if "truncated" in f}
    chains = sum("split_inferred" in f for f in flags)
    prose = [i for i, f in enumerate(flags) if "prose_answer" in f]
    print(f"\n## {name} ({len(texts)} traces)")
    print(f"- chains without markers read as reasoning: {chains}; reasoning tokens 0 for a non-empty text: "
          f"{sum(n == 0 and bool(t.strip()) for n, t in zip(ds['score.reasoning_tokens'], texts))}")
    print(f"- truncated flagged: {len(flagged)}; recall on 'stops mid-text' {len(cut & flagged)}/{len(cut)}; "
          f"false alarms on 'ends on a boxed answer' {len(boxed & flagged)}/{len(boxed)}; "
          f"flagged in neither set {len(flagged - cut - boxed)}")
    print(f"- final answers: {sum(a is not None for a in ds['final_answer'])}; from prose: {len(prose)}")


def recipe_figures(recipe: Path) -> None:
    data = yaml.safe_load(recipe.read_text().replace(SAMPLES, f"{DATA}/"))  # the full files, not the samples
    with tempfile.TemporaryDirectory() as work:
        data["output_dir"] = work
        summary = nt.run(data)
        pool = nt.add_reasoning_tokens(nt.load_traces(data["traces"]["source"], preset="skythought_eval"),
                                       approximate=True)
        picked = set()
        for f in sorted((Path(work) / "export").glob("*.jsonl")):
            picked |= {json.loads(line)["trace_id"] for line in f.read_text().splitlines()}
    rows = pool.select_columns(["trace_id", "flags", "label.evaluator_correct", "score.reasoning_tokens"]).to_list()

    def stats(subset: list[dict]) -> str:
        n = len(subset)
        correct = sum(bool(r["label.evaluator_correct"]) for r in subset)
        cut = sum(bool(set(r["flags"]) & CUT) for r in subset)
        length = statistics.mean(r["score.reasoning_tokens"] for r in subset) if subset else 0
        return f"{n} rows, correct {correct / n:.0%}, cut off {cut / n:.0%}, mean reasoning {length:,.0f} tokens (chars/4)"

    print(f"\n## recipe {recipe.name}")
    print(f"- pool:     {stats(rows)}")
    print(f"- pool, complete and correct: {stats([r for r in rows if r['label.evaluator_correct'] and not (set(r['flags']) & CUT)])}")
    print(f"- exported: {stats([r for r in rows if r['trace_id'] in picked])}")
    if summary.get("budget_warning"):
        print(f"- budget: {summary['budget_warning']}")
    print(f"- selection steps: {Counter({s['name']: s['n_kept'] for s in summary['selection']['steps']})}")


if __name__ == "__main__":
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: these figures need the shared real traces")
    for name in FILES:
        parser_figures(name)
    for recipe in sorted((REPO / "examples").glob("*.yaml")):
        if f"source: {SAMPLES}" in recipe.read_text():
            recipe_figures(recipe)
