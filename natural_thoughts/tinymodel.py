"""A tiny random Qwen2 teacher built locally: a smoke model whose text is noise.

It exists so the demo and the tests run the real vLLM engine on any machine, offline. Nothing it
writes means anything; it only proves that every stage works end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

SMOKE_MODEL_NOTE = "tiny random smoke model built locally: its text is noise, not reasoning"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is not defined or enable_thinking %}<think>\n{% endif %}{% endif %}"
)

_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_MARKERS = ["<think>", "</think>", "\\boxed{", "}", "Answer:", "wait", "alternatively", "verify"]
_CORPUS = [
    "Let me think step by step about the problem before answering.",
    "Wait, let me verify that result. Alternatively, we could work backwards from the answer.",
    "The final answer is \\boxed{42}. Answer: 7. The sum of the angles of a triangle is 180 degrees.",
    "If x + 3 = 10 then x = 7; check: 7 + 3 = 10, which is correct.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Supply and demand set a price where the quantity bought equals the quantity sold.",
    "0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ] { } . , ; : ? !",
]


def build_tiny_model(path: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Write a random 2-layer Qwen2 model and a BPE tokenizer with a chat template to `path`.

    Returns the folder. Re-uses it when a previous build is complete (its config.json exists).
    Sizes follow what the vLLM CPU backend accepts: hidden 128, 2 heads (head_dim 64), 1 KV head.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    bpe.add_tokens(_MARKERS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "SMOKE_MODEL.json").write_text(json.dumps({"note": SMOKE_MODEL_NOTE, "seed": seed}))
    return path
