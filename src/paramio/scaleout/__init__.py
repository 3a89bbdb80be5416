"""Scale-out: bulk jobs (convert, digest, verify; shard, reshard, merge) on a Ray cluster (issue 28).

``engine="ray"`` on a library call (``paramio.convert(..., engine="ray", address="auto")``) or
``--engine=ray [--address=...]`` on a command runs it as a job of this package; the default,
``engine="local"``, is the one-machine path and imports nothing from here. Ray is the optional
``ray`` extra (``pip install 'paramio[ray]'``); only `paramio.scaleout.ray_engine` imports it.

A job is plan -> tasks -> commit (`paramio.scaleout.engine.run_job`):

1. **Plan** on the driver, from headers only: `Operation.plan` returns `Task` s, each small
   plain data (``args``: entries as records (`paramio.scaleout.entries`), the output member it
   writes, options), with ``input_bytes`` for progress.
2. **Run**: each task runs the operation's task body, a module-level function ``body(task,
   context) -> TaskResult``, on a Ray worker (one CPU each; Ray retries a task whose worker died,
   and an I/O error, never a permanent paramio error such as `FormatError`) or, with
   ``engine="local"``, here. The body reads its input ranges from the source itself (reopen the
   entries with `open_entries`), writes its output itself (a staging file beside the final one,
   or an upload to the final object), keeps within ``context.memory_bound`` (copies through
   views are bounded for it; an upload's part size is `engine.upload_part`), reports bytes with
   ``context.advance(n)`` and returns only small facts (sizes, digests, timings).
3. **Commit** on the driver once every task succeeded: `Operation.commit(results)` checks each
   member and publishes, writing the manifest or index last. If any task fails for good,
   `Operation.abort(results)` removes what the job wrote (or returns what it could not) and the
   task's error is raised.

Adding an operation (e.g. shard or merge): write a class with ``name``, ``body`` (a module-level
function: Ray imports it by name on the workers), ``plan()``, ``commit(results)`` and
``abort(results)`` -- `paramio.scaleout.convert.ConvertJob` is the model: its members are
planned by the format's own writer under `paramio.formats.sets.planning_only` and written by it
under `paramio.formats.sets.writing_one_member`, so the bytes are those of the one-machine
path -- then call ``run_job(op, engine=..., address=..., memory_bound=..., progress=...)`` and
return its `JobReport` (``to_dict()`` is the ``--json`` summary).

Multi-host loading (`paramio.scaleout.loading`: `load_on_actors`, `load_rank`, `plan_ranks`) has
each Ray actor read only its own tensors or slices.
"""

from __future__ import annotations

from paramio.scaleout.engine import (
    DEFAULT_MEMORY_BOUND,
    ENGINES,
    JobReport,
    Operation,
    ProgressSnapshot,
    Task,
    TaskContext,
    TaskResult,
    TransientTaskError,
)
from paramio.scaleout.job import run_job
from paramio.scaleout.loading import (
    RankLoads,
    RankPlan,
    RankSplit,
    RankSummary,
    load_on_actors,
    load_rank,
    plan_ranks,
)

__all__ = [
    "DEFAULT_MEMORY_BOUND",
    "ENGINES",
    "JobReport",
    "Operation",
    "ProgressSnapshot",
    "Task",
    "TaskContext",
    "TaskResult",
    "TransientTaskError",
    "RankLoads",
    "RankPlan",
    "RankSplit",
    "RankSummary",
    "load_on_actors",
    "load_rank",
    "plan_ranks",
    "run_job",
]
