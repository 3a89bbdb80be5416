"""``--engine`` and ``--address``: the commands that do bulk work (convert, digest, verify
--digests) run on this machine or as tasks on a Ray cluster (`paramio.scaleout`, the ``ray``
extra). Kept apart from the bodies so ``--help`` imports nothing of the engine."""

from __future__ import annotations

from paramio.cli.errors import UsageError
from paramio.cli.flags import Flag, FlagKind, ParsedFlags

__all__ = ["ENGINE_FLAGS", "engine_of"]

#: `paramio.scaleout.engine.ENGINES`, spelt here so that parsing flags imports no engine.
_ENGINES = ("local", "ray")

ENGINE_FLAGS = (
    Flag(
        "engine",
        FlagKind.STRING,
        "local (this machine) or ray: the work as tasks on a Ray cluster, each reading its bytes\n"
        "from the source and writing its own output (pip install 'paramio[ray]').",
        "local",
    ),
    Flag(
        "address",
        FlagKind.STRING,
        "With --engine=ray, the cluster: auto (the one this machine is in), HOST:PORT (its head)\n"
        "or ray://HOST:PORT (a Ray client); default RAY_ADDRESS, else a new Ray on this machine.",
        "",
        "ADDR",
    ),
)


def engine_of(parsed: ParsedFlags) -> tuple[str, str | None]:
    """(engine, address) from the flags, checked."""
    engine = parsed.text("engine").lower()
    if engine not in _ENGINES:
        raise UsageError(f"--engine={engine}: expected one of {', '.join(_ENGINES)}")
    address = parsed.text("address") or None
    if address is not None and engine != "ray":
        raise UsageError(f"--address={address} is for --engine=ray")
    return engine, address
