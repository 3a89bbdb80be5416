"""Bounded mutation fuzzing of every reader (the long campaign is `benchmarks/fuzz.py`)."""

from __future__ import annotations

import random
from pathlib import Path

import mutations
import numpy as np
import pytest

from paramio.core.errors import ParamioError

CASES_PER_FORMAT = 400


@pytest.mark.interop
@pytest.mark.parametrize("fmt", mutations.FORMATS)
def test_only_paramio_errors_escape(fmt: str, tmp_path: Path) -> None:
    why = mutations.format_available(fmt)
    if why:
        pytest.skip(why)
    campaign = mutations.Campaign.make(tmp_path, fmt, seed=3)
    # The unmutated seed reads fully: the oracle writers' files are valid.
    assert mutations.check_file(str(campaign.seed_path), campaign.seed_path.stat().st_size).ok
    rng = random.Random(f"paramio-{fmt}")
    parsed = failed = 0
    for _ in range(CASES_PER_FORMAT):
        outcome, _steps = campaign.run_one(rng)  # raises FuzzFailure on a foreign error or a broken bound
        parsed += outcome.ok
        failed += outcome.error is not None
    # Both outcomes occur: the mutations reach the parser and are not all rejected up front.
    assert parsed > 0 and failed > CASES_PER_FORMAT // 10, (parsed, failed)


def _describe(entries: list) -> list[tuple]:  # type: ignore[type-arg]
    return [(e.key, e.kind, e.offset, e.length, e.metadata, e.pattern, e.file_index) for e in entries]


def _both_ways(path: Path) -> tuple[object, object]:
    """(vectorised table path, entry-by-entry loop): entries described, or the error message."""
    from paramio.formats.irpa.reader import read_archive, read_path, take_attributes
    from paramio.sources.file import FileSource

    def fast() -> object:
        c = read_path(str(path))
        return _describe(list(c.entries)), c.attributes

    def slow() -> object:
        skipped: list[tuple[str, bytes]] = []
        entries, attributes = take_attributes(read_archive(FileSource(str(path)), skipped=skipped), skipped)
        return _describe(entries), attributes

    out = []
    for fn in (fast, slow):
        try:
            out.append(fn())
        except ParamioError as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out[0], out[1]


def _paramio_seed(folder: Path) -> Path:
    """Mixed table: data, splats, attributes entry, a non-ASCII key (per-key decoding path)."""
    import paramio

    index = paramio.ParameterIndex()
    for i in range(40):
        index.add_array(f"layer.{i}.w", np.arange(i + 1, dtype=np.float32))
        if i % 7 == 0:
            index.add_splat(f"layer.{i}.s", np.float32(i), 16)
    index.add_array("größe", np.ones(3, np.int8))
    path = folder / "mixed.irpa"
    paramio.write_path(str(path), index.values(), attributes={"general.name": "x"})
    return path


def _uses_table(path: Path) -> bool:
    from paramio.formats.irpa.bulk import read_table
    from paramio.formats.irpa.reader import FIRST_READ, header_at, tables_at
    from paramio.formats.regions import Prefix
    from paramio.sources.file import FileSource

    src = FileSource(str(path))
    prefix = Prefix(src, FIRST_READ)
    header = header_at(src, prefix, 0)
    return read_table(src, *tables_at(prefix, 0, header), header) is not None


@pytest.mark.interop
def test_irpa_table_paths_agree(tmp_path: Path) -> None:
    """The vectorised entry table and the entry-by-entry loop accept the same files with the same
    entries, and refuse the others with the same message."""
    seeds = [mutations.seed_irpa(tmp_path, np.random.default_rng(0)), _paramio_seed(tmp_path)]
    rng = random.Random(7)
    agreed_ok = 0
    for seed in seeds:
        original = seed.read_bytes()
        assert _uses_table(seed), "the valid seed must take the vectorised path"
        fast, slow = _both_ways(seed)
        assert fast == slow and not isinstance(fast, str)
        for _ in range(300):
            data, steps = mutations.mutate(original, rng, "irpa")
            seed.write_bytes(data)
            fast, slow = _both_ways(seed)
            assert fast == slow, steps
            agreed_ok += not isinstance(fast, str)
        seed.write_bytes(original)
    assert agreed_ok > 50


