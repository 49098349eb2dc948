"""Ten browser sessions chat with variants at once, each keeping its own history."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from tests.ui.serving import launched


def workspace_with_one_document(tmp_path):
    """A workspace whose default project has one short HR document indexed."""
    from assistant.services.knowledge import KnowledgeBase
    from assistant.services.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    docs = tmp_path / "hr.md"
    docs.write_text("# Leave\n\nStaff get 25 days of paid leave each year.\n")
    kb = KnowledgeBase(workspace, "default")
    kb.ingest([docs])
    kb.close()
    return workspace


@pytest.fixture
def compare_app(tmp_path, monkeypatch, tiny_model_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from assistant.runtime.generation import ModelSettings
    from ui.app import build_app

    workspace = workspace_with_one_document(tmp_path)
    app = build_app(workspace, model=ModelSettings(model=str(tiny_model_path), device="cpu"))
    with launched(app, concurrency=10) as url:
        yield url


def text_of(content) -> str:
    """Chatbot content comes back as a list of parts in gradio 6."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about 110 s on an idle 2-core machine
def test_ten_concurrent_sessions_keep_their_own_histories(compare_app):
    variants = ["base", "base + retrieval"]

    def converse(i: int):
        client = Client(compare_app, verbose=False)
        first = client.predict(f"question {i} about leave", variants, "default", api_name="/compare")
        second = client.predict(f"follow-up {i}", variants, "default", api_name="/compare")
        return i, first, second

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(converse, range(10)))
    for i, _, second in results:
        _, base_column, retrieval_column, *_ = second
        users = [text_of(m["content"]) for m in base_column if m["role"] == "user"]
        assert users == [f"question {i} about leave", f"follow-up {i}"], users
        assert len(retrieval_column) == 4


# --- handlers called directly, as Gradio would ---------------------------------------------------

PAIRS_CASES = {
    "adapters and retrieval": ["base", "base + retrieval", "v1", "v1 + retrieval", "v2"],
    "one adapter": ["base", "v1"],
    "one adapter with retrieval": ["v1", "v1 + retrieval", "base + retrieval"],
}


@pytest.mark.parametrize("names", PAIRS_CASES.values(), ids=PAIRS_CASES.keys())
def test_blind_pairs_are_drawn_between_different_cores(names):
    import random

    from ui.compare_tab import informative_pair

    rng = random.Random(0)
    drawn = {informative_pair(names, rng) for _ in range(200)}
    assert all(a.partition(" + ")[0] != b.partition(" + ")[0] for a, b in drawn), drawn
    assert any(a.partition(" + ")[0] == "base" for a, _ in drawn) and any(b.partition(" + ")[0] == "base"
                                                                          for _, b in drawn)  # both sides


def test_with_one_core_only_retrieval_on_and_off_are_drawn():
    import random

    from ui.compare_tab import informative_pair

    assert set(informative_pair(["base", "base + retrieval"], random.Random(1))) == {"base", "base + retrieval"}


PRESELECT_CASES = [
    # names, adapters newest first, current selection, names of the last load, expected
    (["base", "v1", "v2"], ["v2", "v1"], [], [], ["base", "v2"]),  # first load: the newest adapter
    (["base", "v1", "v2"], ["v2", "v1"], ["v1", "v2"], ["base", "v1", "v2"], ["v1", "v2"]),  # the person's choice
    (["base", "v1", "v2", "v3"], ["v3", "v2", "v1"], ["v1", "v2"], ["base", "v1", "v2"], ["base", "v3"]),  # trained
    (["base", "base + retrieval"], [], None, None, ["base", "base + retrieval"]),
    (["base", "v1"], ["v1"], ["gone", "v1"], ["base", "v1"], ["base", "v1"]),
]


@pytest.mark.parametrize(("names", "adapters", "current", "known", "expected"), PRESELECT_CASES)
def test_the_variants_shown_side_by_side(names, adapters, current, known, expected):
    from ui.compare_tab import preselect

    assert preselect(names, adapters, current, known) == expected


