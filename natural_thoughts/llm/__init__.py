"""The model-call layer: backends, request building and seeds, the resumable sharded loop,
executors (local, Ray), the shard store, and the status / merge of an output folder.

Every model pass (generation, LLM annotation, teacher feedback, refinement) is a request builder
and a row maker (a `ModelPass`) run through `run_pass`.
"""

from .backends import (BACKENDS, Backend, Completion, EngineDiedError, EngineStartError, Request, Response,
                       build_backend)
from .executors import ENGINE_RESTARTS, EXECUTORS
from .passes import ModelPass, Work
from .requests import build_messages, check_prompt_template, render_prompt, request_seed
from .runner import BATCH_SIZE, PassResult, run_pass
from .status import merge, run_status
from .store import ShardStore

__all__ = ["BACKENDS", "BATCH_SIZE", "Backend", "Completion", "ENGINE_RESTARTS", "EXECUTORS", "EngineDiedError",
           "EngineStartError", "ModelPass", "PassResult", "Request", "Response", "ShardStore", "Work",
           "build_backend", "build_messages", "check_prompt_template", "merge", "render_prompt", "request_seed",
           "run_pass", "run_status"]
