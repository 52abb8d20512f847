"""Selectors: the contract (`base`), the `Filter` base for keep/drop rules (`filter`), one module per
family, and the conformance suite (`testing`)."""

from .base import (
    Selection,
    Selector,
    StepReport,
    available_selectors,
    get_selector,
    register,
    select,
)
from .compose import Sequential, Union, WeightedSum
from .filter import Filter, Verdict
from .dedup import Decontaminate, ExactDedup, NearDedup
from .difficulty import ModelsDisagree, PassRate, WeakSolves
from .diversity import ClusterUniform, StrategyCount, Stratified
from .fewshot import FewShot
from .length import LengthRange, Long, RankDecay, TopLength
from .quality import Correct, DropFlags, LanguageMix, Repetition
from .random import Random
from .reasoning import ReasoningOk
from .verbosity import VerbosityBand

__all__ = [
    "ClusterUniform",
    "Correct",
    "Decontaminate",
    "DropFlags",
    "ExactDedup",
    "FewShot",
    "Filter",
    "LanguageMix",
    "LengthRange",
    "Long",
    "ModelsDisagree",
    "NearDedup",
    "PassRate",
    "Random",
    "RankDecay",
    "ReasoningOk",
    "Repetition",
    "Selection",
    "Selector",
    "Sequential",
    "StepReport",
    "StrategyCount",
    "Stratified",
    "TopLength",
    "Union",
    "VerbosityBand",
    "Verdict",
    "WeakSolves",
    "WeightedSum",
    "available_selectors",
    "get_selector",
    "register",
    "select",
]