@pytest.fixture
def compare_app_offline(tmp_path, monkeypatch, tiny_model_path):
    """The app over a project with one document and the tiny model, not launched."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from assistant.runtime.generation import GenerationSettings, ModelSettings
    from ui import compare_tab
    from ui.app import build_app

    monkeypatch.setattr(compare_tab, "GENERATION", GenerationSettings(max_new_tokens=24))
    workspace = workspace_with_one_document(tmp_path)
    return build_app(workspace, model=ModelSettings(model=str(tiny_model_path), device="cpu")), workspace


def call(app, name, *args):
    from tests.ui.handlers import handler

    return handler(app, name)(*args)


def test_identical_answers_are_recorded_as_a_tie_without_a_vote(compare_app_offline):
    from tests.ui.handlers import REQUEST

    app, workspace = compare_app_offline
    # Nothing in the document is near this prompt, so "base + retrieval" gets the same prompt as "base".
    pair, answer_a, answer_b, reveal, board = call(app, "on_blind", "zqxj vwkp", ["base", "base + retrieval"],
                                                   "default", REQUEST)
    assert answer_a == answer_b
    assert pair == [] and "**tie** without a vote" in reveal, reveal
    assert sorted(row[0] for row in board) == ["base", "base + retrieval"]
    assert all(row[5] == 1 and row[6] == 1 for row in board), board  # one tie, one game each
    # One game says nothing about the interval (it used to read "1000-1000").
    assert all(row[2] == "needs more votes (1 of 5)" for row in board), board
    from assistant.services.arena import VoteStore

    store = VoteStore(workspace.project("default").path / "tunewise.sqlite")
    assert [v.outcome for v in store.votes()] == ["tie"]
    store.close()


def test_the_variants_load_with_the_adapters_another_base_cannot_use(compare_app_offline):
    import json

    from tests.ui.handlers import REQUEST

    app, workspace = compare_app_offline
    foreign = workspace.project("default").path / "adapters" / "big-v1"
    foreign.mkdir(parents=True)
    (foreign / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-7B"}))
    (foreign / "training.json").write_text(json.dumps({"config": {"model": "Qwen/Qwen2.5-7B"}}))
    chosen, checks, board, unavailable, known = call(app, "on_load", "default", None, None, None, REQUEST)
    assert chosen.value == ["base", "base + retrieval"] and known == ["base", "base + retrieval"]
    assert checks.value == ["base", "base + retrieval"] and board == []
    assert "**big-v1** (trained on Qwen/Qwen2.5-7B, not on the loaded" in unavailable, unavailable


def test_the_columns_answer_together_and_each_is_timed_on_its_own(compare_app_offline):
    from tests.ui.handlers import REQUEST

    app, _ = compare_app_offline
    steps = list(call(app, "on_prompt", "How many days of leave?", ["base", "base + retrieval"],
                      [[] for _ in range(4)], "default", REQUEST))
    growing = [step for step in steps[1:-1]
               if step[2][-1]["role"] == "assistant" and step[3][-1]["role"] == "assistant"]
    assert growing, "both columns should grow in the same updates"
    assert not any("Waiting" in str(step) for step in steps)
    histories, prompt, first, second, _, _, stats = steps[-1]
    assert prompt == "" and histories[0] == first and histories[1] == second
    assert [m["role"] for m in second] == ["user", "assistant"]
    assert "Sources:" in second[-1]["content"]  # the retrieval column cites the document
    assert stats.count("first token") == 2 and stats.count("s in all") == 2, stats


def test_an_evaluation_says_how_long_it_will_take_first(compare_app_offline, tmp_path):
    from assistant.example_data import EXAMPLE_EVAL
    from tests.ui.handlers import REQUEST, as_upload
    from ui.compare_tab import EVAL_COLUMNS

    app, _ = compare_app_offline
    variants = ["base", "base + retrieval"]
    uploaded = as_upload(EXAMPLE_EVAL)
    before = call(app, "on_estimate", uploaded, 3, variants, "default", REQUEST)
    assert before.startswith("**Data:** snips_eval.jsonl, 3 cases.\n\n**Estimate:** about 3 cases x 2 variants = "
                             "6 answers; the time per answer is measured")
    steps = list(call(app, "on_run", uploaded, 3, variants, "default", False, REQUEST))
    notes = [step[2] for step in steps]
    assert notes[0] == "Measuring one answer to estimate the time..."
    assert notes[1].startswith("**Data:** snips_eval.jsonl, 3 cases.\n\n**Estimate:** about 3 cases x 2 variants = "
                               "6 answers ≈ ") and "Running" in notes[1]
    table, chart, final = steps[-1]
    assert list(table.columns) == EVAL_COLUMNS and list(table["variant"]) == variants
    assert all(len(str(v).split(".")[-1]) <= 3 for v in table["latency_p50_s"])  # rounded
    assert "report.json" in final and "It took" in final
    after = call(app, "on_estimate", uploaded, 3, variants, "default", REQUEST)
    assert "≈" in after and "the last evaluation on this model" in after


def test_the_judge_is_checked_against_the_votes_and_shown_beside_the_leaderboard(compare_app_offline):
    from assistant.services.arena import Vote, VoteStore
    from tests.ui.handlers import REQUEST

    app, workspace = compare_app_offline
    store = VoteStore(workspace.project("default").path / "tunewise.sqlite")
    store.add(Vote("base", "base + retrieval", "b", "How many days of leave?", "no idea", "25 days [1]"))
    store.add(Vote("base", "base + retrieval", "tie", "Hello", "hi", "hi"))
    store.close()
    shown = call(app, "on_judge", "the loaded model", "default", REQUEST, lambda *a, **k: None)
    assert "agrees with your blind votes on" in shown and "of 2 pairs" in shown and "kappa" in shown
    assert call(app, "judge_on_load", "default", REQUEST) == shown  # saved, and shown again on load


def test_the_scores_chart_has_one_bar_per_metric_and_variant_grouped_by_metric():
    """Gradio's BarPlot stacks bars that share an x, so each share gets an x of its own, and its name
    sorts a metric's bars together; a metric that does not apply to a variant has no bar."""
    from types import SimpleNamespace

    from ui.compare_tab import scores_frame

    shares = {"exact_match": 0.5, "contains_reference": 1.0, "json_valid": 1.0, "field_accuracy": 0.75}
    results = [SimpleNamespace(variant="base", metrics=shares | {"citation_rate": None, "latency_p50_s": 3.2}),
               SimpleNamespace(variant="base + retrieval", metrics=shares | {"citation_rate": 0.25})]
    frame = scores_frame(results)
    assert len(frame) == 9 and frame["bar"].is_unique
    assert frame["score"].between(0, 1).all()  # latency is no share
    assert set(frame[frame["metric"] == "citation_rate"]["variant"]) == {"base + retrieval"}
    metrics = [bar.split(" · ")[0] for bar in sorted(frame["bar"])]
    assert metrics == sorted(metrics)  # sorted by name, a metric's bars are side by side


