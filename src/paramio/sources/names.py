"""Relative names of siblings (shards, external files) and the rule that confines them.

A file or object may name another one beside it (a shard list, an IRPA external entry). The
name is untrusted: it must stay inside the folder (or URL prefix) of the one naming it. This is
the lexical half of the rule, the same for paths and URLs: a relative name of ``/``-separated
segments, none of them ``..`` (also percent-encoded, in case a server decodes twice), no
absolute path, scheme or host. Local files add the symlink half (real paths) where they open
the result. Names are names, not URL fragments: `join_url` percent-encodes each segment, so
``a#1.bin`` or ``x?.bin`` name those files, as they would on disk.
"""

from __future__ import annotations

import os

from paramio.core.errors import SourceError

__all__ = ["join_url", "relative_parts", "scheme_of"]


def scheme_of(path_or_url: str | os.PathLike[str]) -> str | None:
    """The URL scheme of `path_or_url` in lower case, or None for a local path (also on Windows,
    where ``C:\\x`` has a one-letter "scheme"). Here, not in `paramio.sources.registry`, so
    that telling a local path from a URL imports no registry."""
    text = os.fspath(path_or_url)
    if "://" not in text:
        return None
    from urllib.parse import urlsplit  # here: a local path never needs it

    scheme = urlsplit(text).scheme.lower()
    return scheme if len(scheme) >= 2 else None


def relative_parts(name: str, *, base: str) -> list[str]:
    """The segments of a sibling name, refused when it could leave `base`'s folder.

    Raises `SourceError` (naming `base`) for an empty or absolute name, a scheme or host, a
    ``..`` segment (also percent-encoded), a backslash or a NUL."""
    from urllib.parse import unquote  # here: a listing of a local file never needs it

    shown = name.encode("unicode_escape", "backslashreplace").decode("ascii")

    def refuse(why: str) -> SourceError:
        return SourceError(f"sibling name {shown!r} refused: {why}", path=base)

    if not name:
        raise refuse("it is empty")
    decoded = unquote(name)
    if "\0" in decoded or "\\" in decoded:
        raise refuse("it holds a NUL or a backslash")
    head = name.split("/", 1)[0]
    if ":" in head or name.startswith("/") or decoded.startswith("/"):
        raise refuse("it is not relative to the folder")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(unquote(p) in ("..", ".") or "/" in unquote(p) for p in parts):
        raise refuse("it leaves the folder")
    return parts


def join_url(base_url: str, name: str) -> str:
    """`name` (checked by `relative_parts`, each segment percent-encoded) resolved against the
    folder of `base_url`; any query or fragment on the base is dropped, since it belonged to
    the base object."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = relative_parts(name, base=base_url)
    u = urlsplit(base_url)
    folder = u.path.rsplit("/", 1)[0]
    path = folder + "/" + "/".join(quote(p, safe="") for p in parts)
    if not u.netloc and base_url.startswith(f"{u.scheme}://"):
        return f"{u.scheme}://{path}"  # ``scheme:///path``: urlunsplit would drop the empty host's ``//``
    return urlunsplit((u.scheme, u.netloc, path, "", ""))
