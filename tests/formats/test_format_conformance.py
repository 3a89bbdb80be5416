"""`paramio.testing.FormatTests` over paramio's own file formats (issue 23.2); the `.toy` format of
docs/architecture.md runs it in tests/docs/test_architecture_doc.py."""

from __future__ import annotations

from paramio.testing import FormatTests


class TestIrpa(FormatTests):
    format_name = "irpa"


class TestSafetensors(FormatTests):
    format_name = "safetensors"


class TestGguf(FormatTests):
    format_name = "gguf"
