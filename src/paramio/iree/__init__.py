"""The IREE bridge: run compiled IREE programs on parameters served by paramio.

Imported only when used; it needs ``iree-base-runtime`` (``pip install 'paramio[iree]'``).

>>> from paramio.index.provider import Provider                      # doctest: +SKIP
>>> from paramio.iree import create_parameters_module
>>> params = create_parameters_module(config.vm_instance, Provider.from_flags(["model=w.irpa"]))

`run_function` runs a function of compiled modules over a `Provider` (what ``paramio run`` does).
"""

from __future__ import annotations

from paramio.iree.bridge import IreeParameters, create_parameters_module, to_iree_index, to_iree_providers
from paramio.iree.run import RunError, RunResult, run_function
from paramio.iree.values import format_result, parse_input

__all__ = [
    "IreeParameters",
    "RunError",
    "RunResult",
    "create_parameters_module",
    "format_result",
    "parse_input",
    "run_function",
    "to_iree_index",
    "to_iree_providers",
]
