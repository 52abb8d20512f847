"""Ablations: selections × budgets on one pool, each cell exported, compared side by side.

`ablate(config)` reproduces the comparisons of NaturalThoughts (arXiv:2507.01921: Random, Stratified,
ClusterUniform, StrategyCount, Long, ModelsDisagree, verbosity bands at matched budgets) and of the
few-shot study (arXiv:2507.09850: sets of 10/20/50) as data: matched-size subsets and their statistics.
"""

from .config import AblateConfig, ReportConfig
from .runner import ablate, summary_lines

__all__ = ["AblateConfig", "ReportConfig", "ablate", "summary_lines"]
