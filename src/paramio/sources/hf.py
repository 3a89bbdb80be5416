"""``hf://`` names: a model in the local Hugging Face cache, by repository id.

``hf://org/name/file`` and ``hf://org/name@revision/file`` name one file of a repository;
``hf://org/name`` (or ``@revision``) the whole model: its ``model.safetensors.index.json``, else
its one safetensors file, else its one GGUF file or GGUF split set, else its one IRPA archive.
``hf://datasets/org/name/...`` names a dataset repository. A revision is a branch or tag
(``refs/<name>`` holds its commit) or a full commit hash; ``main`` by default; a revision with
a slash (``refs/pr/1``) is written with ``%2F``.

The cache is laid out as ``huggingface_hub`` writes it: under ``$HF_HUB_CACHE`` (default
``$HF_HOME/hub``, ``$HF_HOME`` defaulting to ``~/.cache/huggingface``), a folder
``models--org--name`` holding ``refs/<revision>`` (a commit hash), ``snapshots/<commit>/<path>``
(symlinks into ``blobs/``) and ``blobs/<hash>``. A blob is named by its content's hash: SHA-256
for LFS files (64 hex digits), git's blob SHA-1 for the rest (40): the file a name resolves to
is checked against its name before it is first read, so a truncated or corrupted download is
an error, not wrong weights. The check reads the whole file (SHA-256 ran at 0.2-0.3 GB/s on
the 2-core VM paramio is developed on; CPUs with SHA extensions do several times that), so a
blob that passed is recorded, by device, inode, size and modification time, in
``$XDG_CACHE_HOME/paramio/hf-verified`` (``~/.cache/paramio``; never in the Hugging Face cache
itself) and not hashed again while those stay the same. ``PARAMIO_HF_VERIFY=0`` skips the check.

paramio never writes into the cache. A file the cache does not hold is read over the network
instead, unless ``HF_HUB_OFFLINE=1``: the name becomes the Hub's
``{HF_ENDPOINT}/{repo}/resolve/{revision}/{path}`` URL (``HF_ENDPOINT`` defaults to
``https://huggingface.co``), read by ranges like any HTTP source. The Hub answers it with a
redirect to its storage host, which is followed (any host: the Hub chooses it); ``HF_TOKEN``
(else the token file ``$HF_HOME/token``) goes to the Hub as ``Authorization: Bearer`` and never
to the host a redirect leads to, and is never printed. Over the network a file must be named:
a whole repository is listed only from the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
from typing import Any
from urllib.parse import quote, unquote

from paramio.core.errors import InvalidArgumentError, SourceError

__all__ = ["HfName", "hub_cache", "hub_options", "hub_url", "parse_hf_url", "resolve_hf"]

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REPO_TYPES = {"datasets": "datasets", "spaces": "spaces", "models": "models"}
_GGUF_FIRST = re.compile(r"-00001-of-\d{5}\.gguf$", re.IGNORECASE)
_CHUNK = 8 << 20

_verified: dict[tuple[str, int, int], bool] = {}
_verified_lock = threading.Lock()


@dataclasses.dataclass(frozen=True, slots=True)
class HfName:
    """What an ``hf://`` name says: repository type and id, revision, and the file (``""``:
    the whole repository)."""

    repo_type: str
    repo_id: str
    revision: str
    path: str

    @property
    def folder(self) -> str:
        """The repository's folder name in the cache (``models--org--name``)."""
        return f"{self.repo_type}--{self.repo_id.replace('/', '--')}"


