"""The training preview shows exactly what the job trains on: every assistant turn with a marked
template, the last answer without one, and what max_length cuts."""

import pytest

from trainers.preview import has_generation_markers, preview_example

CONVERSATION = [{"role": "user", "content": "book a table"}, {"role": "assistant", "content": "For how many?"},
                {"role": "user", "content": "two"}, {"role": "assistant", "content": "Booked for two."}]


@pytest.fixture(scope="module")
def marked(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_path))


@pytest.fixture(scope="module")
def unmarked(tiny_model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_path))
    tokenizer.chat_template = (tokenizer.chat_template.replace("{% generation %}", "")
                               .replace("{% endgeneration %}", ""))
    return tokenizer


def trained_text(preview) -> str:
    return "".join(p.text for p in preview.pieces if p.trained)


def test_a_marked_template_trains_every_assistant_turn_and_nothing_else(marked):
    assert has_generation_markers(marked)
    preview = preview_example(marked, CONVERSATION, max_length=512)
    assert preview.masking == "assistant turns"
    # Both answers with their end of turn (so the model learns to stop); no user turn, no template text.
    assert trained_text(preview) == "For how many?<|im_end|>Booked for two.<|im_end|>"
    assert preview.marked_text().count("[[") == 2 and not preview.warnings


def test_without_markers_only_the_last_answer_is_trained_and_the_preview_says_so(unmarked):
    assert not has_generation_markers(unmarked)
    preview = preview_example(unmarked, CONVERSATION, max_length=512)
    assert preview.masking == "last answer"
    assert "Booked for two." in trained_text(preview) and "For how many?" not in trained_text(preview)
    assert any("no {% generation %} markers" in w for w in preview.warnings)
    assert sum(p.tokens for p in preview.pieces) == preview.tokens


def test_max_length_cuts_are_reported_with_the_length_that_fits(unmarked):
    whole = preview_example(unmarked, CONVERSATION[:2], max_length=512)
    cut = preview_example(unmarked, CONVERSATION[:2], max_length=whole.tokens - 2)
    assert cut.trained_tokens == whole.trained_tokens - 2
    assert any(f"raise max_length to at least {whole.tokens}" in w for w in cut.warnings)
    gone = preview_example(unmarked, CONVERSATION[:2], max_length=3)
    assert gone.trained_tokens == 0 and any("drops this example" in w for w in gone.warnings)


def test_tunewise_validate_preview_prints_the_trained_tokens(tmp_path, tiny_model_path, capsys):
    import json

    from ui.cli import main

    examples = tmp_path / "chats.jsonl"
    examples.write_text(json.dumps({"messages": CONVERSATION}) + "\n")
    assert main(["validate", str(examples), "--tokenizer", str(tiny_model_path), "--preview", "1"]) == 0
    out = capsys.readouterr().out
    assert "chat template: marks assistant turns" in out
    assert "[[For how many?<|im_end|>]]" in out and "[[Booked for two.<|im_end|>]]" in out
