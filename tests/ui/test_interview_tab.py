"""The plan card follows the project without a page reload (issue 28, item 5d), and names the model
the Behaviour form trains (item 5b).

The card was drawn when the page loaded and after the tab's own events only, so an evaluation in the
Compare tab, a gap check, or `tunewise eval` in a terminal showed on it after a reload. The tab now
keeps the version of the record it drew (Workspace.stamp) and a timer, and the tab's select event,
draw it again when the record changed. Driven here through the app's own handlers, as Gradio calls them.
"""

from assistant.services.workspace import Workspace
from tests.ui.handlers import REQUEST, handler
from ui.behaviour_tab import SETTING_FIELDS

INTERVIEW = ["Extract intents from requests as JSON", "both", "yes", "a few hundred", "yes", "rarely",
             "no GPU", "no preference", "no", "one"]
FIELDS = 10
CARD, STAMP = 2 + FIELDS, 2 + FIELDS + 2
"""Where the plan card and the stamp sit in the tab's outputs (chat, message, profile..., card, notice, stamp)."""


def report(cases: int, adapter_valid: float, eval_id: str):
    from assistant.services.evaluation import EvalReport, VariantResult

    shares = {"exact_match": 0.0, "contains_reference": 0.0, "field_accuracy": 0.0}
    return EvalReport(eval_id, "held-out.jsonl", cases, [
        VariantResult("base", shares | {"examples": cases, "json_valid": 0.0}),
        VariantResult("snips", shares | {"examples": cases, "json_valid": adapter_valid})])


def interviewed(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from ui.app import build_app

    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("story")
    app = build_app(workspace, project="story")
    for answer in INTERVIEW:
        shown = handler(app, "turn")(answer, "story", REQUEST)
    return app, workspace, shown


def test_the_card_follows_evaluations_and_gap_checks_without_a_reload(tmp_path, monkeypatch):
    from assistant.services.advisor import Advisor
    from assistant.services.evaluation import record_outcome

    app, workspace, shown = interviewed(tmp_path, monkeypatch)
    refresh = handler(app, "refresh_plan_card")
    card, stamp = shown[CARD], shown[STAMP]
    assert "Plan: retrieval (RAG) + LoRA" in card and "Measured" not in card
    # Nothing changed: nothing is drawn again (each output skipped).
    assert refresh("story", stamp, REQUEST) == [{"__type__": "update"}] * (1 + FIELDS + 1)

    # An evaluation finishes (the Compare tab, or `tunewise eval`, records it in the project).
    record_outcome(workspace, "story", report(40, 0.97, "20250601-101500-aaaa"))
    stamp, *profile, card = refresh("story", stamp, REQUEST)
    assert "Strongest evidence (n=40, 2025-06-01 10:15" in card and "held on JSON validity" in card
    # A smaller run later keeps the 40-case verdict first and shows itself beside it.
    record_outcome(workspace, "story", report(10, 0.9, "20250602-093000-bbbb"))
    stamp, *profile, card = refresh("story", stamp, REQUEST)
    assert "Strongest evidence (n=40" in card and "**Latest run** (n=10, 2025-06-02 09:30" in card

    # A gap check moves the gap (gap_check edits the profile through the advisor): plan and profile follow.
    Advisor(workspace).edit("story", {"gap": "behaviour"})
    stamp, *profile, card = refresh("story", stamp, REQUEST)
    assert "Plan: LoRA" in card and "retrieval" not in card.split("\n")[0]
    assert profile[1] == "behaviour"
    assert refresh("story", stamp, REQUEST)[0] == {"__type__": "update"}


def test_a_timer_and_opening_the_tab_redraw_the_card(tmp_path, monkeypatch):
    import gradio as gr

    app, _, _ = interviewed(tmp_path, monkeypatch)
    card = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "plan-card")
    triggers = set()
    for fn in app.fns.values():
        if fn.name == "refresh_plan_card":
            assert card in fn.outputs
            triggers |= {(type(app.blocks[block]).__name__, event) for block, event in fn.targets}
    assert {("Timer", "tick"), ("Tab", "select")} <= triggers
    timer = next(b for b in app.blocks.values() if isinstance(b, gr.Timer))
    assert timer.value <= 5  # seconds between checks


def test_the_card_and_the_behaviour_form_name_the_same_model(tmp_path, monkeypatch):
    app, _, shown = interviewed(tmp_path, monkeypatch)
    form = handler(app, "on_prefill")("story", REQUEST)
    model = form[SETTING_FIELDS.index("model")]
    assert f"**Trained here:** `{model}`" in shown[CARD]
    assert "Qwen2.5-0.5B" not in shown[CARD]
