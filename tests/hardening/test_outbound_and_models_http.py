"""What a web user can make the server reach: judges only among the operator's endpoints, models only
among those the server offers. Real HTTP against the app as ``tunewise serve`` builds it, speaking as
a hostile client does (tests/served.py); a counting HTTP server on 127.0.0.1 shows every outbound
request the server made.

    .venv/bin/python -m pytest -q tests/hardening/test_outbound_and_models_http.py
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant.services.operator import (
    LOADED_MODEL_JUDGE,
    MODEL_NOT_OFFERED,
    JudgeEndpoint,
    OperatorPolicy,
    OperatorPolicyError,
    judge_endpoints_from_env,
    judge_endpoints_from_flags,
    model_offered,
    within,
)
from tests.served import QueueCaller, free_port, served

SECRET_BODY = b"<html>SECRET admin console, nginx/1.2.3, db=10.0.0.7</html>"

# --- the policy's decisions, as plain functions ---------------------------------------------------

MODEL_DIR = Path("/srv/models")
WITHIN_CASES = {  # name: under /srv/models
    "/srv/models": True, "/srv/models/qwen": True, "/srv/models/qwen/": True, "/srv/models/a/b": True,
    "/srv/models/../../etc": False, "/srv/models/qwen/../../../etc": False, "/srv/modelsX": False,
    "/etc": False, "/nonexistent": False, "srv/models/qwen": False, "./srv/models": False,
    "someone/model": False, "": False, "~no-such-user-here/models": False,
}


@pytest.mark.parametrize(("name", "inside"), WITHIN_CASES.items(), ids=[k or "empty" for k in WITHIN_CASES])
def test_a_folder_is_under_the_operators_model_dir_by_its_spelling(name, inside):
    assert within(name, [MODEL_DIR]) is inside


def test_a_model_is_offered_by_name_or_as_a_folder_under_a_model_dir():
    policy = OperatorPolicy(model_dirs=(MODEL_DIR,))
    offered = ["bundled:SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"]
    assert model_offered("Qwen/Qwen2.5-0.5B-Instruct", offered, policy)
    assert model_offered(" /srv/models/qwen ", offered, policy)
    assert not any(model_offered(name, offered, policy) for name in ("someone/model", "/etc", "", "Qwen/Other"))
    assert not model_offered("/srv/models/qwen", offered, OperatorPolicy())  # no --model-dir, no folders


def test_serves_judge_flags_pair_in_order_and_a_loopback_url_is_allowed_for_itself_only():
    endpoints = judge_endpoints_from_flags(["http://127.0.0.1:8000/v1/", "https://judge.example.com/v1"],
                                           ["qwen", "gpt"], ["", "k2"])
    assert [(e.label, e.url, e.api_key, e.allow_private) for e in endpoints] == [
        ("qwen", "http://127.0.0.1:8000/v1", None, True), ("gpt", "https://judge.example.com/v1", "k2", False)]
    same = judge_endpoints_from_flags(["http://127.0.0.1:8000/v1", "http://localhost:9000/v1"], ["m", "m"])
    assert [e.label for e in same] == ["m at 127.0.0.1:8000", "m at localhost:9000"]
    with pytest.raises(OperatorPolicyError, match="--judge-name"):
        judge_endpoints_from_flags(["http://127.0.0.1:8000/v1"], [])
    with pytest.raises(OperatorPolicyError, match="--judge-key"):
        judge_endpoints_from_flags(["http://a/v1", "http://b/v1"], ["x", "y"], ["one key for both"])
    with pytest.raises(OperatorPolicyError, match="two judges"):
        OperatorPolicy((JudgeEndpoint("http://a/v1", "x"), JudgeEndpoint("http://b/v1", "y", label="x")))
    env = {"TUNEWISE_JUDGE_URL": "http://10.0.0.5:8000/v1", "TUNEWISE_JUDGE_NAME": "big", "TUNEWISE_JUDGE_KEY": "k"}
    assert judge_endpoints_from_env(env) == (JudgeEndpoint("http://10.0.0.5:8000/v1", "big", "k"),)
    assert judge_endpoints_from_env({}) == ()


def test_a_judge_is_looked_up_by_its_label_and_never_by_a_url():
    endpoint = JudgeEndpoint("http://10.0.0.5:8000/v1", "big")
    policy = OperatorPolicy((endpoint,))
    assert policy.judge_labels() == [LOADED_MODEL_JUDGE, "big"]
    assert policy.judge("big") is endpoint
    assert policy.judge("http://10.0.0.5:8000/v1") is None and policy.judge(None) is None
    assert not policy.may_reach_private(endpoint)
    assert OperatorPolicy((endpoint,), allow_private_judge=True).may_reach_private(endpoint)


# --- over HTTP ------------------------------------------------------------------------------------


class CountingJudge(ThreadingHTTPServer):
    """An OpenAI-compatible server on 127.0.0.1 counting the requests under each first path segment:
    ``/broken/...`` answers 405 with a body the user must never see, anything else a verdict."""

    def __init__(self):
        self.hits: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler):  # noqa: N802, N805 - the http.server names; ``self`` is the server
                where = handler.path.strip("/").split("/")[0]
                self.hits[where] = self.hits.get(where, 0) + 1
                handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
                status, body = (405, SECRET_BODY) if where == "broken" else (200, json.dumps(
                    {"choices": [{"message": {"content": "Verdict: A\nReason: the first one"}}]}).encode())
                handler.send_response(status)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            do_GET = do_POST  # noqa: N815

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, segment: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{segment}/v1"


@pytest.fixture(scope="module")
def judge_server():
    server = CountingJudge()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_model_path, judge_server):
    """The app as serve builds it, with the operator's judges (one on a loopback address the operator
    did not allow) and a --model-dir holding a copy of the tiny model; two blind votes to judge."""
    from assistant.runtime.generation import ModelSettings
    from assistant.services.arena import Vote, VoteStore
    from assistant.services.workspace import Workspace
    from ui.app import build_app

    root = tmp_path_factory.mktemp("outbound")
    models = root / "models"
    shutil.copytree(tiny_model_path, models / "tiny-copy")
    workspace = Workspace(root / "ws")
    workspace.ensure("default")
    store = VoteStore(workspace.project("default").path / "tunewise.sqlite")
    store.add(Vote("base", "base + retrieval", "a", "Say hi", "hi", "hello"))
    store.add(Vote("base", "base + retrieval", "b", "Say bye", "no", "bye"))
    store.close()
    policy = OperatorPolicy(judge_endpoints=(
        JudgeEndpoint(judge_server.url("private"), "m", label="private-judge"),  # not allowed: 127.0.0.1
        JudgeEndpoint(judge_server.url("allowed"), "m", label="allowed-judge", allow_private=True),
        JudgeEndpoint(judge_server.url("broken"), "m", label="broken-judge", allow_private=True),
        JudgeEndpoint(f"http://127.0.0.1:{free_port()}/v1", "m", label="silent-judge", allow_private=True),
    ), model_dirs=(models,))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(root / "gradio-tmp"))
        app = build_app(root / "ws", model=ModelSettings(model=str(tiny_model_path), device="cpu"), policy=policy)
        with served(app) as url:
            yield url, app, models


def error_of(message: dict) -> str:
    assert message.get("success") is False, message
    return str(message["output"].get("error"))


def judge_with(caller: QueueCaller, value: str) -> dict:
    """The judge button, every input but the project set to ``value`` (a URL, a label) as a client may."""
    event = caller.event(trigger="ab-judge")
    project = caller.component_id("project-select")
    return caller.call(event, ["default" if i == project else value for i in caller.inputs_of(event)])


HOSTILE = {"a path picked with ?": "http://127.0.0.1:{port}/hostile/admin?",
           "a plain loopback URL": "http://127.0.0.1:{port}/hostile/v1",
           "a label the operator never offered": "someone-elses-judge"}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_judge_not_among_the_operators_is_refused_with_no_outbound_request(site, judge_server, value):
    url, app, _ = site
    value = value.format(port=judge_server.server_address[1])
    before = dict(judge_server.hits)
    error = error_of(judge_with(QueueCaller(url), value))
    assert "not in the list of choices" in error or "not one this server offers" in error, error
    assert judge_server.hits == before  # the server called nobody

    # Behind the list's own check, the handler looks the label up itself and refuses anything else.
    from tests.ui.handlers import REQUEST, handler

    with pytest.raises(Exception, match="not one this server offers"):
        handler(app, "on_judge")(value, "default", REQUEST, lambda *a, **k: None)
    assert judge_server.hits == before


def test_an_operators_judge_at_a_private_address_is_refused_unless_the_operator_allowed_it(site, judge_server):
    url, _, _ = site
    caller = QueueCaller(url)
    error = error_of(judge_with(caller, "private-judge"))
    assert "loopback, private or link-local address" in error and "--allow-private-judge" in error, error
    assert judge_server.hits.get("private", 0) == 0

    allowed = judge_with(caller, "allowed-judge")
    assert allowed["success"], allowed
    assert "agrees with your blind votes on" in allowed["output"]["data"][0]
    assert judge_server.hits["allowed"] == 4  # two pairs, each in both orders


@pytest.mark.parametrize(("label", "shown"), [("broken-judge", "did not answer (HTTP 405)"),
                                              ("silent-judge", "did not answer.")])
def test_a_judges_error_never_shows_its_body_nor_how_the_connection_failed(site, label, shown):
    url, _, _ = site
    error = error_of(judge_with(QueueCaller(url), label))
    assert f"The judge {label} {shown}" in error, error
    for leak in ("SECRET", "nginx", "10.0.0.7", "127.0.0.1", "refused", "Connect", "timed out", "Errno"):
        assert leak not in error, (leak, error)


def switch_model(caller: QueueCaller, value: str) -> str:
    """The "Use this model" button with ``value`` in the picker; the status it shows."""
    event = caller.event(trigger="model-use")
    picker, project = caller.component_id("model-select"), caller.component_id("project-select")
    data = [value if i == picker else "default" if i == project else None for i in caller.inputs_of(event)]
    message = caller.call(event, data)
    assert message["success"], message
    return message["output"]["data"][-1]


def test_the_model_picker_refuses_what_the_server_does_not_offer_alike_and_loads_an_operators_folder(
        site, tiny_model_path):
    url, app, models = site
    caller = QueueCaller(url)
    refused = ["/etc", "/nonexistent", "someone/model", f"{models}/../../etc", str(tiny_model_path.parent)]
    statuses = [switch_model(caller, value) for value in refused]
    assert len(set(statuses)) == 1, statuses  # one message: nothing said about what exists
    assert MODEL_NOT_OFFERED[1:] in statuses[0] and f"Still using {tiny_model_path}" in statuses[0], statuses[0]
    assert app.tenants.model.name == str(tiny_model_path)

    status = switch_model(caller, str(models / "tiny-copy"))
    assert "Loaded on cpu" in status and "tiny-copy (model folder)" in status, status
    assert app.tenants.model.name == str(models / "tiny-copy")
    status = switch_model(caller, str(tiny_model_path))  # the model serve started with: always offered
    assert "Loaded on cpu" in status and app.tenants.model.name == str(tiny_model_path), status


def test_the_training_forms_base_model_is_refused_alike_before_it_is_read(site):
    url, _, _ = site
    caller = QueueCaller(url)
    event = caller.event(trigger="bh-example")
    values = {c["id"]: c.get("props", {}).get("value") for c in caller.config["components"]}
    model, project = caller.component_id("bh-model"), caller.component_id("project-select")
    reports = []
    for wanted in ("/etc", "/nonexistent", "someone/model"):
        data = [wanted if i == model else "default" if i == project else values.get(i)
                for i in caller.inputs_of(event)]
        message = caller.call(event, data)
        assert message["success"], message
        reports.append(message["output"]["data"][7])  # the report, after the six example fields
    assert len(set(reports)) == 1 and MODEL_NOT_OFFERED in reports[0], reports
