"""The Behaviour tab's form carries every setting the plan chose, with reasons that agree with its values
and with `tunewise train`'s, and its problems table reads as a summary."""

import html
import json
import re

import pytest

from assistant.core.profile import TaskProfile
from assistant.core.rules import decide
from tests.ui.handlers import REQUEST, as_upload, handler
from ui.behaviour_tab import SETTING_FIELDS, settings_from

PROFILES = {
    "LoRA on a 24 GB GPU, two targets' worth of examples": TaskProfile(task="Tickets", examples=2500, vram_gb=24),
    "QLoRA: an 8B model on a 16 GB GPU": TaskProfile(task="Extract order fields", examples=300, vram_gb=16,
                                                     model_size_b=8),
    "a full fine-tune: 50k examples on a 141 GB GPU": TaskProfile(examples=50_000, vram_gb=141),
    "no fine-tune: no metric yet": TaskProfile(examples=500, vram_gb=24, can_measure=False),
}


def app_with_plan(tmp_path, profile: TaskProfile):
    """The web app over a workspace whose project "default" holds the rules' plan for ``profile``."""
    from assistant.services.workspace import Workspace
    from ui.app import build_app

    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("default")
    workspace.update("default", lambda data: data | {"plan": decide(profile).to_dict()})
    return build_app(workspace)


def reasons_by_setting(markdown: str) -> dict[str, str]:
    """The reasons list beside the form ("- **learning rate**: ...") by setting."""
    return {name: html.unescape(text) for name, text in re.findall(r"^- \*\*(.+?)\*\*: (.*)$", markdown, re.M)}


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES.keys())
def test_the_form_gives_back_every_setting_the_plan_chose(tmp_path, profile):
    from assistant.runtime.hardware import detect_hardware
    from assistant.services.training_settings import training_settings

    app = app_with_plan(tmp_path, profile)
    *values, reasons = handler(app, "on_prefill")("default", REQUEST)
    planned = training_settings(decide(profile), detect_hardware())
    assert settings_from(values) == planned.config  # nothing the plan chose is lost on the way through the form
    assert set(planned.reasons) <= set(SETTING_FIELDS)
    assert set(reasons_by_setting(reasons)) == {name.replace("_", " ") for name in planned.reasons}


def test_a_full_fine_tune_plan_fills_the_form_with_a_full_fine_tune_at_its_own_rate_and_says_why(tmp_path):
    """The plan says full fine-tune at 1e-5, and the form trains exactly that: the method and its rate come
    from one registry entry, never LoRA paired with a full fine-tune's rate (the bug this replaced)."""
    profile = PROFILES["a full fine-tune: 50k examples on a 141 GB GPU"]
    assert (decide(profile).finetune, decide(profile).learning_rate) == ("full", 1e-5)  # the plan card's
    *values, reasons = handler(app_with_plan(tmp_path, profile), "on_prefill")("default", REQUEST)
    settings = dict(zip(SETTING_FIELDS, values, strict=True))
    assert (settings["method"], settings["learning_rate"]) == ("full", 1e-5)
    why = reasons_by_setting(reasons)
    assert why["learning rate"].startswith("1e-5: a full fine-tune moves every weight")
    assert "2e-4 is the usual LoRA starting point" not in reasons


