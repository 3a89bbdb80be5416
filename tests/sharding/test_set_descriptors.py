"""A set of many members opens within a small descriptor limit (``ulimit -n``).

Every member used to hold two descriptors (its own and its memory map's) for the life of the
index, so a set of more than ~510 members could not open under the common ``ulimit -n 1024``.
Members are now open only while in use (`paramio.formats.sets.MemberSource`, at most
`MAX_OPEN_MEMBERS` at once): a 600-member set opens and reads under ``ulimit -n 256``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import paramio
from paramio import ParameterIndex

MEMBERS = 600

CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    from paramio import ParameterIndex
    from paramio.formats.registry import read_path
    path, members = sys.argv[1], int(sys.argv[2])
    contents = read_path(path)
    assert len(contents.entries) == members, len(contents.entries)
    for i, e in enumerate(contents.entries):  # every member read, by copy and by view
        assert e.read() == np.full(4, i, np.float32).tobytes(), e.key
        assert float(e.to_numpy()[0]) == i
    index = ParameterIndex.open(path)  # and through the index (opened again: new descriptors)
    total = sum(float(index[f"w{i}"].to_numpy()[0]) for i in range(members))
    assert total == sum(range(members)), total
    print("ok")
    """
)


@pytest.mark.parametrize("ext", [".irpa", ".safetensors"])
def test_600_members_open_under_ulimit_256(tmp_path: Path, ext: str) -> None:
    index = ParameterIndex()
    for i in range(MEMBERS):
        index.add_array(f"w{i}", np.full(4, i, np.float32))
    paramio.write_path(tmp_path / f"m{ext}", list(index.values()), max_shard_size=16, durable=False)
    manifest = tmp_path / f"m{ext}.index.json"
    assert len(list(tmp_path.iterdir())) == MEMBERS + 1
    for opener in (manifest, tmp_path / f"m-00007-of-{MEMBERS:05d}{ext}"):
        r = subprocess.run(
            [sys.executable, "-c", CHILD, str(opener), str(MEMBERS)], capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
