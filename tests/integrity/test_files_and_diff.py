"""Whole-file checks against ``sha256sum`` lists and LFS pointers, and `paramio diff` (issue 26):
property tests over random pairs (equal -> no difference; every injected change reported exactly
once), exit statuses like ``diff``, quantised GGUF compared by value, and remote diffs that read
only the differing tensor when both sides store digests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paramio
from paramio.core.errors import FormatError, InvalidArgumentError
from paramio.integrity import check_files, diff

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote"))
from logs import synced_log  # noqa: E402  - tests/remote/logs.py: nginx's log without racing it

Cli = Callable[..., tuple[int, str, str]]


def _write(path: Path, tensors: dict[str, np.ndarray], **options: object) -> Path:
    index = paramio.ParameterIndex()
    for k, v in tensors.items():
        index.add_array(k, v)
    paramio.write_path(path, index.values(), **options)
    return path


# -- files ----------------------------------------------------------------------------------


def test_a_sha256sum_list_passes_and_a_changed_file_fails(tmp_path: Path, paramio_cli: Cli) -> None:
    a = _write(tmp_path / "a.safetensors", {"w": np.ones(8, np.float32)})
    b = _write(tmp_path / "b.irpa", {"w": np.zeros(8, np.float32)})
    sums = subprocess.run(["sha256sum", a.name, b.name], cwd=tmp_path, capture_output=True, text=True, check=True)
    (tmp_path / "SHA256SUMS").write_text(sums.stdout)
    checks = check_files([tmp_path / "SHA256SUMS"])
    assert [c.ok for c in checks] == [True, True]
    code, out, _ = paramio_cli("verify", f"--files={tmp_path / 'SHA256SUMS'}")
    assert code == 0 and out.count(": OK") == 2
    b.write_bytes(b.read_bytes()[:-1] + b"\x01")
    code, out, _ = paramio_cli("verify", f"--files={tmp_path / 'SHA256SUMS'}")
    assert code == 1 and f"{b}: sha256 expected" in out


def test_an_lfs_pointer_checks_size_then_hash(tmp_path: Path, paramio_cli: Cli) -> None:
    a = _write(tmp_path / "model.safetensors", {"w": np.arange(64, dtype=np.float32)})
    data = a.read_bytes()
    pointer = tmp_path / "model.safetensors.pointer"
    pointer.write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    )
    code, out, _ = paramio_cli("verify", f"--files={pointer}", str(a))
    assert code == 0 and out == f"{a}: OK\n"
    a.write_bytes(data + b" ")
    (check,) = check_files([pointer], [a])
    assert not check.ok and check.error == f"size {len(data) + 1} bytes, the pointer says {len(data)}"
    with pytest.raises(InvalidArgumentError, match="LFS pointer: name the file"):
        check_files([pointer])
    pointer.write_text("not a list\n")
    with pytest.raises(FormatError, match="line 1 is not"):
        check_files([pointer])


# -- diff -----------------------------------------------------------------------------------

DTYPES = [np.float32, np.float16, np.int32, np.int8]


@st.composite
def models(draw: st.DrawFn) -> dict[str, np.ndarray]:
    n = draw(st.integers(1, 5))
    out = {}
    for i in range(n):
        dtype = draw(st.sampled_from(DTYPES))
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
        seed = draw(st.integers(0, 2**16))
        out[f"t{i}"] = (np.random.default_rng(seed).standard_normal(shape) * 10).astype(dtype)
    return out


CHANGES = ["remove", "add", "dtype", "shape", "element"]


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tensors=models(),
    fmt_a=st.sampled_from(["irpa", "safetensors", "gguf"]),
    fmt_b=st.sampled_from(["irpa", "safetensors"]),
    change=st.sampled_from([None, *CHANGES]),
    data=st.data(),
)
def test_diff_reports_each_injected_change_exactly_once(
    tmp_path_factory: pytest.TempPathFactory,
    tensors: dict[str, np.ndarray],
    fmt_a: str,
    fmt_b: str,
    change: str | None,
    data: st.DataObject,
) -> None:
    folder = tmp_path_factory.mktemp("diff")
    a = _write(folder / f"a.{fmt_a}", tensors)
    other = dict(tensors)
    key = data.draw(st.sampled_from(sorted(tensors)))
    if change == "remove":
        del other[key]
    elif change == "add":
        other["extra"] = np.ones(3, np.float32)
    elif change == "dtype":
        other[key] = other[key].astype(np.float64 if other[key].dtype != np.float64 else np.float32)
    elif change == "shape":
        other[key] = (
            other[key].reshape(-1)[: max(1, other[key].size - 1)].copy()
            if other[key].size > 1
            else np.zeros(2, other[key].dtype)
        )
    elif change == "element":
        changed = other[key].copy()
        flat = changed.reshape(-1)
        flat[data.draw(st.integers(0, flat.size - 1))] += 1
        other[key] = changed
    b = _write(folder / f"b.{fmt_b}", other)
    report = diff(a, b)
    if change is None:
        assert report.equal and report.differences == [] and report.identical == len(tensors)
        return
    (d,) = report.differences
    expected = {"remove": "only_a", "add": "only_b", "dtype": "type", "shape": "type", "element": "values"}[change]
    assert d.change == expected and d.key == ("extra" if change == "add" else key)
    if change == "element":
        assert d.differing == 1 and d.elements == tensors[key].size and not report.equal


def test_diff_summaries_and_tolerance(tmp_path: Path, paramio_cli: Cli) -> None:
    w = np.linspace(-1, 1, 1000, dtype=np.float32)
    noisy = w + np.float32(1e-7)
    noisy[3] = np.nan
    a = _write(tmp_path / "a.safetensors", {"w": w, "same": np.ones(4, np.float32)})
    b = _write(tmp_path / "b.irpa", {"w": noisy, "same": np.ones(4, np.float32)})
    (d,) = diff(a, b).differences
    assert d.nan_changed == 1 and d.differing == 1000 and d.max_abs == pytest.approx(1e-7, rel=0.5)
    assert d.cosine == pytest.approx(1.0) and not d.within_tolerance
    noisy[3] = w[3]
    b = _write(tmp_path / "c.irpa", {"w": noisy, "same": np.ones(4, np.float32)})
    assert diff(a, b, atol=1e-6).equal and not diff(a, b).equal
    assert paramio_cli("diff", str(a), str(b))[0] == 1
    code, out, _ = paramio_cli("diff", str(a), str(b), "--tolerance=1e-6")
    assert code == 0 and out.startswith("values differ (within tolerance): w")
    code, out, _ = paramio_cli("diff", str(a), str(a), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["version"] == 1 and doc["equal"] and doc["identical"] == 2
    assert paramio_cli("diff", str(a), str(tmp_path / "missing.irpa"))[0] == 2
    assert paramio_cli("diff", str(a))[0] == 2


@pytest.mark.interop
def test_quantised_gguf_compares_by_dequantised_value(tmp_path: Path, paramio_cli: Cli) -> None:
    gguf = pytest.importorskip("gguf")
    values = np.linspace(-1, 1, 4 * 64, dtype=np.float32).reshape(4, 64)

    def write(path: Path, v: np.ndarray) -> Path:
        w = gguf.GGUFWriter(str(path), "llama")
        q = gguf.quants.quantize(v, gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("q", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path

    changed = values.copy()
    changed[0, 0] = 0.5
    (d,) = diff(write(tmp_path / "a.gguf", values), write(tmp_path / "b.gguf", changed)).differences
    expected = gguf.quants.dequantize(
        gguf.quants.quantize(changed, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    )
    original = gguf.quants.dequantize(
        gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    )
    assert d.change == "values" and d.elements == 256
    assert d.max_abs == pytest.approx(float(np.abs(expected - original).max()))
    assert d.differing == int(np.count_nonzero(expected != original))


def test_remote_diff_by_stored_digests_reads_only_the_changed_tensor(nginx, nginx_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("obstore", reason="the remote extra is not installed")
    rng = np.random.default_rng(1)
    tensors = {f"layer{i}": rng.standard_normal(64 << 10).astype(np.float32) for i in range(8)}
    changed = dict(tensors)
    changed["layer5"] = tensors["layer5"] + 1
    _write(nginx_dir / "a.irpa", tensors, digests=True)
    _write(nginx_dir / "b.irpa", changed, digests=True)
    base = f"{nginx.url}/{nginx_dir.name}"
    before = len(synced_log(nginx, nginx_dir))
    report = diff(f"{base}/a.irpa", f"{base}/b.irpa")
    assert [d.key for d in report.differences] == ["layer5"] and report.by_digest == 7
    sent = sum(int(line.rsplit(" ", 1)[-1]) for line in synced_log(nginx, nginx_dir)[before:] if line.startswith("GET"))
    tensor = tensors["layer5"].nbytes
    header = (nginx_dir / "a.irpa").stat().st_size - sum(t.nbytes for t in tensors.values())
    assert tensor < sent <= 2 * (header + 64 * 1024 + tensor), (sent, header, tensor)  # each side: header + that tensor


def test_diff_refuses_a_negative_tolerance(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.irpa", {"w": np.ones(2, np.float32)})
    with pytest.raises(InvalidArgumentError, match="tolerances must be >= 0"):
        diff(a, a, atol=-1)


def test_copying_a_file_changes_nothing(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.gguf", {"w": np.arange(6, dtype=np.int32)})
    shutil.copy(a, tmp_path / "b.gguf")
    assert diff(a, tmp_path / "b.gguf").equal


@pytest.mark.parametrize("dtype_name", ["bfloat16", "float8_e4m3fn"])
def test_bfloat16_and_float8_compare_by_value(tmp_path: Path, dtype_name: str) -> None:
    """NumPy calls ml_dtypes' floats kind ``V``: they were reported as "bytes differ" with no
    summary; they are numeric tensors and compare as float16 does."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = getattr(ml_dtypes, dtype_name)
    original = np.linspace(-2, 2, 64, dtype=np.float32).astype(dtype)
    changed = original.copy()
    changed[5] = dtype(1.5)
    a = _write(tmp_path / "a.safetensors", {"w": original})
    b = _write(tmp_path / "b.safetensors", {"w": changed})
    (d,) = diff(a, b).differences
    assert d.change == "values" and d.elements == 64 and d.differing == 1
    assert d.max_abs == pytest.approx(abs(1.5 - float(original[5].astype(np.float64))))