@pytest.mark.parametrize("setting, value, flags", [
    ("lora_r", 32, ["--lora-r", "32"]),
    ("learning_rate", 1e-4, ["--learning-rate", "1e-4"]),
    ("method", "lora", ["--method", "lora"]),
], ids=["r=32", "learning rate", "method"])
def test_the_form_and_train_dry_run_give_the_same_settings_and_reasons(tmp_path, capsys, setting, value, flags):
    from trainers.config import TrainingConfig
    from ui.behaviour_tab import reasons_markdown
    from ui.cli import main

    app = app_with_plan(tmp_path, PROFILES["QLoRA: an 8B model on a 16 GB GPU"])
    *values, _ = handler(app, "on_prefill")("default", REQUEST)
    values[SETTING_FIELDS.index(setting)] = value
    alpha, form_reasons, _ = handler(app, "on_settings_input")(REQUEST, "", "default", *values)
    values[SETTING_FIELDS.index("lora_alpha")] = alpha
    form = settings_from(values)

    data = tmp_path / "train.jsonl"
    data.write_text("".join(chat(f"question {i}", f"answer {i}") + "\n" for i in range(30)))
    assert main(["train", "--data", str(data), "--dry-run", "--json", "--workspace", str(tmp_path / "ws"),
                 *flags]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert TrainingConfig.from_dict(cli["config"]) == form
    assert form_reasons == reasons_markdown(cli["reasons"])
    if setting == "lora_r":
        assert (form.lora_r, form.lora_alpha) == (32, 64)  # alpha follows r in both faces
        assert "alpha = 2 x r = 64: follows the r you set" in form_reasons


def test_an_emptied_targets_box_means_all_linear():
    values = [dict(model="bundled:SmolLM2-135M-Instruct", method="lora", lora_r=8, lora_alpha=16, lora_dropout=0.05,
                   target_modules="  ", learning_rate=2e-4, epochs=3, max_steps=-1, batch_size=8,
                   gradient_accumulation=1, max_length=1024, packing=False, processes=0, num_virtual_tokens=20,
                   prompt_init="text")[name]
              for name in SETTING_FIELDS]
    assert settings_from(values).target_modules == "all-linear"


def chat(prompt: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})


def check(tmp_path, text: str, name: str = "train.jsonl", prompt: str = "", completion: str = "", **overrides):
    """The Check button on a file with ``text``, in a fresh app with the default settings (and ``overrides``)."""
    from ui.app import build_app

    app = build_app(tmp_path / "ws")
    *settings, _ = handler(app, "on_prefill")("default", REQUEST)
    settings = [overrides.get(name, value) for name, value in zip(SETTING_FIELDS, settings, strict=True)]
    path = tmp_path / name
    path.write_text(text)
    return handler(app, "on_check")(REQUEST, as_upload(path), None, None, "auto", prompt, completion, "default",
                                    *settings)


def test_a_problem_on_many_lines_is_one_row_with_a_count_and_the_first_lines(tmp_path):
    good = [chat(f"question {i}", f"answer {i}") for i in range(20)]
    empty = [chat(f"unanswered {i}", "") for i in range(12)]
    _, report, _, problems, _, _ = check(tmp_path, "\n".join([*good, *empty, "{not json"]) + "\n")
    assert "**Valid:** 20 of 33 records" in report, report
    by_kind = {row[3]: row for row in problems}
    assert len(problems) == 2, problems
    assert by_kind["empty_turn"][:3] == ["train", "21, 22, 23, 24, 25 and 7 more", 12]
    assert by_kind["empty_turn"][4] == "turn 2 (assistant) is empty"
    assert by_kind["invalid_json"][:3] == ["train", "33", 1]


SNIPS_LINES = [{"text": "play some jazz", "intent": "PlayMusic", "slots": {"genre": "jazz"}},
               {"text": "book a table for two", "intent": "BookRestaurant", "slots": {"party_size_number": "two"}},
               {"text": "will it rain in Oslo", "intent": "GetWeather", "slots": {"city": "Oslo"}}]


def test_a_jsonl_file_maps_its_prompt_and_completion_columns(tmp_path):
    text = "".join(json.dumps(line) + "\n" for line in SNIPS_LINES)
    dataset_id, report, preview, problems, _, _ = check(tmp_path, text, prompt="text", completion="intent")
    assert dataset_id and "**Valid:** 3 of 3 records" in report, (report, problems)
    answers = {example["messages"][-1]["content"] for example in json.loads(preview)}
    assert answers and answers <= {line["intent"] for line in SNIPS_LINES}, answers


def test_several_completion_columns_make_one_json_answer(tmp_path):
    text = "".join(json.dumps(line) + "\n" for line in SNIPS_LINES)
    dataset_id, report, preview, problems, _, _ = check(tmp_path, text, prompt="text", completion=" intent, slots ")
    assert dataset_id and "**Valid:** 3 of 3 records" in report, (report, problems)
    answers = [json.loads(example["messages"][-1]["content"]) for example in json.loads(preview)]
    assert answers and all(a in SNIPS_ANSWERS for a in answers), answers


SNIPS_ANSWERS = [{"intent": line["intent"], "slots": line["slots"]} for line in SNIPS_LINES]


