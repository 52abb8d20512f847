"""TRL trains one step on a `guided_mask` export, and its `completion_mask` is what reaches the labels.

The export trains, on a guided row, the teacher's tokens (and the closing end-of-turn tokens), with
the student's rollout as context; on an unguided row, the whole assistant turn. `teacher_mask`
marks the teacher's tokens for a loss that weights them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from natural_thoughts.export import export
from natural_thoughts.guide import guide

from tests.conftest import CountingBackend
from tests.guide.conftest import BOUNDED_REGEX, SHORT_PROMPT, traces


def test_trl_trains_one_step_with_the_teacher_mask(llm, tiny_model_dir: Path, tmp_path: Path) -> None:
    from trl import SFTConfig, SFTTrainer

    guided = guide(traces(str(tiny_model_dir)), backend=CountingBackend(llm), fraction=0.5, prompt=SHORT_PROMPT,
                   regex=BOUNDED_REGEX, max_tokens=96, show_progress=False)
    rows = export(guided.filter(lambda r: r["error"] is None), format="guided_mask")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    assert sum(rows["guided"]) == 2 and len(rows) == 10
    for row, source in zip(rows, (r for r in guided if r["error"] is None)):
        loss, teacher = np.array(row["completion_mask"]), np.array(row["teacher_mask"])
        assert len(loss) == len(teacher) == len(row["input_ids"]) and loss.any()
        assert not (teacher & ~loss).any()  # the teacher's tokens are trained
        if row["guided"]:
            first = int(np.flatnonzero(loss)[0])
            assert first == int(np.flatnonzero(teacher)[0])  # the student's part is context
            assert tokenizer.decode(np.array(row["input_ids"])[teacher == 1]).strip() == \
                f"{source['guidance.reason']}\n\n{source['guidance.phrase']}"
        else:
            assert not teacher.any()

    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=4, report_to=[],
                     use_cpu=True, save_strategy="no", logging_steps=1, learning_rate=1e-4)
    trainer = SFTTrainer(model=str(tiny_model_dir), args=args, train_dataset=rows, processing_class=tokenizer)
    prepared = trainer.train_dataset
    for row, labels in zip(rows, prepared["labels"]):  # completion_mask became the labels, token for token
        assert [t != -100 for t in labels] == [bool(m) for m in row["completion_mask"]]
    batch = trainer.data_collator([prepared[i] for i in range(4)])
    for i in range(4):
        ids, mask = rows[i]["input_ids"], rows[i]["completion_mask"]
        expected = [t if m else -100 for t, m in zip(ids, mask)]
        assert batch["labels"][i][: len(ids)].tolist() == expected
    result = trainer.train()
    print(f"TRL one step on guided_mask: loss {result.training_loss:.4f}")
    assert math.isfinite(result.training_loss) and result.global_step == 1
