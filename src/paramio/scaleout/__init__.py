"""Scale-out on Ray: multi-host loading (`paramio.scaleout.loading`). Ray is imported only when a
call here needs it (the ``ray`` extra)."""

from __future__ import annotations

from paramio.scaleout.loading import (
    RankLoads,
    RankPlan,
    RankSplit,
    RankSummary,
    load_on_actors,
    load_rank,
    plan_ranks,
)

__all__ = ["RankLoads", "RankPlan", "RankSplit", "RankSummary", "load_on_actors", "load_rank", "plan_ranks"]
