import pytest

from tests.ui.serving import launched


@pytest.fixture
def running_app(tmp_path, monkeypatch):
    """The app over a fresh workspace, launched on 127.0.0.1 and closed after the test."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from ui.app import build_app

    app = build_app(tmp_path / "workspace")
    with launched(app) as url:
        yield app, url, tmp_path / "workspace"
