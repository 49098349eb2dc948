"""Launching the app in tests: a free 127.0.0.1 port, closed afterwards."""

import socket
from contextlib import contextmanager


@contextmanager
def launched(app, concurrency: int = 8, **launch_options):
    """Launch a Gradio app on a free 127.0.0.1 port; yield its URL; close it afterwards.

    ``launch_options`` go to ``launch()`` (``auth``, for one)."""
    app.queue(default_concurrency_limit=concurrency)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                             **launch_options)
    try:
        yield url
    finally:
        app.close()
