"""Dataset files on disk: where they are looked for, how they are checked, how they are downloaded.

A dataset's files live in ``<dir>/<folder>/<file>``. The directories searched are ``root`` when
it is given, otherwise ``$DSLEARN_DATA`` (when set) and then ``~/.cache/dslearn``. A file counts
as found only when its MD5 matches the registry's. Downloads, when allowed, try each mirror in
turn with a timeout, check the MD5 before keeping anything, and write atomically (a temporary
file in the same folder, then ``os.replace``), into the first searched directory that can be
written to; a read-only data folder is never written. ``download=False`` or ``DSLEARN_OFFLINE=1``
never touch the network. Errors name the file, every path looked in, the expected (and found)
MD5, and how to get the file.

May import: the standard library.

>>> import os
>>> cache_dirs(root="/data/course") == [os.path.abspath("/data/course")]
True
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Sequence

DOWNLOAD_TIMEOUT_SECONDS = 30.0
_CHUNK = 1 << 20
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> md5, so each file is hashed once


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is in none of the searched folders and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file exists but its MD5 is not the one the registry lists."""


def cache_dirs(root: str | os.PathLike | None = None) -> list[str]:
    """The directories searched for dataset folders, in order."""
    if root is not None:
        return [os.path.abspath(os.fspath(root))]
    dirs = [os.environ["DSLEARN_DATA"]] if os.environ.get("DSLEARN_DATA") else []
    dirs.append(os.path.expanduser(os.path.join("~", ".cache", "dslearn")))
    return list(dict.fromkeys(os.path.abspath(d) for d in dirs))


def offline() -> bool:
    """True when ``DSLEARN_OFFLINE`` is set to something other than '', '0' or 'false'."""
    return os.environ.get("DSLEARN_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def downloads_allowed(download: bool | None) -> bool:
    """Whether the network may be used: not when ``download=False`` or in offline mode."""
    return download is not False and not offline()


def file_md5(path: str | os.PathLike) -> str:
    """The MD5 of a file, as hex (remembered while the file's size and mtime stay the same)."""
    stat = os.stat(path)
    key = (os.path.abspath(os.fspath(path)), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as file:
            for chunk in iter(lambda: file.read(_CHUNK), b""):
                digest.update(chunk)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def find_file(name: str, folder: str, filename: str, md5: str, mirrors: Sequence[str],
              root: str | os.PathLike | None = None, download: bool | None = None) -> str:
    """The path of a verified copy of ``folder/filename``, downloading it when that is allowed.

    ``name`` is the dataset's name, for messages. Raises ``ChecksumError`` when the only copies
    found are corrupt and none could be downloaded, ``DatasetNotFoundError`` when there is none.
    """
    dirs = cache_dirs(root)
    candidates = [os.path.join(d, folder, filename) for d in dirs]
    corrupt = []
    for path in candidates:
        if os.path.isfile(path):
            actual = file_md5(path)
            if actual == md5:
                return path
            corrupt.append((path, actual))
    attempts: list[str] = []
    if downloads_allowed(download):
        target_dir = _writable_folder([os.path.join(d, folder) for d in dirs])
        if target_dir is None:
            attempts.append(f"no download: none of {[os.path.join(d, folder) for d in dirs]} can be written to")
        else:
            path = _download(filename, md5, mirrors, target_dir, attempts)
            if path is not None:
                return path
    how = _how_to_get(folder, filename, mirrors, dirs, download, attempts)
    if corrupt:
        found = "\n".join(f"  {path}  (MD5 {actual})" for path, actual in corrupt)
        raise ChecksumError(f"{name}: file {filename!r} is corrupt: expected MD5 {md5}, found\n{found}\n"
                            f"Delete it and get a fresh copy. {how}")
    looked = "\n".join(f"  {path}" for path in candidates)
    raise DatasetNotFoundError(f"{name}: file {filename!r} (MD5 {md5}) not found. Looked in:\n{looked}\n{how}")


def _how_to_get(folder: str, filename: str, mirrors: Sequence[str], dirs: list[str], download: bool | None,
                attempts: list[str]) -> str:
    urls = "\n".join(f"  {mirror}{filename}" for mirror in mirrors) or "  (no mirror is registered)"
    lines = [f"To get it, download it from one of:\n{urls}",
             f"into {os.path.join(dirs[0], folder)}{os.sep}, or set DSLEARN_DATA to a folder that holds "
             f"{folder}/{filename}."]
    if download is False:
        lines.append("Downloads were off (download=False).")
    elif offline():
        lines.append("Downloads were off (offline mode: DSLEARN_OFFLINE is set).")
    if attempts:
        lines.append("Download attempts:\n" + "\n".join(f"  {attempt}" for attempt in attempts))
    return "\n".join(lines)


def _writable_folder(folders: list[str]) -> str | None:
    """The first folder that may be written (created if need be), or None."""
    for folder in folders:
        existing = folder
        while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)
        if _may_write(existing):
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError:
                continue
            return folder
    return None


def _may_write(directory: str) -> bool:
    """Writable, and not marked read-only: a folder without write permission bits is left alone
    even by root, for whom ``os.access`` is always true."""
    return os.access(directory, os.W_OK) and bool(os.stat(directory).st_mode & 0o222)


def _download(filename: str, md5: str, mirrors: Sequence[str], folder: str, attempts: list[str]) -> str | None:
    """Try each mirror; keep the first copy whose MD5 matches. Returns its path, or None."""
    destination = os.path.join(folder, filename)
    for mirror in mirrors:
        url = mirror + filename
        try:
            actual = _fetch(url, destination, md5)
        except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError, timeouts, IncompleteRead
            attempts.append(f"{url}: {error}")
            continue
        if actual == md5:
            return destination
        attempts.append(f"{url}: wrong MD5 {actual} (expected {md5}); discarded")
    return None


def _fetch(url: str, destination: str, md5: str) -> str:
    """Stream ``url`` into a temporary file next to ``destination`` and return the MD5 of what came;
    the temporary file replaces ``destination`` (atomically) only when that MD5 is ``md5``."""
    digest = hashlib.md5(usedforsecurity=False)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(destination), prefix=".download-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as reply:
            for chunk in iter(lambda: reply.read(_CHUNK), b""):
                digest.update(chunk)
                file.write(chunk)
        if digest.hexdigest() == md5:
            os.chmod(temporary, 0o644)
            os.replace(temporary, destination)
        return digest.hexdigest()
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
