"""``[learning]``: how experiments proposed by reflections and decisions are run and judged.

Kept in a module of its own, importing only pydantic, so reading the configuration
stays fast. The significance level is not a setting: it is 0.05 and cannot be loosened
(:data:`tradewarden.agent.experiments.ALPHA`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LearningSettings"]


class LearningSettings(BaseModel):
    """``[learning]``: the end-of-day reflection's experiments.

    Parameters
    ----------
    experiments : bool
        File proposals (a reflection's, a ``PROPOSE_EXPERIMENT`` decision's) as
        experiments, start and judge them at the end of the day (default ``True``;
        ``False``: reflections only).
    min_samples : int
        Observations per arm before an experiment is judged (default 20, at least 5).
    min_effect : float
        The minimum improvement of the variant's mean metric to accept it, in the
        metric's units (percentage points of return per decision; default 0.25).
    allocation : float
        The variant's share of decisions when a proposal does not say (default 0.5).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    experiments: bool = True
    min_samples: int = Field(20, ge=5, le=100_000)
    min_effect: float = Field(0.25, gt=0, allow_inf_nan=False)
    allocation: float = Field(0.5, gt=0, lt=1)
