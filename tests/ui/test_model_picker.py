"""The model picker: a model that cannot be had is refused with a reason and the current one stays."""

from assistant.runtime.models import BUNDLED_MODEL
from tests.ui.handlers import REQUEST, handler


def test_a_missing_folder_is_refused_and_the_model_stays_then_a_real_folder_loads(tmp_path, tiny_model_path):
    from ui.app import build_app

    app = build_app(tmp_path / "ws")
    switch = handler(app, "on_switch")

    picker, status = switch(str(tmp_path / "no-such-model"), "default", REQUEST)
    assert "Not switched" in status and "no model folder" in status, status
    assert "Model in use:** SmolLM2-135M-Instruct (bundled, offline)" in status
    assert picker.value == BUNDLED_MODEL
    assert BUNDLED_MODEL in [name for _, name in picker.choices]

    empty = tmp_path / "not-a-model"
    empty.mkdir()
    picker, status = switch(str(empty), "default", REQUEST)
    assert "Not switched" in status and "does not load" in status, status
    assert picker.value == BUNDLED_MODEL  # the folder exists, but it holds no model: put back

    picker, status = switch(str(tiny_model_path), "default", REQUEST)
    assert picker.value == str(tiny_model_path)
    assert "Loaded on cpu" in status and str(tiny_model_path) in status, status
    refresh = handler(app, "open_project")
    assert str(tiny_model_path) in refresh("default", REQUEST)[-1]  # the status after a project change
