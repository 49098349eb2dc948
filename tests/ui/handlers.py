"""Calling an app's event handlers directly, as Gradio would, without a browser or a server."""

from types import SimpleNamespace

REQUEST = SimpleNamespace(username=None, session_hash="test-session")
"""What the handlers read from a gr.Request: nobody signed in (the workspace itself)."""


def handler(app, name: str):
    """The function behind the app's event named ``name`` (its Python name)."""
    found = [fn.fn for fn in app.fns.values() if fn.fn is not None and fn.name == name]
    assert found, f"no event handler named {name!r}; have {sorted({fn.name for fn in app.fns.values()})}"
    return found[0]


def as_upload(path) -> str:
    """A copy of ``path`` where Gradio keeps uploads (the app takes file values from there only,
    ui/uploads.py), as an upload through the page would leave it; its path."""
    import shutil
    import uuid
    from pathlib import Path

    from ui.uploads import upload_folder

    folder = upload_folder() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return str(shutil.copy(path, folder / Path(path).name))
