"""Reading nginx's access log without racing it."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from remote_servers import Nginx


def synced_log(nginx: Nginx, folder: Path) -> list[str]:
    """The access log once every request made so far is in it: nginx logs a request after its
    response is sent, so a client can read the log first. A marker request, answered by the
    same single worker after the earlier ones, shows the log has caught up."""
    marker = f"/{folder.name}/__synced_{uuid.uuid4().hex}"
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(nginx.url + marker, timeout=10).read()
    for _ in range(500):
        lines = nginx.requests()
        for i, line in enumerate(lines):
            if marker in line:
                return [x for x in lines[:i] if "__synced_" not in x]
        time.sleep(0.01)
    raise AssertionError("nginx never logged the marker request")
