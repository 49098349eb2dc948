"""Documents go in through the app's upload endpoint and come back through /search."""

import pytest
from gradio_client import Client, handle_file

from tests.paths import RETRIEVAL_CORPORA

CORPORA = sorted(p.name for p in RETRIEVAL_CORPORA.glob("*.md"))


@pytest.mark.slow
def test_the_five_corpora_upload_through_the_app_then_search(running_app, tmp_path):
    _, url, _ = running_app
    bad = tmp_path / "notes.txt"
    bad.write_bytes(bytes(range(256)) * 20)
    client = Client(url, verbose=False)
    files = [handle_file(str(RETRIEVAL_CORPORA / name)) for name in CORPORA] + [handle_file(str(bad))]
    results, documents, _ = client.predict(files, "kb", api_name="/ingest")
    by_file = {row[0]: row for row in results["data"]}
    assert len(CORPORA) == 5
    for name in CORPORA:
        assert by_file[name][1] == "added" and by_file[name][2] > 10, by_file[name]
    assert by_file["notes.txt"][1] == "failed" and "binary" in by_file["notes.txt"][3]
    assert sorted(row[0] for row in documents["data"]) == CORPORA
    files = files[-3:-1]  # re-upload two of them below

    again, _, _ = client.predict(files, "kb", api_name="/ingest")
    assert [row[1] for row in again["data"]] == ["unchanged", "unchanged"]

    hits = client.predict("credit card late fees", 3, "hybrid", "kb", api_name="/search")
    assert hits[0]["source"] == "state_of_the_union.md" and "late fees" in hits[0]["text"]
    assert {"source", "text", "score", "page", "start", "end"} <= set(hits[0])


def test_an_uploaded_document_is_gone_from_the_upload_cache_once_indexed(running_app, tmp_path):
    _, url, _ = running_app
    note = tmp_path / "leave-policy.md"
    note.write_text("# Leave\n\nStaff get 25 days of paid leave each year.\n")
    client = Client(url, verbose=False)
    results, _, _ = client.predict([handle_file(str(note))], "kb", api_name="/ingest")
    assert results["data"][0][1] == "added"
    cache = tmp_path / "gradio-tmp"
    assert not [p for p in cache.rglob("leave-policy.md")], "the upload is still in Gradio's cache"
    hits = client.predict("paid leave", 1, "bm25", "kb", api_name="/search")
    assert "25 days" in hits[0]["text"]  # what was indexed stays searchable


def test_retrieval_is_measured_on_the_users_own_questions_in_every_mode(tmp_path):
    import json

    from tests.ui.handlers import REQUEST, as_upload, handler
    from tests.ui.test_compare_tab import workspace_with_one_document
    from ui.app import build_app

    app = build_app(workspace_with_one_document(tmp_path))
    text = "# Leave\n\nStaff get 25 days of paid leave each year.\n"
    start = text.index("Staff")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "How many days of paid leave do staff get?", "source": "hr.md",
                                     "spans": [[start, len(text) - 1]], "answer": "25 days"}) + "\n")
    table = handler(app, "on_measure")(as_upload(questions), "default", REQUEST)
    assert list(table["mode"]) == ["dense", "bm25", "hybrid"]
    bm25 = table.set_index("mode").loc["bm25"]
    assert bm25["recall@1"] == 1.0 and bm25["answer_recall@1"] == 1.0 and bm25["span_recall@5"] == 1.0
    assert 0 < bm25["span_precision@5"] <= 1.0