def test_a_blind_round_draws_only_from_the_selected_variants(compare_app_offline, monkeypatch):
    """Regression: a round drew "snips + retrieval", which was not selected."""
    from assistant.services.project_variants import ProjectVariants
    from tests.ui.handlers import REQUEST
    from ui import compare_tab

    app, _ = compare_app_offline
    names = ProjectVariants.names
    monkeypatch.setattr(ProjectVariants, "names", lambda self, project: [*names(self, project), "snips",
                                                                         "snips + retrieval"])
    pools = []

    def spy(pool, rng):
        pools.append(list(pool))
        return compare_tab.draw_pair(pool, rng)

    monkeypatch.setattr(compare_tab, "informative_pair", spy)
    call(app, "on_blind", "zqxj vwkp", ["base", "base + retrieval"], "default", REQUEST)
    assert pools == [["base", "base + retrieval"]]


BLIND_REFUSALS = {
    "one variant chosen": (["base"], "needs at least two"),
    "nothing chosen": ([], "needs at least two"),
    "a variant the project lacks": (["base", "snips + retrieval"],
                                    "Not among this project's variants (base, base + retrieval): snips + retrieval"),
}


@pytest.mark.parametrize(("selection", "message"), BLIND_REFUSALS.values(), ids=BLIND_REFUSALS.keys())
def test_a_blind_round_refuses_a_selection_it_cannot_draw_from(compare_app_offline, selection, message):
    import gradio as gr

    from tests.ui.handlers import REQUEST

    app, _ = compare_app_offline
    with pytest.raises(gr.Error) as refused:
        call(app, "on_blind", "a prompt", selection, "default", REQUEST)
    assert message in refused.value.message
    assert refused.value.print_exception is False  # a message on the page, no traceback in the log


