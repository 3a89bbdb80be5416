"""The AWS-environment forms of the suite's S3 servers (``tests/sources/server_fixtures.py``), for the
openers over URLs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))

from remote_servers import S3Server, aws_env  # noqa: E402


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Each S3 server in turn, configured by the AWS environment variables."""
    return aws_env(s3, monkeypatch)


@pytest.fixture
def moto_env(moto: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """moto's S3 alone (it aborts multipart uploads; s3rver cannot), by the environment."""
    return aws_env(moto, monkeypatch)