def test_questions_made_from_the_documents_are_reviewed_saved_and_measured(tmp_path, tiny_model_path):
    """Make -> edit, untick, delete rows -> save -> the file the evaluator reads -> Measure without a file."""
    import gradio as gr

    from assistant.runtime.generation import ModelSettings
    from assistant.services.knowledge import KnowledgeBase
    from assistant.services.workspace import Workspace
    from retrieval.evaluate import read_questions
    from tests.assistant.test_eval_questions import EXPENSES, LEAVE
    from tests.ui.handlers import REQUEST, handler
    from ui.app import build_app

    workspace = Workspace(tmp_path / "ws")
    for name, text in (("leave.md", LEAVE), ("expenses.md", EXPENSES)):
        (tmp_path / name).write_text(text)
    kb = KnowledgeBase(workspace, "default")
    kb.ingest([tmp_path / "leave.md", tmp_path / "expenses.md"])
    kb.close()
    app = build_app(workspace, model=ModelSettings(model=str(tiny_model_path), device="cpu"))

    with pytest.raises(gr.Error, match="Upload a questions file, or make questions from your documents"):
        handler(app, "on_measure")(None, "default", REQUEST)

    rows, note = handler(app, "on_make_questions")(3, "default", REQUEST)
    assert len(rows) == 3 and f"of {len(rows)} passages gave a usable question" in note
    assert {row[2] for row in rows} == {"leave.md", "expenses.md"}
    # The person writes the questions the random model could not, unticks one and deletes another.
    by_source = {row[2]: row for row in rows}
    leave, expenses = by_source["leave.md"], by_source["expenses.md"]
    reviewed = [[True, "How many days of paid leave do staff get each year?", *leave[2:]],
                [False, "Where is travel booked?", *expenses[2:]]]
    saved_rows, note = handler(app, "on_save_questions")(reviewed, "default", REQUEST)
    assert note == "Saved 1 question as this project's questions."
    assert saved_rows == [[True, "How many days of paid leave do staff get each year?", *leave[2:]]]

    golds = read_questions(str(workspace.project("default").path / "eval-questions.jsonl"))
    start, end = (int(n) for n in leave[3].split("-"))
    assert [(g.question, g.source, g.spans) for g in golds] == [
        ("How many days of paid leave do staff get each year?", "leave.md", ((start, end),))]

    table = handler(app, "on_measure")(None, "default", REQUEST)  # no file: the saved questions
    assert list(table["mode"]) == ["dense", "bm25", "hybrid"] and set(table["questions"]) == {1}
    assert table.set_index("mode").loc["bm25"]["recall@5"] == 1.0

    view = handler(app, "open_project")("default", REQUEST)  # the saved questions are back when the tab loads
    assert saved_rows in view and "1 question saved: Measure uses them when no file is uploaded." in view

    (workspace.project("default").path / "eval-questions.jsonl").write_text("{not json\n")  # edited by hand
    view = handler(app, "open_project")("default", REQUEST)
    assert any(isinstance(v, str) and v.startswith("The saved questions cannot be read: ") and "line 1" in v
               for v in view)


# --- Ask answers as "base + retrieval", on the one path Compare, `tunewise chat --retrieval` and /v1 use ---

ASK_QUESTION = "How many days of paid leave do staff get each year?"


def save_random_adapter(model_path, folder) -> None:
    """A LoRA adapter of the tiny model with random weights, saved as a training job leaves one
    (weights, config, training.json naming the base): it answers unlike the base, which is all a test
    of who answers needs, in a second instead of a training run."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({"config": {"model": str(model_path), "method": "lora"}}))


def test_ask_answers_as_base_plus_retrieval_whatever_adapter_compare_attached(tmp_path, tiny_model_path,
                                                                                 monkeypatch):
    """Compare attaches the project's adapters to the one shared model (the first becomes PEFT's active
    adapter); Ask still answers from the frozen base with the documents, word for word what Compare's
    "base + retrieval" column says, and not what the adapter says."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from assistant.runtime.generation import ModelSettings
    from tests.ui.handlers import REQUEST, handler
    from tests.ui.test_compare_tab import workspace_with_one_document
    from ui.app import build_app

    workspace = workspace_with_one_document(tmp_path)
    save_random_adapter(tiny_model_path, workspace.project("default").path / "adapters" / "v1")
    app = build_app(workspace, model=ModelSettings(model=str(tiny_model_path), device="cpu"))

    def ask() -> tuple[str, str]:
        return list(handler(app, "on_ask")(ASK_QUESTION, "default", REQUEST))[-1]

    before, _ = ask()  # nothing attached yet
    steps = list(handler(app, "on_prompt")(ASK_QUESTION, ["base + retrieval", "v1 + retrieval"],
                                           [[] for _ in range(4)], "default", REQUEST))
    _, _, base_column, adapter_column, *_ = steps[-1]
    base, tuned = (column[-1]["content"].split("\n\nSources:\n")[0] for column in (base_column, adapter_column))
    assert base != tuned  # the adapter really answers otherwise: the test can tell who answered

    answer, sources = ask()
    assert answer == before, (answer, before)  # the adapter Compare attached does not answer for Ask
    assert answer == base, (answer, base)  # Ask says what Compare's "base + retrieval" column says
    assert "hr.md" in sources and "[1]" in sources