def test_without_a_file_and_without_a_held_out_split_the_evaluation_says_what_to_do(compare_app_offline):
    """Regression: Run without a file gave a red "Error" and two tracebacks in the server's log."""
    import gradio as gr

    from tests.ui.handlers import REQUEST

    app, _ = compare_app_offline
    for handler_name, args in (("on_run", (None, 3, ["base"], "default", False, REQUEST)),
                               ("on_gap", (None, 3, "default", REQUEST, lambda *a, **k: None))):
        with pytest.raises(gr.Error, match="no held-out split yet") as refused:
            result = call(app, handler_name, *args)
            list(result) if handler_name == "on_run" else result
        assert refused.value.print_exception is False, handler_name
        assert "Behaviour tab" in refused.value.message
    estimate = call(app, "on_estimate", None, 3, ["base"], "default", REQUEST)
    assert estimate.startswith("**Cannot read the examples:** Project 'default' has no held-out split yet"), estimate


def test_without_a_file_the_evaluation_runs_the_latest_prepared_held_out_split(compare_app_offline):
    from assistant.example_data import EXAMPLE_EVAL
    from assistant.services.behaviour import Behaviour
    from tests.ui.handlers import REQUEST

    app, workspace = compare_app_offline
    text = EXAMPLE_EVAL.read_text()
    prepared = Behaviour(workspace, "default").prepare("train.jsonl", text, "eval.jsonl", text)
    described = f"held-out split of {prepared.dataset_id}, 2 cases (of {prepared.eval_count})"
    estimate = call(app, "on_estimate", None, 2, ["base"], "default", REQUEST)
    assert estimate.startswith(f"**Data:** {described}.\n\n**Estimate:** about 2 cases x 1 variants"), estimate
    *_, (table, _, final) = call(app, "on_run", None, 2, ["base"], "default", False, REQUEST)
    assert list(table["variant"]) == ["base"] and f"**Data:** {described}." in final, final
    gap = call(app, "on_gap", None, 1, "default", REQUEST, lambda *a, **k: None)
    assert gap.startswith(f"**Gap check (held-out split of {prepared.dataset_id}, 1 cases (of "), gap
    assert "few-shot prompting gives JSON validity" in gap  # the prepared examples are measured too


def test_prepared_examples_give_a_few_shot_variant_that_answers_beside_the_base(compare_app_offline):
    from assistant.example_data import EXAMPLE_EVAL
    from assistant.services.behaviour import Behaviour
    from tests.ui.handlers import REQUEST

    app, workspace = compare_app_offline
    text = EXAMPLE_EVAL.read_text()
    Behaviour(workspace, "default").prepare("train.jsonl", text, "eval.jsonl", text)
    names = app.tenants.get(None).variants.names("default")
    assert "base + few-shot" in names
    question = "Play the new album by Daft Punk"
    *_, (_, _, base, few_shot, *_, notes) = call(app, "on_prompt", question, ["base", "base + few-shot"], [[]] * 4,
                                                 "default", REQUEST)
    assert "few-shot examples shown: #" in few_shot[-1]["content"]
    assert "few-shot examples shown" not in base[-1]["content"]
    assert "**base + few-shot**" in notes
