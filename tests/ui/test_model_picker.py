"""The model picker: only the models this server offers; one that does not load is refused with a
reason and the current one stays."""

import shutil

from assistant.runtime.models import BUNDLED_MODEL
from assistant.services.operator import MODEL_NOT_OFFERED, OperatorPolicy
from tests.ui.handlers import REQUEST, handler


def test_a_model_the_server_does_not_offer_is_refused_and_an_operators_folder_loads(tmp_path, tiny_model_path):
    from ui.app import build_app

    models = tmp_path / "models"
    shutil.copytree(tiny_model_path, models / "tiny")
    (models / "not-a-model").mkdir()
    app = build_app(tmp_path / "ws", policy=OperatorPolicy(model_dirs=(models,)))
    switch = handler(app, "on_switch")

    picker, status = switch(str(tmp_path / "no-such-model"), "default", REQUEST)
    assert "Not switched" in status and MODEL_NOT_OFFERED[1:] in status, status
    assert "Model in use:** SmolLM2-135M-Instruct (bundled, offline)" in status
    assert picker.value == BUNDLED_MODEL
    names = [name for _, name in picker.choices]
    assert BUNDLED_MODEL in names and str(models / "tiny") in names  # the operator's folder is offered
    assert str(models / "not-a-model") not in names  # no config.json: not listed (but may be typed)

    picker, status = switch(str(models / "not-a-model"), "default", REQUEST)
    assert "Not switched" in status and "does not load" in status, status
    assert picker.value == BUNDLED_MODEL  # the folder is the operator's, but it holds no model: put back

    picker, status = switch(str(models / "tiny"), "default", REQUEST)
    assert picker.value == str(models / "tiny")
    assert "Loaded on cpu" in status and "tiny (model folder)" in status, status
    refresh = handler(app, "open_project")
    assert "tiny (model folder)" in refresh("default", REQUEST)[-1]  # the status after a project change
