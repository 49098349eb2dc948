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
