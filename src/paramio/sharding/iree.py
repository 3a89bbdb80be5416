"""Sharded sets as IREE takes them: several ``--parameters=scope=file`` for one scope.

IREE has no manifest of its own, but it merges every file given for one scope into that scope
(first file wins for a key held twice). So a set runs in IREE as it is, named file by file:

* an IRPA set (``model.irpa.index.json`` or any shard), a safetensors set, a GGUF split: every
  shard into the same scope;
* a tensor-parallel set (``*.tp.json``): the keys layout's one file into the scope; the devices
  layout's file i into scope ``<scope><i>`` (``model0``, ``model1`` ...; ``0``, ``1`` ... for an
  unscoped value), one scope per device, for a program compiled with per-device parameter
  scopes. A device file that is itself a size-sharded set is named shard by shard.

`expand_parameters` does this for ``--parameters`` values; ``paramio run`` uses it for
tensor-parallel manifests and ``paramio run --print_iree_flags`` prints the result.
"""

from __future__ import annotations

from collections.abc import Sequence

from paramio.core.errors import FormatError
from paramio.formats import sets
from paramio.formats.members import member_path, read_manifest_json
from paramio.index.scopes import parse_parameters_flag

__all__ = ["expand_parameters", "set_files"]


def set_files(path: str) -> list[str] | None:
    """The files of the size-sharded set `path` opens (manifest or member), in order, or None
    when `path` is a single file (`paramio.formats.sets.set_files`: every format's sets alike)."""
    return sets.set_files(path)


def _tp_files(path: str) -> tuple[str, list[str]]:
    doc = read_manifest_json(path)
    names = doc.get("files")
    if doc.get("paramio.tp") != 1 or not isinstance(names, list) or not names:
        raise FormatError("not a paramio tensor-parallel manifest", path=path)
    return str(doc.get("layout")), [member_path(path, n) for n in names]


def expand_parameters(values: Sequence[str], *, sets: bool = True) -> list[str]:
    """``--parameters`` values with every sharded set named file by file (see the module
    docstring). `sets=False` expands only tensor-parallel manifests (paramio opens the other
    sets itself). Raises `FormatError`/`SourceError` for an unreadable manifest or a missing shard."""
    out: list[str] = []
    for v in values:
        spec = parse_parameters_flag(v)
        prefix = f"{spec.scope}=" if spec.scope else ""
        if spec.path.lower().endswith(".tp.json"):
            layout, members = _tp_files(spec.path)
            for i, member in enumerate(members):
                scope = f"{spec.scope}{i}=" if layout == "devices" else prefix
                # A device file may itself be a size-sharded set (its manifest is named).
                out.extend(scope + f for f in set_files(member) or [member])
            continue
        files = set_files(spec.path) if sets else None
        if files:
            out.extend(prefix + f for f in files)
        else:
            out.append(v)
    return out
