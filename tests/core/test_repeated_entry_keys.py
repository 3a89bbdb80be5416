"""An IRPA archive that repeats an entry key (IREE's builder writes one, and IREE's runtime loads
it, lookups giving the first) opens in paramio too: with a `FormatWarning` naming the key and
both entry numbers, the same entries in the same order as IREE's, and a refusal under `strict`.
Building an index by hand keeps the explicit rule: a second `add` of a key is an error."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio.core.errors import DuplicateKeyError, FormatWarning

rt = pytest.importorskip("iree.runtime")


@pytest.fixture
def repeated(tmp_path: Path) -> Path:
    index = rt.ParameterIndex()
    index.add_buffer("w", np.arange(4, dtype=np.float32).tobytes())
    index.add_buffer("w", np.ones(4, dtype=np.float32).tobytes())
    index.add_buffer("b", b"abcd")
    path = tmp_path / "repeated.irpa"
    index.create_archive_file(str(path))
    return path


@pytest.mark.interop
def test_opens_with_a_warning_and_the_entries_iree_sees(repeated: Path) -> None:
    iree_index = rt.ParameterIndex()
    iree_index.load(str(repeated))
    want = [(k, bytes(e.file_view)) for k, e in iree_index.items()]
    with pytest.warns(FormatWarning, match=r"key 'w' appears more than once \(entries 0 and 1\)"):
        ours = paramio.ParameterIndex.open(repeated)
    assert [(k, bytes(e.memoryview())) for k, e in ours.items()] == want
    assert bytes(ours["w"].memoryview()) == want[0][1]  # the first, as IREE's lookups give
    assert len(ours) == len(iree_index) == 3


def test_strict_refuses(repeated: Path) -> None:
    with pytest.raises(DuplicateKeyError, match=r"repeated\.irpa: entry 'w': the file repeats the key"):
        paramio.ParameterIndex.open(repeated, strict=True)


def test_a_chosen_policy_is_applied_silently(repeated: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        last = paramio.ParameterIndex.open(repeated, duplicates="last")
    assert last.keys() == ["w", "b"]
    assert bytes(last["w"].memoryview()) == bytes(
        paramio.ParameterIndex.open(repeated, duplicates="keep").items()[1][1].memoryview()
    )


def test_a_key_already_in_the_index_still_follows_its_rule(repeated: Path, tmp_path: Path) -> None:
    other = paramio.ParameterIndex()
    other.add_buffer("b", b"wxyz")
    other_path = tmp_path / "other.irpa"
    other.create_archive_file(str(other_path))
    index = paramio.ParameterIndex.open(other_path)
    with pytest.warns(FormatWarning), pytest.raises(DuplicateKeyError, match="'b'"):
        index.load(repeated)
    by_hand = paramio.ParameterIndex()
    by_hand.add_buffer("k", b"1234")
    with pytest.raises(DuplicateKeyError):
        by_hand.add_buffer("k", b"5678")


@pytest.mark.interop
@pytest.mark.parametrize("how", ["open", "iree_load"])
def test_the_warning_names_the_callers_line(repeated: Path, how: str) -> None:
    """Whatever path inside paramio reaches the reader, the warning points at this file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if how == "open":
            paramio.ParameterIndex.open(repeated)
        else:  # IREE's spelling, a longer path through paramio
            paramio.ParameterIndex().load(str(repeated))
    (w,) = [w for w in caught if issubclass(w.category, FormatWarning)]
    assert w.filename == __file__, w.filename
