"""Uploaded files do not linger: Gradio copies every upload into its cache folder, where, left
alone, it would stay (and a client that learns the path could fetch it). Documents are deleted
there as soon as they are indexed (the index keeps the extracted text); everything else in the
cache, including example files kept for a second check, is removed by Gradio after an hour
(``CACHE_SWEEP`` on the app's Blocks)."""

from __future__ import annotations

import contextlib
from pathlib import Path

CACHE_SWEEP = (600, 3600)
"""Gradio's delete_cache: every 10 minutes, delete cached files older than an hour."""


def upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


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
