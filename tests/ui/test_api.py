"""The app's named endpoints through gradio_client, and the app mounted inside another one."""

import json

import pytest
from gradio_client import Client

from ui.cli import main as cli_main

ANSWERS = ["Extract order fields from emails as JSON", "behaviour", "no", "a few hundred", "yes",
           "monthly", "a T4", "8B", "no", "one"]


def test_a_scripted_conversation_reaches_the_same_plan_as_advise(running_app, tmp_path, capsys):
    _, url, _ = running_app
    client = Client(url, verbose=False)
    replies = [client.predict(message=a, project="api-test", api_name="/interview") for a in ANSWERS]
    assert all(isinstance(r, str) and r for r in replies)
    assert "plan" in replies[-1].lower()
    plan = client.predict(project="api-test", api_name="/plan")

    profile = {"task": ANSWERS[0], "gap": "behaviour", "documents": False, "examples": 300,
               "can_measure": True, "changes": "monthly", "vram_gb": 16, "model_size_b": 8,
               "latency_sensitive": False, "tasks": 1}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    assert cli_main(["advise", "--profile", str(path), "--json"]) == 0
    assert plan == json.loads(capsys.readouterr().out)
    assert plan["finetune"] == "qlora" and "prompting_baseline" in plan["flags"]


def test_a_bad_answer_through_the_api_gets_a_question_not_an_error(running_app):
    _, url, _ = running_app
    client = Client(url, verbose=False)
    client.predict(message="Classify tickets", project="p", api_name="/interview")
    client.predict(message="behaviour", project="p", api_name="/interview")
    client.predict(message="no", project="p", api_name="/interview")
    reply = client.predict(message="-12", project="p", api_name="/interview")
    assert "negative" in reply
    plan = client.predict(project="p", api_name="/plan")
    assert plan["reasons"]  # earlier answers still plan


def test_an_invalid_project_name_is_a_clear_error(running_app):
    _, url, _ = running_app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="not a valid project name"):
        client.predict(message="hi", project="../etc", api_name="/interview")


def test_the_app_mounts_inside_a_fastapi_app(tmp_path):
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ui.app import build_app

    host = FastAPI()

    @host.get("/health")
    def health():
        return {"ok": True}

    mounted = gr.mount_gradio_app(host, build_app(tmp_path / "ws"), path="/tunewise")
    with TestClient(mounted) as client:
        assert client.get("/health").json() == {"ok": True}
        page = client.get("/tunewise/")
        assert page.status_code == 200 and "Tunewise" in page.text
        config = client.get("/tunewise/config").json()
        api_names = {d.get("api_name") for d in config["dependencies"]}
        assert {"interview", "plan"} <= api_names
