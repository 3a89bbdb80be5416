"""Sharding: tensor-parallel split and merge, and resharding between any layouts.

Size sharding (a model in several files) is each format's own: ``max_shard_size=`` on every
writer, and IRPA sets with a manifest in `paramio.formats.irpa.sharded`. This package adds the
tensor-parallel side: a plan (`make_plan`), per-device archives or ``.shard.<i>`` keys with a
``*.tp.json`` manifest (`tpset`), vLLM's ``sharded_state`` files (`vllm`), sharktank's datasets (`sharktank`), the split and join of one tensor without materialising it
(`tensor`), and the API `shard` / `merge` / `reshard`. See ``docs/sharding.md``.
"""

from __future__ import annotations

from paramio.sharding.api import ShardResult, merge, plan, reshard, shard
from paramio.sharding.plan import Layout, Placement, Plan, make_plan
from paramio.sharding.tpset import TPSet, read_set

__all__ = [
    "Layout",
    "Placement",
    "Plan",
    "ShardResult",
    "TPSet",
    "make_plan",
    "merge",
    "plan",
    "read_set",
    "reshard",
    "shard",
]
