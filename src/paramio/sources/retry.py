"""Remote read failures: one error type that names the URL, the byte range and the status, the
rule for which failures are worth another try, and the backoff between tries.

Protocol libraries raise their own exceptions with messages that can hold request details; the
remote sources translate them here, at one boundary, into `RemoteSourceError`, whose message is
built only from the redacted URL, the range, the status and a short reason, never from the
library's text, so credentials cannot leak into errors, logs or ``--json`` output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from paramio.core.errors import SourceError

__all__ = ["RemoteSourceError", "RetryPolicy", "redact_path", "redact_url", "with_retries"]

T = TypeVar("T")

#: HTTP statuses a later try may not see (throttling, a server restarting, a proxy timing out).
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def redact_url(url: str) -> str:
    """`url` without user info and with every query value replaced by ``REDACTED``: a presigned
    or SAS URL's query is its credential, and which parameter holds the secret differs by
    service (``X-Amz-Signature``, ``X-Goog-Signature``, ``sig``, a CDN's ``token``...), so none
    is shown. The names stay, to tell one URL from another."""
    u = urlsplit(url)
    netloc = u.netloc.rsplit("@", 1)[-1]
    query = u.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "REDACTED") for k, _ in pairs], safe="/:")
    return urlunsplit((u.scheme, netloc, u.path, query, u.fragment))


def redact_path(path: str) -> str:
    """`path` as it may be shown: a local path (or ``file://`` URL) as given, any other URL
    through `redact_url`. For every place a user-given path is printed or put in ``--json``."""
    scheme = urlsplit(path).scheme.lower() if "://" in path else ""
    return redact_url(path) if len(scheme) >= 2 and scheme != "file" else path


class RemoteSourceError(SourceError):
    """A remote read or open failed. `url` (redacted), `start`/`end` (the byte range, or None for
    the whole object), `status` (the HTTP status, or None for a connection failure, a timeout or
    a short body) and `attempts` are attributes; all but `attempts` are also in the message."""

    def __init__(
        self,
        reason: str,
        *,
        url: str,
        start: int | None = None,
        end: int | None = None,
        status: int | None = None,
        transient: bool = False,
        attempts: int = 1,
    ) -> None:
        self.url = redact_url(url)
        self.start, self.end, self.status = start, end, status
        self.transient, self.attempts = transient, attempts
        self.detail = reason
        where = f"bytes {start}-{end - 1}: " if start is not None and end is not None and end > start else ""
        code = f"HTTP {status} " if status is not None else ""
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        super().__init__(f"{where}{code}{reason}{tries}", path=self.url)
        self.offset = start  # the tree's attribute, without repeating the range in the message

    def after(self, attempts: int) -> RemoteSourceError:
        """The same error, saying how many attempts were made."""
        return RemoteSourceError(
            self.detail,
            url=self.url,
            start=self.start,
            end=self.end,
            status=self.status,
            transient=self.transient,
            attempts=attempts,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS's recommendation): try `attempts` times in all,
    waiting up to ``min(max_delay, first_delay * 2**n)`` before try n+1."""

    attempts: int = 5
    first_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        cap = min(self.max_delay, self.first_delay * (2**attempt))
        return (rng or random).uniform(0, cap)


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """`call()` until it succeeds, a non-transient `RemoteSourceError` escapes, or the policy's
    attempts run out (the last error then says how many attempts were made)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except RemoteSourceError as exc:
            if not exc.transient or attempt >= policy.attempts:
                raise (exc.after(attempt) if attempt > 1 else exc) from exc.__cause__
        await asyncio.sleep(policy.delay(attempt - 1))