def hub_cache() -> str:
    """The Hugging Face hub cache folder, as ``huggingface_hub`` finds it."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return os.path.join(os.path.expanduser(home), "hub")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def parse_hf_url(url: str, *, cache: str | None = None) -> HfName:
    """The parts of ``hf://[datasets/]org/name[@revision][/path]``. A one-part repository id
    (``hf://gpt2/model.safetensors``) is taken when the cache holds it and no two-part one.
    Raises `InvalidArgumentError` for a name that is not of that form."""
    if not url.lower().startswith("hf://"):
        raise InvalidArgumentError(f"not an hf:// name: {url!r}")
    rest = url[5:].strip("/")
    parts = [p for p in rest.split("/") if p]
    repo_type = "models"
    if parts and parts[0] in _REPO_TYPES:
        repo_type = _REPO_TYPES[parts.pop(0)]
    if not parts:
        raise InvalidArgumentError(f"hf:// name without a repository: {url!r}")
    if any(p in (".", "..") for p in parts):
        raise InvalidArgumentError(f"hf:// name with '.' or '..': {url!r}")
    root = cache if cache is not None else hub_cache()

    def split(n: int) -> HfName:
        repo, _, revision = "/".join(parts[:n]).partition("@")
        return HfName(repo_type, repo, unquote(revision) or "main", "/".join(parts[n:]))

    if "@" in parts[0] or len(parts) == 1:
        return split(1)
    if "@" in parts[1]:
        return split(2)
    two, one = split(2), split(1)
    if not os.path.isdir(os.path.join(root, two.folder)) and os.path.isdir(os.path.join(root, one.folder)):
        return one
    return two


def _commit(repo: str, name: HfName) -> str | None:
    """The commit a revision names (None: the cache has no ref of that name)."""
    if _HEX40.fullmatch(name.revision):
        return name.revision
    ref = os.path.join(repo, "refs", *name.revision.split("/"))
    try:
        with open(ref, encoding="utf-8") as f:
            commit = f.read().strip()
    except OSError:
        return None
    if not _HEX40.fullmatch(commit):
        raise SourceError(f"{ref} holds {commit[:60]!r}, not a commit hash", path=ref)
    return commit


def _whole_repo(snapshot: str, name: HfName) -> str:
    """The file a whole-repository name opens (see the module docstring)."""
    files: list[str] = []
    for dirpath, _, names in os.walk(snapshot):
        rel = os.path.relpath(dirpath, snapshot)
        files += [n if rel == "." else os.path.join(rel, n) for n in names]
    lower = {f.lower(): f for f in files}
    for preferred in ("model.safetensors.index.json", "model.safetensors"):
        if preferred in lower:
            return lower[preferred]
    groups = (
        [f for f in files if f.lower().endswith(".safetensors.index.json")],
        [f for f in files if f.lower().endswith(".safetensors")],
        [f for f in files if _GGUF_FIRST.search(f)],
        [f for f in files if f.lower().endswith(".gguf") and not re.search(r"-\d{5}-of-\d{5}\.gguf$", f, re.I)],
        [f for f in files if f.lower().endswith(".irpa")],
    )
    for group in groups:
        if len(group) == 1:
            return group[0]
        if len(group) > 1:
            listed = ", ".join(sorted(group)[:8])
            raise InvalidArgumentError(
                f"hf://{name.repo_id}: several candidates ({listed}); name one: hf://{name.repo_id}/FILE"
            )
    raise SourceError(f"hf://{name.repo_id}: no safetensors, GGUF or IRPA file in the cached snapshot", path=snapshot)


def resolve_hf(url: str, *, cache: str | None = None, verify: bool | None = None) -> str:
    """The local file an ``hf://`` name stands for, in the Hugging Face cache, its blob checked
    against its hash (`verify`; default: unless ``PARAMIO_HF_VERIFY=0``).

    Raises `InvalidArgumentError` for a malformed name or an ambiguous whole repository,
    `SourceError` when the cache does not hold it (or holds a blob whose hash differs)."""
    root = cache if cache is not None else hub_cache()
    name = parse_hf_url(url, cache=root)
    repo = os.path.join(root, name.folder)
    if not os.path.isdir(repo):
        return _remote(name, f"{name.repo_id} is not in the Hugging Face cache {root}", repo)
    commit = _commit(repo, name)
    if commit is None:
        return _remote(name, f"revision '{name.revision}' of {name.repo_id} is not in the Hugging Face cache", repo)
    snapshot = os.path.join(repo, "snapshots", commit)
    if not os.path.isdir(snapshot):
        return _remote(name, f"revision {commit} of {name.repo_id} has no snapshot in the cache", snapshot)
    rel = name.path or _whole_repo(snapshot, name)
    path = os.path.join(snapshot, *rel.split("/"))
    if not os.path.lexists(path):
        return _remote(name, f"{rel} is not in the cached snapshot {commit[:12]} of {name.repo_id}", path)
    blobs = os.path.realpath(os.path.join(repo, "blobs"))
    real = os.path.realpath(path)
    if os.path.islink(path) and not real.startswith(blobs + os.sep):
        raise SourceError(f"{rel} links outside the repository's blobs folder (to {real})", path=path)
    if not os.path.exists(real):
        raise SourceError(f"{rel} links to a missing blob {os.path.basename(real)}", path=path)
    if verify if verify is not None else os.environ.get("PARAMIO_HF_VERIFY", "1") != "0":
        check_blob(real)
    return path


def _remote(name: HfName, missing: str, where: str) -> str:
    """The Hub URL for a name the cache lacks, or the `SourceError` saying what is missing."""
    if _offline():
        raise SourceError(f"{missing} (HF_HUB_OFFLINE is set: nothing is read from the Hub)", path=where)
    if not name.path:
        raise SourceError(
            f"{missing}; over the network name a file (hf://{name.repo_id}/model.safetensors.index.json, say)",
            path=where,
        )
    return hub_url(name)


def hub_url(name: HfName) -> str:
    """The Hub's resolve URL for a file: ``{HF_ENDPOINT}/[datasets/]{repo}/resolve/{revision}/{path}``."""
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    prefix = "" if name.repo_type == "models" else f"{name.repo_type}/"
    return f"{endpoint}/{prefix}{name.repo_id}/resolve/{quote(name.revision, safe='')}/{quote(name.path)}"


def _token() -> str | None:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token.strip()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    try:
        with open(os.path.join(os.path.expanduser(home), "token"), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def hub_options() -> dict[str, Any]:
    """Source options for a Hub URL: redirects to any host (the Hub's storage), and the token
    as an ``Authorization`` header (which a redirect to another host does not carry)."""
    options: dict[str, Any] = {"allowed_hosts": True}
    token = _token()
    if token:
        options["client_options"] = {"default_headers": {"Authorization": f"Bearer {token}"}}
    return options


def check_blob(path: str) -> None:
    """Check a cache blob against its name: SHA-256 for a 64-hex name (LFS), git's blob SHA-1
    for a 40-hex one; other names are not checked. Raises `SourceError` on a mismatch."""
    blob = os.path.basename(path)
    if _HEX64.fullmatch(blob):
        digest = hashlib.sha256()
    elif _HEX40.fullmatch(blob):
        digest = hashlib.sha1(usedforsecurity=False)
    else:
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError(f"cannot stat blob: {exc.strerror}", path=path) from exc
    key = (path, st.st_size, st.st_mtime_ns)
    record = f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {blob}"
    with _verified_lock:
        if key in _verified:
            return
        if record in _records():
            _verified[key] = True
            return
    if len(blob) == 40:
        digest.update(b"blob %d\0" % st.st_size)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise SourceError(f"cannot read blob: {exc.strerror}", path=path) from exc
    if digest.hexdigest() != blob:
        kind = "SHA-256" if len(blob) == 64 else "git SHA-1"
        raise SourceError(
            f"blob content does not match its name ({kind} {digest.hexdigest()}): the download is "
            "corrupt or incomplete; delete it and download again",
            path=path,
        )
    with _verified_lock:
        _verified[key] = True
        _remember(record)


def _record_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "paramio", "hf-verified")


def _records() -> set[str]:
    """Blobs checked by earlier processes (lines of `_record_file`); empty when unreadable."""
    try:
        with open(_record_file(), encoding="utf-8") as f:
            return {line.rstrip("\n") for line in f.read(16 << 20).splitlines()}
    except (OSError, UnicodeDecodeError):
        return set()


def _remember(record: str) -> None:
    """Append a checked blob's record (one short line, one O_APPEND write); a failure only
    means the next process checks it again."""
    path = _record_file()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (record + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass
