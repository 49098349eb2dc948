"""What the page gets besides its components: the English strings Gradio's own frontend lacks."""

import httpx


def test_the_screen_reader_says_done_not_common_complete(running_app):
    _, url, _ = running_app
    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    assert config["i18n_translations"] == {"en": {"common": {"complete": "Done"}}}


def test_a_mounted_app_carries_the_same_strings(tmp_path):
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ui.app import build_app

    mounted = gr.mount_gradio_app(FastAPI(), build_app(tmp_path / "ws"), path="/tunewise")
    with TestClient(mounted) as client:
        config = client.get("/tunewise/config").json()
    assert config["i18n_translations"] == {"en": {"common": {"complete": "Done"}}}
