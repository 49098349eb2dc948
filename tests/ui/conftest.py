import pytest


@pytest.fixture
def running_app(tmp_path, monkeypatch):
    """The app over a fresh workspace, launched on 127.0.0.1 and closed after the test."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from ui.app import build_app

    app = build_app(tmp_path / "workspace")
    app.queue(default_concurrency_limit=8)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield app, url, tmp_path / "workspace"
    finally:
        app.close()
