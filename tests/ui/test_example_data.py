"""The "Try it with example data" buttons: real documents into real Chroma, real examples into a real report."""

import pytest

from assistant.example_data import EXAMPLE_QUESTIONS
from tests.ui.handlers import REQUEST, handler


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from ui.app import build_app

    return build_app(tmp_path / "ws")


@pytest.mark.timeout(600)
def test_the_example_documents_are_indexed_like_an_upload_and_a_question_waits(app):
    rows, documents, to_delete, question = handler(app, "on_try_documents")("default", REQUEST)
    assert [row[:2] for row in rows] == [["state_of_the_union_2024.md", "added"]] and rows[0][2] > 10, rows
    assert [row[0] for row in documents] == ["state_of_the_union_2024.md"]
    assert [name for _, name in to_delete.choices] == ["state_of_the_union_2024.md"]
    assert question == EXAMPLE_QUESTIONS[0]
    hits = handler(app, "on_search")(EXAMPLE_QUESTIONS[1], 3, "dense", "default", REQUEST)
    assert "1. state_of_the_union_2024.md" in hits and "from $32 to $8" in hits  # found through the embeddings

    again, *_ = handler(app, "on_try_documents")("default", REQUEST)
    assert [row[1] for row in again] == ["unchanged"]


def test_the_example_training_file_is_checked_as_if_uploaded(app):
    *settings, _ = handler(app, "on_prefill")("default", REQUEST)
    train, evaluation, general, fmt, prompt, completion, dataset_id, report, preview, problems, estimate, runs = \
        handler(app, "on_try_examples")(REQUEST, "default", *settings)
    assert train.endswith("snips_train.jsonl") and evaluation.endswith("snips_eval.jsonl") and general is None
    assert (fmt, prompt, completion) == ("auto", "", "")
    assert dataset_id
    assert "**Format:** openai" in report and "**Valid:** 299 of 299 records" in report, report
    assert "**Split:** 299 train, 40 eval" in report
    assert "**Tokens per example:**" in report
    assert '"role": "assistant"' in preview and "intent" in preview
    assert "Estimate (cpu, lora)" in estimate, estimate
    assert any(label == "trained" and '"intent"' in text for text, label in runs)
