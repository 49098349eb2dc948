"""/v1 as a hostile or careless client meets it, over real HTTP against the app ``tunewise serve``
builds: one client cannot hang the server (a dropped stream, a busy model, a slow answer), a web
page cannot drive it (cross-site, DNS rebinding), and every bad request is a 4xx in OpenAI's error
shape naming the field."""

import json
import threading
import time

import httpx
import pytest

from tests.served import served

QUESTION = [{"role": "user", "content": "Tell me a long story about the sea."}]
LONG = 900
"""Tokens to ask for: on the slow tiny model below, several seconds of generation."""


@pytest.fixture(scope="module")
def slow_model_path(tmp_path_factory):
    """A tiny random chat model, wide enough that a long answer takes seconds (it never stops early)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("slow-model"), hidden=384, layers=6)


@pytest.fixture
def app(slow_model_path, tmp_path):
    from assistant.runtime.generation import ModelSettings
    from ui.app import build_app

    app = build_app(tmp_path / "ws", model=ModelSettings(model=str(slow_model_path), device="cpu"))
    app.tenants.model.get()  # loaded before the clock starts
    return app


def chat(url: str, max_tokens: int = 4, stream: bool = False, timeout: float = 60, **extra) -> httpx.Response:
    body = {"model": "default/base", "messages": QUESTION, "max_tokens": max_tokens, "stream": stream, **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout)


def model_is_free(app, within_s: float) -> bool:
    """Whether the model's lock is free (or freed) within ``within_s`` seconds."""
    lock = app.tenants.model.get().lock
    if lock.acquire(timeout=within_s):
        lock.release()
        return True
    return False


def drop_after_events(url: str, events: int) -> None:
    """Start a long streamed answer, read ``events`` events, and hang up."""
    body = {"model": "default/base", "messages": QUESTION, "max_tokens": LONG, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen += 1
                if seen == events:
                    break


def test_a_dropped_stream_stops_generating_and_frees_the_model(app):
    from ui.openai_api import ApiLimits

    with served(app, limits=ApiLimits(busy_wait_s=5)) as url:
        drop_after_events(url, 3)
        # The old server generated all 900 tokens after the drop, then hung on the lock for good.
        assert model_is_free(app, within_s=2.0)
        answer = chat(url, max_tokens=4, timeout=30)
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 200
        assert httpx.get(f"{url}/config", timeout=10).status_code == 200


def test_the_app_answers_while_the_model_works(app):
    with served(app) as url:
        finished = threading.Event()
        outcome = {}

        def long_answer():
            outcome["response"] = chat(url, max_tokens=LONG, timeout=120)
            finished.set()

        worker = threading.Thread(target=long_answer)
        worker.start()
        time.sleep(0.5)  # the long answer is generating
        pages = [httpx.get(f"{url}/config", timeout=60) for _ in range(3)]
        models = httpx.get(f"{url}/v1/models", timeout=60)
        answered_during = not finished.is_set()
        worker.join()
    assert all(p.status_code == 200 for p in pages) and models.status_code == 200
    assert answered_during, "the page and the model list waited for the model's answer"
    assert outcome["response"].status_code == 200


def test_a_busy_model_answers_503_with_retry_after(app):
    from ui.openai_api import ApiLimits

    with served(app, limits=ApiLimits(busy_wait_s=0.3, retry_after_s=7)) as url:
        body = {"model": "default/base", "messages": QUESTION, "max_tokens": LONG, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as streaming:
            lines = streaming.iter_lines()  # kept: a dropped iterator closes the connection (a hang-up)
            next(line for line in lines if line.startswith("data:"))
            busy = chat(url, timeout=30)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "7"
        assert busy.json()["error"]["code"] == "model_busy"
        assert model_is_free(app, within_s=2.0)


def test_a_non_streaming_client_that_hangs_up_stops_its_answer(app):
    with served(app) as url:
        with pytest.raises(httpx.TimeoutException):
            chat(url, max_tokens=LONG, timeout=1.0)
        assert model_is_free(app, within_s=2.0)


def test_web_pages_on_other_sites_cannot_drive_the_api(app):
    with served(app) as url:
        simple_post = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                                 content=json.dumps({"model": "default/base", "messages": QUESTION}),
                                 headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
        assert simple_post.status_code in (403, 415) and "error" in simple_post.json()
        json_post = httpx.post(f"{url}/v1/chat/completions", timeout=10, headers={"Origin": "http://evil.example"},
                               json={"model": "default/base", "messages": QUESTION, "max_tokens": 2})
        assert json_post.status_code == 403
        plain_text = httpx.post(f"{url}/v1/chat/completions", timeout=10, headers={"Content-Type": "text/plain"},
                                content=json.dumps({"model": "default/base", "messages": QUESTION}))
        assert plain_text.status_code == 415
        for path in ("/v1/models", "/config", "/"):
            rebound = httpx.get(f"{url}{path}", timeout=10, headers={"Host": "rebind.evil.example"})
            assert rebound.status_code == 421, path
        port = url.rsplit(":", 1)[1]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            assert httpx.get(f"{url}/v1/models", timeout=10, headers={"Host": host}).status_code == 200
        same_site = httpx.get(f"{url}/v1/models", timeout=10, headers={"Origin": url})
        assert same_site.status_code == 200
    assert model_is_free(app, within_s=0)


BAD_BODIES = [
    ('{"model": "default/base", "messages": [{"role": "user", "content": "hi"}], "top_p": -3}', 400, "top_p"),
    ('{"model": "default/base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', 400,
     "max_tokens"),
    ('{"model": "default/base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": Infinity}', 400,
     None),
    ('{"model": "default/base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "9"}', 400,
     "max_tokens"),
    ('{"model": "default/base", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}', 400,
     "messages"),
    ('{"model": "default/base", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', 400, "stream"),
    ('{"model": 7, "messages": [{"role": "user", "content": "hi"}]}', 400, "model"),
    ('{"model": "default/base", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}", 400, None),
    ("[1, 2]", 400, None),
    ("not json", 400, None),
]


@pytest.mark.parametrize(("body", "status", "param"), BAD_BODIES)
def test_every_bad_request_is_a_4xx_naming_the_field(app, body, status, param):
    with served(app) as url:
        response = httpx.post(f"{url}/v1/chat/completions", content=body, timeout=30,
                              headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param


def test_oversized_bodies_and_prompts_are_refused_before_any_generation(app):
    with served(app) as url:
        huge = '{"model": "default/base", "messages": [{"role": "user", "content": "' + "x" * 31_000_000 + '"}]}'
        too_big = httpx.post(f"{url}/v1/chat/completions", content=huge, timeout=60,
                             headers={"Content-Type": "application/json"})
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
        long_prompt = [{"role": "user", "content": "sea " * 2000}]
        too_long = httpx.post(f"{url}/v1/chat/completions", timeout=60,
                              json={"model": "default/base", "messages": long_prompt, "max_tokens": 16})
        assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
