"""Calling an app's event handlers directly, as Gradio would, without a browser or a server."""

from types import SimpleNamespace

REQUEST = SimpleNamespace(username=None, session_hash="test-session")
"""What the handlers read from a gr.Request: nobody signed in (the workspace itself)."""


def handler(app, name: str):
    """The function behind the app's event named ``name`` (its Python name)."""
    found = [fn.fn for fn in app.fns.values() if fn.fn is not None and fn.name == name]
    assert found, f"no event handler named {name!r}; have {sorted({fn.name for fn in app.fns.values()})}"
    return found[0]
