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
