"""The login brake over real HTTP, on the app exactly as ``tunewise serve --auth`` builds it: wrong guesses
from anyone slow guessing down but never lock the user out of ``/v1`` or the login page, and a name that
does not exist answers no faster than one that does.

The brake runs on short settings here (turns 0.5 s apart, at most 1 s of waiting); test_logins.py pins
the defaults on a fake clock."""

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.served import served
from ui.logins import BrakeSettings, Logins, hash_password

FAST = BrakeSettings(max_failures=5, spacing_s=0.5, max_wait_s=1.0)
SLACK_S = 3.0  # a loaded 2-core machine: scrypt and HTTP around the wait


@dataclass
class SignInServer:
    url: str
    waits: list[tuple[float, bool]] = field(default_factory=list)
    """Each wait the brake made: its seconds, and whether it slept on the server's event loop."""

    def sleep(self, seconds: float) -> None:
        """The brake's sleep, noting where it runs: a running loop in this thread means the loop waits."""
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        self.waits.append((seconds, on_loop))
        time.sleep(seconds)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_path):
    """One server for the module; each test guesses at its own user, so the brake's memory does not meet."""
    from assistant.runtime.generation import ModelSettings
    from ui.app import build_app

    root = tmp_path_factory.mktemp("login-brake")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(root / "gradio-tmp"))
        app = build_app(root / "ws", model=ModelSettings(model=str(tiny_model_path), device="cpu"))
        signed_in = SignInServer("")
        logins = Logins.from_pairs([("alice", "right-password-1"), ("bob", hash_password("bob-password-1")),
                                    ("carol", hash_password("carol-password-1"))], FAST, sleep=signed_in.sleep)
        with served(app, auth=logins) as url:
            signed_in.url = url
            yield signed_in


def bearer(name: str, password: str) -> dict:
    return {"Authorization": f"Bearer {name}:{password}"}


def timed_models_call(url: str, headers: dict) -> tuple[int, float]:
    started = time.perf_counter()
    status = httpx.get(f"{url}/v1/models", headers=headers, timeout=60).status_code
    return status, time.perf_counter() - started


def test_a_flood_of_wrong_guesses_slows_guessing_but_never_locks_the_user_out(server):
    with ThreadPoolExecutor(6) as pool:
        flood = [pool.submit(timed_models_call, server.url, bearer("alice", "x")) for _ in range(18)]
        time.sleep(1.0)  # the brake is on by now, and guesses queue for their turns
        status, took = timed_models_call(server.url, bearer("alice", "right-password-1"))
        assert status == 200  # the old brake answered 401 without checking
        assert took < FAST.max_wait_s + SLACK_S  # the flood delays the user by at most max_wait_s
        guesses = [guess.result() for guess in flood]
    assert all(status == 401 for status, _ in guesses)
    assert max(took for _, took in guesses) >= FAST.spacing_s  # guessing was slowed
    login = httpx.post(f"{server.url}/login", data={"username": "alice", "password": "right-password-1"}, timeout=60)
    assert login.status_code == 200 and login.json() == {"success": True}


def test_a_name_that_does_not_exist_answers_no_faster_than_a_wrong_password(server):
    known, unknown = [], []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        def took(name: str) -> float:
            started = time.perf_counter()
            assert client.get("/v1/models", headers=bearer(name, "wrong-password")).status_code == 401
            return time.perf_counter() - started

        for _ in range(FAST.max_failures):  # no more, so the brake's turns stay out of the timing
            known.append(took("bob"))
            unknown.append(took("nobody"))
    # Both spend one scrypt (~50 ms); the old check answered an unknown name ~50 times faster.
    assert statistics.median(unknown) >= statistics.median(known) / 3, (known, unknown)


def test_a_braked_login_page_attempt_waits_off_the_event_loop(server):
    """A wait on the loop would stall every request to the server, so one attempt every few seconds
    for any name would take the whole server down."""
    for _ in range(FAST.max_failures):
        timed_models_call(server.url, bearer("carol", "x"))
    del server.waits[:]
    login = httpx.post(f"{server.url}/login", data={"username": "carol", "password": "x"}, timeout=60)
    assert login.status_code == 400 and len(server.waits) == 1  # braked: it waited its turn
    assert [on_loop for _, on_loop in server.waits] == [False]