def test_ask_builds_the_prompt_that_chat_with_retrieval_builds(tmp_path, tiny_model_path, monkeypatch):
    """One prompt builder: Ask shows the model what VariantModel.stream(Variant(None, ("retrieval",)))
    shows it (tunewise chat --retrieval, /v1): for a small model, the one sentence that answers, not
    the whole chunk."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    from assistant.runtime.generation import GenerationSettings, ModelSettings, load_model
    from assistant.runtime.variants import Variant, VariantModel
    from assistant.services.knowledge import KnowledgeBase
    from assistant.services.workspace import Workspace
    from tests.ui.handlers import REQUEST, handler
    from ui.app import build_app

    workspace = Workspace(tmp_path / "ws")
    document = tmp_path / "hr.md"
    document.write_text("# Leave\n\nStaff get 25 days of paid leave each year. Part-time staff get leave in "
                        "proportion to their hours. Unused days carry over until the end of March.\n")
    kb = KnowledgeBase(workspace, "default")
    kb.ingest([document])
    hits = kb.search(ASK_QUESTION, 5, with_similarity=True)
    kb.close()

    prompts = []
    template = PreTrainedTokenizerBase.apply_chat_template

    def recorded(self, conversation, *args, **kwargs):
        prompts.append(conversation)
        return template(self, conversation, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "apply_chat_template", recorded)
    app = build_app(workspace, model=ModelSettings(model=str(tiny_model_path), device="cpu"))
    list(handler(app, "on_ask")(ASK_QUESTION, "default", REQUEST))
    asked = prompts[-1]

    model = VariantModel(load_model(ModelSettings(model=str(tiny_model_path), device="cpu")))
    list(model.stream(Variant(None, ("retrieval",)), [{"role": "user", "content": ASK_QUESTION}],
                      GenerationSettings(max_new_tokens=4), lambda question: hits))
    assert asked == prompts[-1]
    assert "25 days" in asked[-1]["content"] and "carry over" not in asked[-1]["content"]


def test_an_ask_button_asks_as_enter_does(tmp_path, monkeypatch):
    """The Ask box has a button as well as Enter: both trigger the one handler, with the same inputs
    and outputs, so the button answers exactly as Enter does."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from tests.ui.test_compare_tab import workspace_with_one_document
    from ui.app import build_app

    app = build_app(workspace_with_one_document(tmp_path))
    [ask] = [fn for fn in app.fns.values() if fn.name == "on_ask"]
    triggers = {(app.blocks[block].elem_id, event) for block, event in ask.targets}
    assert triggers == {("kb-ask", "submit"), ("kb-ask-button", "click")}
    assert next(app.blocks[block] for block, event in ask.targets if event == "click").value == "Ask"
    assert [c.elem_id for c in ask.inputs][0] == "kb-ask"
    assert [c.elem_id for c in ask.outputs] == ["kb-answer", "kb-sources"]
