"""Start training, called over HTTP as the page calls it, refuses a process count the machine cannot run.

A browser (or anyone who can reach the app) sends the Behaviour form's values as it likes; before
the limit, ``processes=5000`` became ``accelerate launch --num_processes 5000``. The app is the one
``tunewise serve`` runs (tests/served.py), driven through Gradio's queue: "Try it with example
data" prepares a dataset, then "Start training" is sent in the same session, since the prepared
dataset's id lives in the session's server-side state, as it does for a browser tab.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from assistant.runtime.generation import ModelSettings
from tests.served import QueueCaller, served
from trainers.config import MAX_PROCESSES
from trainers.jobs import usable_cores


class SessionCaller(QueueCaller):
    """A QueueCaller whose calls share one session, as the events of one browser tab do."""

    def __post_init__(self):
        super().__post_init__()
        self.session = uuid.uuid4().hex[:11]

    def call(self, fn_index: int, data: list) -> dict:
        joined = self.http.post("/gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "session_hash": self.session, "event_data": None, "trigger_id": None})
        joined.raise_for_status()
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and (message := json.loads(line[5:])).get("msg") == "process_completed":
                    return message
        raise AssertionError("the queue stream ended without a result")


def form_values(caller: QueueCaller, fn_index: int, **given) -> list:
    """The event's input values as the page sends them: each component's default, except those
    ``given`` by elem_id (``bh_processes`` for ``bh-processes``)."""
    components = {c["id"]: c.get("props", {}) for c in caller.config["components"]}
    chosen = {name.replace("_", "-"): value for name, value in given.items()}
    return [chosen.get(components[i].get("elem_id"), components[i].get("value")) for i in caller.inputs_of(fn_index)]


@pytest.fixture
def behaviour_tab(tmp_path, monkeypatch, tiny_model_path):
    """The served app on a machine with no visible GPU; any launch of a training process is recorded
    and refused, so that even a regression starts nothing."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("TUNEWISE_ERROR_LOG", str(tmp_path / "errors.log"))  # where a regression's traceback goes
    launched = []

    def no_training_process(job_dir, resume, board_folder):
        launched.append(job_dir)
        raise RuntimeError("a training process was launched")

    monkeypatch.setattr("trainers.jobs.launch_process", no_training_process)
    from ui.app import build_app

    app = build_app(tmp_path / "ws", model=ModelSettings(model=str(tiny_model_path), device="cpu"))
    with served(app) as url:
        caller = SessionCaller(url)
        example = caller.event(trigger="bh-example")
        prepared = caller.call(example, form_values(caller, example, bh_model=str(tiny_model_path)))
        assert prepared["success"], prepared
        yield caller, launched


CORES = usable_cores()


@pytest.mark.parametrize("processes, words", [
    (5000, f"processes must be between 0 .one per GPU. and {MAX_PROCESSES}, not 5000"),
    (CORES + 1, f"{CORES + 1} training processes asked for, but this machine has {CORES} CPU core"
     if CORES < MAX_PROCESSES else f"and {MAX_PROCESSES}, not {CORES + 1}"),
], ids=["absurd", "one more than the cores"])
def test_start_training_refuses_more_processes_than_the_machine_has_and_starts_nothing(
        behaviour_tab, tmp_path, tiny_model_path, processes, words):
    caller, launched = behaviour_tab
    start = caller.event(trigger="bh-start")
    result = caller.call(start, form_values(caller, start, bh_model=str(tiny_model_path), bh_processes=processes,
                                            bh_adapter_name="too-wide"))
    assert result["success"] is False, result
    assert re.search(words, result["output"]["error"]), result["output"]
    assert launched == []
    assert list((tmp_path / "ws").rglob("jobs/*/state.json")) == []