STRUCTURED_CASES = 24


@pytest.mark.slow
@pytest.mark.parametrize("fmt", mutations.STRUCTURED_FORMATS)
def test_structured_cases_stay_bounded(fmt: str, tmp_path: Path) -> None:
    """Structure-aware cases (dims, nesting, references, names, paths) for every reader: only
    paramio errors escape reading, ``dump``, ``verify`` and conversions (every 6th case), each
    case within `STRUCTURED_MEMORY_FACTOR` traced bytes per input byte (plus a fixed allowance)
    and a few seconds. The long campaign is ``benchmarks/fuzz.py``."""
    why = mutations.format_available(fmt)
    if why:
        pytest.skip(why)
    campaign = mutations.StructuredCampaign(tmp_path, fmt)
    rng = random.Random(f"structured-{fmt}")
    refused = 0
    for n in range(STRUCTURED_CASES):
        ops = ("dump", "verify", "convert") if n % 6 == 0 else ()
        outcome, _ = campaign.run_one(rng, ops=ops)  # raises FuzzFailure on a foreign error or a bound
        refused += outcome.error is not None
    assert 0 < refused < STRUCTURED_CASES or fmt == "tensorv0", refused  # reaches past the first check


#: Cases per new surface in the suite's sample (issue 24): ~12 s in all on a quiet machine.
SURFACE_CASES = 4


@pytest.mark.parametrize("fmt", mutations.SURFACE_FORMATS)
def test_new_surfaces_sample(fmt: str, tmp_path: Path) -> None:
    """A fixed-seed sample of the structure-aware cases for sets and manifests, URLs against a
    misbehaving loopback server, the loader (planner, budgets, concurrency) and MLIR text: only
    paramio errors escape, each case within the memory and time bounds of `StructuredCampaign`.
    The long campaign: ``benchmarks/fuzz.py --formats irpa-set,...``."""
    why = mutations.format_available(fmt)
    if why:
        pytest.skip(why)
    campaign = mutations.StructuredCampaign(tmp_path, fmt)
    rng = random.Random(f"surface-{fmt}")
    outcomes = []
    for n in range(3 * SURFACE_CASES):
        ops = ("dump", "verify", "convert") if n % 3 == 0 else ()
        outcome, _ = campaign.run_one(rng, ops=ops)  # raises FuzzFailure on a foreign error or a bound
        outcomes.append(outcome.error is None)
        # The draws depend on the templates (a set's save stamp changes its manifest's shape), so
        # a sample whose first cases are all refused runs on, up to three times as long, until one
        # reaches past the first refusal.
        if n + 1 >= SURFACE_CASES and (any(outcomes) or fmt == "url"):
            break
    assert any(outcomes) or fmt == "url", outcomes  # the cases reach past the first refusal


def test_a_server_that_sends_no_content_length_is_named(tmp_path: Path) -> None:
    """Found by the URL cases: obstore's "GenericError" became "request failed (GenericError)"."""
    import surfaces

    from paramio.sources.retry import RemoteSourceError

    if surfaces.available("url"):
        pytest.skip(surfaces.available("url"))
    server = surfaces.server()
    url = surfaces.url_case(tmp_path, random.Random(1))
    server.mix = ("no-length",)
    with pytest.raises(RemoteSourceError, match="the server sent no Content-Length"):
        surfaces.read_url(url, random.Random(1))


def test_a_tp_manifest_shape_whose_product_has_thousands_of_digits_is_a_format_error(tmp_path: Path) -> None:
    """Found by the manifest cases: the product of a split tensor's dims was formatted into a
    message, and Python refuses to print an int of more than 4300 digits (ValueError escaped)."""
    import json
    import shutil

    import surfaces

    from paramio.core.errors import FormatError
    from paramio.formats.registry import read_path

    template, opener = surfaces._template("tp")
    for p in template.iterdir():
        shutil.copy(p, tmp_path / p.name)
    manifest = tmp_path / opener
    doc = json.loads(manifest.read_text())
    key = next(k for k, v in doc["tensors"].items() if "split" in v)
    doc["tensors"][key]["shape"] = [10**2000, 10**2000, 10**2000]
    manifest.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="fewer than 2\\*\\*63 elements") as info:
        read_path(str(manifest))
    assert info.value.key == key
