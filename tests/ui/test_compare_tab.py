"""Ten browser sessions chat with variants at once, each keeping its own history."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from tests.ui.serving import launched


@pytest.fixture
def compare_app(tmp_path, monkeypatch, tiny_model_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from assistant.knowledge import KnowledgeBase
    from assistant.runtime import ModelSettings
    from assistant.workspace import Workspace
    from ui.app import build_app

    workspace = Workspace(tmp_path / "ws")
    docs = tmp_path / "hr.md"
    docs.write_text("# Leave\n\nStaff get 25 days of paid leave each year.\n")
    kb = KnowledgeBase(workspace, "default")
    kb.ingest([docs])
    kb.close()
    app = build_app(workspace, model=ModelSettings(model=str(tiny_model_path), device="cpu"))
    with launched(app, concurrency=10) as url:
        yield url


def text_of(content) -> str:
    """Chatbot content comes back as a list of parts in gradio 6."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


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
