"""Integrity and comparison: per-entry digests stored with a model and checked at load, whole-file
checks against ``sha256sum`` lists and Hugging Face LFS pointers, and `diff` between any two
sources (docs/integrity.md)."""

from __future__ import annotations

from paramio.integrity.diff import DiffReport, EntryDiff, diff
from paramio.integrity.digest import DigestReport, Mismatch, digest, stored_digests, verify_digests, write_digests
from paramio.integrity.files import FileCheck, check_files

__all__ = [
    "DiffReport",
    "DigestReport",
    "EntryDiff",
    "FileCheck",
    "Mismatch",
    "check_files",
    "diff",
    "digest",
    "stored_digests",
    "verify_digests",
    "write_digests",
]
