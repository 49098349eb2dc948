"""One error family, shown the same way by both faces: a sentence with a hint, never a traceback."""

import gradio as gr
import pytest

from assistant.core.errors import TunewiseError
from assistant.services.workspace import WorkspaceError
from trainers.adapters import AdapterError
from ui.errors import explain, guard_handlers, shows_errors


def test_a_tunewise_error_reads_as_its_message_then_its_hint():
    error = TunewiseError("the adapter 'a' was trained on 'x'", "Load 'x' to use it.")
    assert explain(error) == "the adapter 'a' was trained on 'x'. Load 'x' to use it."
    assert explain(WorkspaceError("there is no project named 'p'")) == "there is no project named 'p'"


def test_errors_of_the_machinery_below_are_explained_and_bugs_are_not():
    from retrieval.search import search

    assert explain(AdapterError("an adapter named 'a' already exists")) == "an adapter named 'a' already exists"
    with pytest.raises(ValueError) as refused:  # a value a person gave: an InputError, still a ValueError
        search(None, None, "q", mode="nonsense")
    assert explain(refused.value).startswith("unknown search mode 'nonsense'")
    assert explain(ValueError("one embedding per chunk")) is None  # a bare ValueError is a bug
    assert explain(KeyError("x")) is None


def test_every_exception_class_the_project_defines_descends_from_one_base():
    import ast
    import importlib
    from pathlib import Path

    from tunewise.errors import TunewiseError

    root = Path(__file__).resolve().parents[2]
    defined = []
    for package in ("assistant", "retrieval", "trainers", "tunewise", "ui"):
        for path in (root / package).rglob("*.py"):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef):
                    cls = getattr(importlib.import_module(module), node.name)
                    if isinstance(cls, type) and issubclass(cls, BaseException):
                        defined.append(cls)
    assert len(defined) >= 20
    assert [c.__qualname__ for c in defined if not issubclass(c, TunewiseError)] == []


def test_a_wrapped_handler_turns_any_error_into_a_page_message_and_logs_bugs(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEWISE_ERROR_LOG", str(tmp_path / "errors.log"))

    def fails_for_people(name):
        raise WorkspaceError(f"there is no project named {name!r}")

    def has_a_bug(name):
        yield "first"
        raise ZeroDivisionError("division by zero")

    with pytest.raises(gr.Error, match="There is no project named 'p'") as shown:
        shows_errors(fails_for_people)("p")
    assert shown.value.print_exception is False  # no traceback in the server's console for it
    stream = shows_errors(has_a_bug)("p")
    assert next(stream) == "first"  # still a generator: Gradio streams it
    with pytest.raises(gr.Error, match=r"Unexpected error \(logged\): ZeroDivisionError.*details are in .*errors.log"):
        next(stream)
    assert "ZeroDivisionError" in (tmp_path / "errors.log").read_text()


def test_every_handler_of_the_app_is_guarded(tmp_path):
    from ui.app import build_app

    app = build_app(tmp_path / "ws")
    handlers = [f.fn for f in app.fns.values() if f.fn is not None]
    assert handlers and all(getattr(fn, "shows_errors", False) for fn in handlers)
    assert guard_handlers(app) == 0  # already done, once


def test_the_cli_prints_one_clear_line_for_any_error(tmp_path, capsys):
    from ui.cli import main

    code = main(["projects", "--workspace", str(tmp_path), "delete", "missing"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tunewise: error: there is no project named 'missing'")
    assert "Traceback" not in err
