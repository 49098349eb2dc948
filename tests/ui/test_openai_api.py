"""The OpenAI-compatible API through the real ``openai`` client against a real server on 127.0.0.1."""

import json
import socket
import threading
import time

import openai
import pytest

KEY = "test-key-123"
QUESTION = [{"role": "user", "content": "How many days of leave do I get?"}]


WORKSPACES = {}
"""The workspace folder behind each server's URL."""


def server_workspace(url: str):
    return WORKSPACES[url]


@pytest.fixture(scope="module")
def server(tiny_model_path, tmp_path_factory):
    """``tunewise serve``'s app (Gradio + /v1) with an API key, the tiny model, one document; stopped after."""
    import uvicorn

    from assistant.runtime.generation import ModelSettings
    from ui.app import build_app, serving_app

    root = tmp_path_factory.mktemp("openai-api")
    app = build_app(root / "ws", model=ModelSettings(model=str(tiny_model_path), device="cpu"))
    document = root / "leave.md"
    document.write_text("# Leave\n\nEvery employee gets 25 days of paid leave each year.\n")
    app.tenants.get(None).knowledge.get("default", create=True).ingest([document])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = uvicorn.Server(uvicorn.Config(serving_app(app, api_key=KEY), host="127.0.0.1", port=port,
                                            log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not running.started and time.time() < deadline:
        time.sleep(0.1)
    WORKSPACES[f"http://127.0.0.1:{port}"] = root / "ws"
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=30)


def client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def test_every_variant_of_every_project_is_a_model(server):
    ids = [m.id for m in client(server).models.list()]
    assert ids == ["default/base", "default/base + retrieval"]


def test_a_chat_answers_and_streaming_gives_the_same_text(server):
    api = client(server)
    whole = api.chat.completions.create(model="default/base", messages=QUESTION, max_tokens=12)
    assert whole.object == "chat.completion" and whole.choices[0].message.role == "assistant"
    assert whole.choices[0].message.content and whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 0
    chunks = list(api.chat.completions.create(model="default/base", messages=QUESTION, max_tokens=12, stream=True))
    assert len(chunks) > 2 and chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content


def test_a_retrieval_variant_returns_its_sources(server):
    answer = client(server).chat.completions.create(model="default/base + retrieval", messages=QUESTION,
                                                    max_tokens=12)
    sources = answer.model_extra["tunewise"]["sources"]
    assert sources and sources[0]["source"] == "leave.md" and "25 days" in sources[0]["snippet"]
    last = list(client(server).chat.completions.create(model="default/base + retrieval", messages=QUESTION,
                                                       max_tokens=4, stream=True))[-1]
    assert last.model_extra["tunewise"]["sources"][0]["source"] == "leave.md"


def test_a_wrong_model_name_is_an_openai_shaped_404(server):
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(model="default/no-such-adapter", messages=QUESTION)
    assert caught.value.code == "model_not_found" and "default/no-such-adapter" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client(server).chat.completions.create(model="gpt-4o", messages=QUESTION)


def test_without_the_key_the_api_answers_401(server):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(server, key="wrong").models.list()
    assert caught.value.code == "invalid_api_key"


def test_a_bad_request_is_a_400_that_names_the_field(server):
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="default/base", messages=[], max_tokens=4)
    assert caught.value.param == "messages"


def test_the_web_app_and_its_named_api_still_answer_beside_v1(server):
    from gradio_client import Client

    from assistant.services.advisor import Advisor
    from assistant.services.workspace import Workspace

    plan = Client(server + "/", verbose=False).predict(project="default", api_name="/plan")
    expected = Advisor(Workspace(server_workspace(server))).plan("default")  # the same plan, read directly
    assert plan["decision"] and plan == json.loads(json.dumps(expected))


def test_with_sign_in_a_users_password_reaches_that_users_projects_only():
    from ui.logins import Logins
    from ui.openai_api import ApiAccess, ApiError

    access = ApiAccess(logins=Logins.from_pairs([("bo", "correct horse")]))
    assert access.user("Bearer bo:correct horse") == "bo"
    for header in (None, "Bearer bo:wrong", "Basic Ym86Y29ycmVjdCBob3JzZQ==", "Bearer nobody:correct horse"):
        with pytest.raises(ApiError) as refused:
            access.user(header)
        assert refused.value.status == 401
    assert ApiAccess().user(None) is None  # neither key nor sign-in: open, as the app is (loopback by default)


def test_prepared_examples_add_a_few_shot_model_that_says_which_examples_it_showed(server):
    from assistant.example_data import EXAMPLE_EVAL
    from assistant.services.behaviour import Behaviour
    from assistant.services.workspace import Workspace

    text = EXAMPLE_EVAL.read_text()
    Behaviour(Workspace(server_workspace(server)), "default").prepare("train.jsonl", text, "eval.jsonl", text)
    ids = [m.id for m in client(server).models.list()]
    assert "default/base + few-shot" in ids and "default/base + few-shot + retrieval" in ids
    answer = client(server).chat.completions.create(model="default/base + few-shot", max_tokens=8,
                                                    messages=[{"role": "user", "content": "Play some jazz"}])
    shown = answer.model_extra["tunewise"]["few_shot_examples"]
    assert shown and all(isinstance(n, int) and n >= 1 for n in shown)
