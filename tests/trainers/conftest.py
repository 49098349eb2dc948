import pytest

from tests.snips import snips_chat_jsonl


@pytest.fixture(scope="session")
def snips_model_path(tmp_path_factory):
    """A tiny random chat model whose tokenizer has seen the Snips texts and answers."""
    from tests.tiny_model import build_tiny_model

    text = snips_chat_jsonl("train", limit=2100)
    return build_tiny_model(tmp_path_factory.mktemp("snips-model"), extra_text=text, hidden=64, layers=2)


@pytest.fixture
def snips_files(tmp_path):
    """Train and eval chat JSONL files for the Snips task."""
    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text(snips_chat_jsonl("train", limit=600, seed=0))
    evaluation.write_text(snips_chat_jsonl("test", limit=40, seed=0))
    return train, evaluation