def test_the_check_shows_which_tokens_training_learns_and_warns_of_a_cut_answer(tmp_path):
    """The training preview: the templated text in runs, the answer highlighted as trained, the
    prompt and the template's own tokens not; an answer past max length is flagged with the
    length that would fit."""
    long_answer = " ".join(["word"] * 200)
    text = "\n".join(chat(f"What is {i} plus {i}?", f"It is {2 * i}. {long_answer}") for i in range(20)) + "\n"
    _, report, _, _, _, runs = check(tmp_path, text, max_length=96)
    trained = "".join(t for t, label in runs if label == "trained")
    context = "".join(t for t, label in runs if label is None)
    assert "It is" in trained and "word word" in trained and "It is" not in context
    assert "plus" in context and "plus" not in trained
    assert "<|im_start|>assistant" in context  # the template's own tokens are shown, not trained
    assert "**Training preview:** the loss falls on the last answer" in report
    assert "the answer is cut" in report and "raise max_length to at least" in report, report


def test_the_loss_chart_is_empty_until_a_loss_then_names_both_series_from_its_first_value():
    """Gradio's LinePlot keeps the series of the first value it draws (ui/behaviour_tab.loss_frame): the
    eval loss, logged later, must already be there, as a row with no step and no value."""
    from ui.behaviour_tab import loss_frame

    assert loss_frame([]) is None and loss_frame([{"step": 0, "eta_s": 10}]) is None
    frame = loss_frame([{"step": 1, "loss": 2.5}, {"step": 5, "loss": 1.5, "eval_loss": None}])
    assert list(frame["series"].unique()) == ["train loss", "eval loss"]
    drawn = frame.dropna()
    assert drawn.values.tolist() == [[1, 2.5, "train loss"], [5, 1.5, "train loss"]]
    assert str(frame["step"].dtype) == "Int64"  # the x axis counts steps, not 1.5 steps


def test_the_estimate_follows_every_edit_of_the_settings(tmp_path):
    """A newcomer set epochs to 1 and the estimate still said 114 steps: it was made only at the check."""
    from assistant.example_data import EXAMPLE_TRAINING
    from ui.app import build_app

    app = build_app(tmp_path / "ws")
    *values, _ = handler(app, "on_prefill")("default", REQUEST)
    values = [3 if name == "epochs" else value for name, value in zip(SETTING_FIELDS, values, strict=True)]
    dataset_id, _, _, _, estimate, _ = handler(app, "on_check")(REQUEST, as_upload(EXAMPLE_TRAINING), None, None,
                                                                "auto", "", "", "default", *values)
    steps = int(estimate.split(" steps")[0].rsplit(" ", 1)[-1])
    values[SETTING_FIELDS.index("epochs")] = 1
    _, _, edited = handler(app, "on_settings_input")(REQUEST, dataset_id, "default", *values)
    assert f" {-(-steps // 3)} steps" in edited or f" {steps // 3} steps" in edited, (estimate, edited)


@pytest.mark.slow
def test_compare_methods_from_the_tab_trains_each_method_and_shows_one_table(tmp_path, tiny_model_path):
    """The tab's "Compare methods": the estimate first, then one job per method through the queue, then
    the table with the base, each method and the best; each run's adapter stays a variant."""
    from assistant.runtime.generation import ModelSettings
    from tests.snips import snips_chat_jsonl
    from ui.app import build_app

    app = build_app(tmp_path / "ws", model=ModelSettings(model=str(tiny_model_path), device="cpu"))
    *settings, _ = handler(app, "on_prefill")("default", REQUEST)
    values = dict(zip(SETTING_FIELDS, settings, strict=True)) | {
        "model": str(tiny_model_path), "max_steps": 2, "batch_size": 4, "max_length": 96}
    data = tmp_path / "train.jsonl"
    data.write_text(snips_chat_jsonl("train", limit=40, seed=0))
    dataset_id, *_ = handler(app, "on_check")(REQUEST, as_upload(data), None, None, "auto", "", "", "default",
                                              *values.values())
    shown = list(handler(app, "on_sweep")(REQUEST, dataset_id, ["lora", "ia3"], 1, False, "default",
                                              *values.values()))
    assert shown[0].startswith("**Estimate:** 2 runs on cpu")
    table = shown[-1]
    assert "| base |" in table and "| lora | 0 |" in table and "| ia3 | 0 |" in table, table
    assert "best: " in table
    names = app.tenants.get(None).variants.names("default")
    assert sum(name.endswith(("-lora-s0", "-ia3-s0")) for name in names) == 2, names
