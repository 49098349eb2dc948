"""Uploaded content is data, never markup or code."""

import pytest

from assistant.runtime.answering import sources_for
from assistant.runtime.generation import ModelSettings, ModelUnavailableError, load_model
from retrieval.ingest import safe_source_name
from retrieval.search import ChunkHit
from ui.knowledge_tab import hits_html, sources_html

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_document_snippets_and_names_are_escaped():
    hit = ChunkHit("c", "d", f"{EVIL}.md", "", 1, EVIL, 0, 10, f"fees {EVIL}", 1.0, 0.9)
    for rendered in (hits_html([hit], "fees"), sources_html(sources_for([hit]))):
        assert "<script>" not in rendered and "<img" not in rendered
        assert "&lt;script&gt;" in rendered


@pytest.mark.parametrize("name, safe", [
    ("../../etc/passwd", "etc/passwd"), ("/abs/path/file.md", "abs/path/file.md"),
    ("C:\\Users\\me\\doc.md", "C_/Users/me/doc.md"), ("a/./b/../c.txt", "a/b/c.txt"),
    ("bad\x00name.md", "bad_name.md"), ("", "unnamed"),
])
def test_upload_names_cannot_climb_out(name, safe):
    assert safe_source_name(name) == safe
    assert ".." not in safe_source_name(name).split("/")


def test_models_load_from_safetensors_only(tmp_path, tiny_model_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled-model"
    shutil.copytree(tiny_model_path, pickled)
    weights = load_file(pickled / "model.safetensors")
    (pickled / "model.safetensors").unlink()
    torch.save(weights, pickled / "pytorch_model.bin")  # a pickle: loading it could run code
    with pytest.raises(ModelUnavailableError):
        load_model(ModelSettings(model=str(pickled), device="cpu"))
    assert ModelSettings().trust_remote_code is False
