"""Where a job's tasks write a file before the driver commits it, and how a failed job finds and
removes what its attempts left (on a shared path; uploads go to their final object)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

__all__ = ["remove_files", "staged_files", "staging_name"]

#: The staging name's suffix: ``.<name>.<job>.paramio-part`` beside the final file.
PART = ".paramio-part"


def staging_name(final: str, job: str) -> str:
    """The hidden name beside `final` that job `job` writes it under until the commit."""
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}.{job}{PART}")


def staged_files(finals: Iterable[str], job: str) -> list[str]:
    """Job `job`'s staging files of `finals` still on disk, with their writers' temporaries
    (an attempt killed mid-write leaves one), sorted."""
    found: list[str] = []
    for final in finals:
        staged = staging_name(final, job)
        folder, name = os.path.split(staged)
        pattern = os.path.join(glob.escape(folder or "."), f".{glob.escape(name)}*")
        found += [p for p in [staged, *glob.glob(pattern)] if os.path.lexists(p)]
    return sorted(set(found))


def remove_files(paths: Iterable[str]) -> list[str]:
    """Remove `paths`; return those that could not be removed (a missing one is gone already)."""
    left: list[str] = []
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError:
            left.append(path)
    return left
