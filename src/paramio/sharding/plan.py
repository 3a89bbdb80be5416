"""A tensor-parallel plan: which tensors are split along which axis, which are replicated.

Rules are glob patterns on keys (``fnmatch``, case-sensitive): ``--split=PATTERN=AXIS`` and
``--replicate=PATTERN``. Split rules are tried first, in the order given, then replicate rules;
the first match places the tensor. A tensor no rule matches is an error, so nothing is dropped or
replicated by accident. Every split is checked (`paramio.sharding.tensor.geometry`) when the plan
is made, before anything is written.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from paramio.core.entry import ParameterEntry
from paramio.core.errors import InvalidArgumentError
from paramio.sharding.tensor import Geometry, geometry

__all__ = ["Layout", "Placement", "Plan", "make_plan", "parse_split_rule", "split_axis", "split_rules"]


class Layout(enum.StrEnum):
    """Where the pieces go."""

    #: One archive per device; device i's holds piece i of each split tensor under its own key,
    #: and every replicated tensor.
    DEVICES = "devices"
    #: One archive; piece i of a split tensor is ``<key>.shard.<i>`` (sharktank's names),
    #: replicated tensors keep their key and are stored once.
    KEYS = "keys"
    #: vLLM's ``sharded_state`` files: ``model-rank-<i>-part-<p>.safetensors`` per device
    #: (pieces under the tensor's own key, replicated tensors in every rank), no manifest.
    VLLM = "vllm"
    #: sharktank's dataset: ``<stem>.irpa`` (properties, tensor descriptions, no tensors when
    #: tp > 1) and ``<stem>.rank<i>.irpa`` with ``<key>.shard.<i>`` pieces; a replicated
    #: tensor is stored once, in rank 0's file.
    SHARKTANK = "sharktank"


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """What happens to one tensor: split along `axis` (geometry `geometry`) or replicated."""

    key: str
    rule: str
    axis: int | None
    geometry: Geometry | None
    length: int

    @property
    def split(self) -> bool:
        return self.axis is not None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"key": self.key, "rule": self.rule, "bytes": self.length}
        if self.geometry is not None:
            g = self.geometry
            d.update(
                action="split",
                axis=g.axis,
                dtype=g.info.dtype,
                shape=list(g.info.shape),
                piece_shape=list(g.piece_info.shape),
                piece_bytes=g.piece_length,
            )
        else:
            d["action"] = "replicate"
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Every tensor's placement, in input order, for `tp` devices and a layout."""

    tp: int
    layout: Layout
    placements: tuple[Placement, ...]

    def device_bytes(self) -> list[int]:
        """Bytes each device (or, for the keys layout, the one archive per piece index) holds."""
        per = [0] * self.tp
        for p in self.placements:
            for i in range(self.tp):
                if p.geometry is not None:
                    per[i] += p.geometry.piece_length
                elif self.layout not in (Layout.KEYS, Layout.SHARKTANK) or i == 0:
                    per[i] += p.length
        return per

    def to_dict(self) -> dict[str, object]:
        return {
            "tp": self.tp,
            "layout": self.layout.value,
            "device_bytes": self.device_bytes(),
            "tensors": [p.to_dict() for p in self.placements],
        }


def parse_split_rule(text: str) -> tuple[str, int]:
    """``PATTERN=AXIS`` -> (pattern, axis). Raises `InvalidArgumentError`."""
    pattern, sep, axis = text.rpartition("=")
    if not sep or not pattern:
        raise InvalidArgumentError(f"split rule {text!r} must be PATTERN=AXIS, e.g. '*.attn_q.weight=0'")
    try:
        return pattern, int(axis)
    except ValueError:
        raise InvalidArgumentError(f"split rule {text!r}: axis {axis!r} is not an integer") from None


def split_rules(split: Mapping[str, int] | Iterable[tuple[str, int] | str]) -> list[tuple[str, int]]:
    """``{pattern: axis}``, ``(pattern, axis)`` pairs or ``"PATTERN=AXIS"`` texts as (pattern,
    axis) rules, in order. Raises `InvalidArgumentError` for a malformed rule."""
    items = split.items() if isinstance(split, Mapping) else split
    rules: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            rules.append(parse_split_rule(item))
        else:
            pattern, axis = item
            if isinstance(axis, bool) or not isinstance(axis, int):
                raise InvalidArgumentError(f"split rule {pattern!r}: axis must be an integer, not {axis!r}")
            rules.append((pattern, axis))
    return rules


def split_axis(key: str, rules: Sequence[tuple[str, int]]) -> tuple[str, int] | None:
    """The first split rule whose glob pattern matches `key` (case-sensitive), or None."""
    for pattern, axis in rules:
        if fnmatch.fnmatchcase(key, pattern):
            return pattern, axis
    return None


def make_plan(
    entries: Sequence[ParameterEntry],
    tp: int,
    *,
    split: Mapping[str, int] | Iterable[tuple[str, int] | str] = (),
    replicate: Iterable[str] = (),
    layout: Layout | str = Layout.DEVICES,
) -> Plan:
    """Place every entry. Raises `InvalidArgumentError` naming the key for a tensor no rule
    matches or a split that cannot be made (see `geometry`), and for `tp` < 1."""
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise InvalidArgumentError(f"tp must be a positive integer, not {tp!r}")
    try:
        lay = Layout(layout)
    except ValueError:
        raise InvalidArgumentError(f"unknown layout {layout!r}; expected devices, keys, vllm or sharktank") from None
    rules = split_rules(split)
    replicate_rules = list(replicate)
    placements: list[Placement] = []
    seen: set[str] = set()
    for e in entries:
        if e.key in seen:
            raise InvalidArgumentError("key appears twice in the input", key=e.key)
        seen.add(e.key)
        placed: Placement | None = None
        rule = split_axis(e.key, rules)
        if rule is not None:
            pattern, axis = rule
            g = geometry(e.key, e.tensor, e.length, axis, tp)
            placed = Placement(e.key, f"{pattern}={axis}", g.axis, g, e.length)
        if placed is None:
            for pattern in replicate_rules:
                if fnmatch.fnmatchcase(e.key, pattern):
                    placed = Placement(e.key, pattern, None, None, e.length)
                    break
        if placed is None:
            raise InvalidArgumentError(
                "matches no split or replicate rule (add --replicate='*' to copy the rest)", key=e.key
            )
        placements.append(placed)
    return Plan(tp, lay, tuple(placements))
