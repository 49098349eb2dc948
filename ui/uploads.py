"""Files that reach the app from a client: only what that client uploaded, and it does not linger.

**Only uploads.** A file input's value comes from the client: a Gradio ``FileData`` whose ``path``
the client writes itself. Gradio refuses a path outside its upload cache only after ``launch()``;
mounted into FastAPI (as ``tunewise serve`` runs it) it passes any path through, so a crafted call
could have the server index ``/etc/passwd`` or another user's files. Every handler that takes a file
value therefore resolves it with :func:`uploaded_file`, which accepts a regular file inside the
upload cache (symlinks resolved first, so none leads out) under the upload size limit, and nothing
else: not a device, a FIFO, a folder, or a file the client merely named.

**Not lingering.** Gradio copies every upload into its cache folder, where, left alone, it would
stay (and a client that learns the path could fetch it). Documents are deleted there as soon as they
are indexed (the index keeps the extracted text); everything else in the cache, including example
files kept for a second check, is removed by Gradio after an hour (``CACHE_SWEEP`` on the app's Blocks).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from assistant.core.errors import TunewiseError

CACHE_SWEEP = (600, 3600)
"""Gradio's delete_cache: every 10 minutes, delete cached files older than an hour."""
MAX_UPLOAD_MB = 200
MAX_UPLOAD = f"{MAX_UPLOAD_MB}mb"
"""Gradio refuses larger uploads before they reach any handler; :func:`uploaded_file` checks again
(a value naming a file bypasses Gradio's upload route), and loaders apply per-file limits too."""
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024


class UploadRefusedError(TunewiseError):
    """A file value that is not a file this client uploaded."""

    hint = "Upload the file again with the upload box."


def upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _path_of(value) -> str:
    """The path a file input's value names: a str (``type="filepath"``), a dict or a FileData."""
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, dict):
        value = value.get("path")
    else:
        value = getattr(value, "path", None)
    if not isinstance(value, str) or not value:
        raise UploadRefusedError("the file value names no file")
    return value


def uploaded_file(value, what: str = "file", max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """The uploaded file ``value`` names, resolved; UploadRefusedError for anything that is not a
    regular file inside the upload cache, or is larger than ``max_bytes``.

    The message never says whether a refused path exists, so a refusal tells a client nothing
    about the server's disk.
    """
    raw = _path_of(value)
    if "\x00" in raw:
        raise UploadRefusedError(f"the {what} was not uploaded here")
    try:
        path = Path(raw).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable folder
        raise UploadRefusedError(f"the {what} was not uploaded here (or has expired)") from None
    if upload_folder() not in path.parents:
        raise UploadRefusedError(f"the {what} was not uploaded here (or has expired)")
    try:
        info = path.stat()
    except OSError:
        raise UploadRefusedError(f"the {what} was not uploaded here (or has expired)") from None
    if not stat.S_ISREG(info.st_mode):
        raise UploadRefusedError(f"the {what} is not a regular file")
    if info.st_size > max_bytes:
        raise UploadRefusedError(f"the {what} is {info.st_size / 2**20:.0f} MB, over the "
                                 f"{max_bytes / 2**20:.0f} MB upload limit", "Split it into smaller files.")
    return path


def optional_upload(value, what: str = "file") -> Path | None:
    """:func:`uploaded_file`, or None when the input is empty."""
    return None if not value else uploaded_file(value, what)


def discard_upload(path: str | Path) -> bool:
    """Delete ``path`` if it is a file in Gradio's upload cache (and its folder, if now empty);
    anything elsewhere (the app's own example files) is left alone. Returns whether it was deleted."""
    path = Path(path).resolve()
    cache = upload_folder()
    if cache not in path.parents or not path.is_file():
        return False
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # Gradio puts each upload in a folder named by its hash
        if path.parent != cache:
            path.parent.rmdir()
    return True
