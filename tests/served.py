"""The app exactly as ``tunewise serve`` runs it (Gradio mounted into FastAPI, ``/v1`` beside it),
on a free 127.0.0.1 port, stopped after the test; and the raw Gradio queue calls a browser makes.

Why raw calls: ``gradio_client`` only reaches named endpoints and uploads files itself, while a
hostile client can call any event by its index with any value, a file value pointing anywhere
included. Tests of what the server refuses have to speak as that client does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(app, api_key: str | None = None, auth=None, **serve_options):
    """Serve ``app`` (from ``ui.app.build_app``) through ``ui.app.serving_app``, the function
    ``tunewise serve`` uses, on 127.0.0.1; yield the base URL. ``serve_options`` go to
    ``serving_app`` too (host checks, busy wait)."""
    import uvicorn

    from ui.app import serving_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(serving_app(app, api_key=api_key, auth=auth, host="127.0.0.1",
                                                       **serve_options),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def file_value(path: str, name: str | None = None) -> dict:
    """A file input's value as a browser sends it: Gradio's FileData, naming a path on the server."""
    return {"path": str(path), "orig_name": name or str(path).rsplit("/", 1)[-1], "meta": {"_type": "gradio.FileData"}}


@dataclass
class QueueCaller:
    """Calls the app's events through Gradio's queue, as the page does, with a signed-in session's cookies."""

    url: str
    cookies: dict = field(default_factory=dict)

    def __post_init__(self):
        self.http = httpx.Client(base_url=self.url, cookies=self.cookies, timeout=120)
        config = self.http.get("/config")
        self.config = config.json() if config.status_code == 200 else None  # None until signed in

    def login(self, user: str, password: str) -> QueueCaller:
        self.http.post("/login", data={"username": user, "password": password}).raise_for_status()
        self.config = self.http.get("/config").raise_for_status().json()
        return self

    def component_id(self, elem_id: str) -> int:
        return next(c["id"] for c in self.config["components"] if c.get("props", {}).get("elem_id") == elem_id)

    def event(self, *, api_name: str | None = None, trigger: str | None = None, event: str = "click") -> int:
        """The index of an event: by its API name, or by the elem_id of the component that triggers it."""
        for index, dependency in enumerate(self.config["dependencies"]):
            if api_name is not None and dependency.get("api_name") == api_name:
                return dependency.get("id", index)
            if trigger is not None and [self.component_id(trigger), event] in [list(t) for t in dependency["targets"]]:
                return dependency.get("id", index)
        raise KeyError(api_name or trigger)

    def inputs_of(self, fn_index: int) -> list[int]:
        return next(d["inputs"] for d in self.config["dependencies"] if d.get("id") == fn_index)

    def call(self, fn_index: int, data: list) -> dict:
        """Join the queue and read its stream to the end; the ``process_completed`` message
        (``success``, ``output`` with ``data`` or ``error``)."""
        session = uuid.uuid4().hex[:11]
        joined = self.http.post("/gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None})
        if joined.status_code != 200:
            return {"success": False, "status": joined.status_code, "output": {"error": joined.text}}
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
        raise AssertionError("the queue stream ended without a result")
