"""The Behaviour tab's form carries every setting the plan chose, and its problems table reads as a summary."""

import pytest

from assistant.behaviour import settings_from_plan
from assistant.hardware import detect_hardware
from assistant.profile import TaskProfile
from assistant.rules import decide
from tests.ui.handlers import REQUEST, handler
from ui.behaviour_tab import SETTING_FIELDS, settings_from

HAND_MADE = {"finetune": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
             "learning_rate": 1e-4, "epochs": 2, "reasons": []}
PLANS = {
    "hand-made, two targets": HAND_MADE,
    "the rules, 8B on a 16 GB GPU": decide(TaskProfile(task="Extract order fields", examples=300, vram_gb=16,
                                                        model_size_b=8)).to_dict(),
}


@pytest.mark.parametrize("plan", PLANS.values(), ids=PLANS.keys())
def test_the_form_gives_back_every_setting_the_plan_chose(tmp_path, plan):
    from assistant.workspace import Workspace
    from ui.app import build_app

    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("default")
    workspace.save("default", {**workspace.load("default"), "plan": plan})
    app = build_app(workspace)
    *values, reasons = handler(app, "on_prefill")("default", REQUEST)
    planned, why = settings_from_plan(plan, detect_hardware())
    assert settings_from(values) == planned  # nothing the plan chose is lost on the way through the form
    assert set(why) <= set(SETTING_FIELDS)
    assert "target modules" in reasons
    if plan is HAND_MADE:
        assert values[SETTING_FIELDS.index("target_modules")] == "q_proj,v_proj"


def test_an_emptied_targets_box_means_all_linear():
    values = [dict(model="bundled:SmolLM2-135M-Instruct", method="lora", lora_r=8, lora_alpha=16, lora_dropout=0.05,
                   target_modules="  ", learning_rate=2e-4, epochs=3, max_steps=-1, batch_size=8,
                   gradient_accumulation=1, max_length=1024, packing=False)[name] for name in SETTING_FIELDS]
    assert settings_from(values).target_modules == "all-linear"
