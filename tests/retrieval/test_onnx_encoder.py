"""The ONNX path gives sentence-transformers' vectors, is exported once, and steps aside cleanly."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.embeddings import Embedder, EmbeddingModelError, bundled_model_path
from retrieval.onnx_encoder import OnnxUnavailable, export_folder, load_encoder, read_layout

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ["How do I reset my password?", "Chroma stores the vectors on disk.",
             "The quick brown fox jumps over the lazy dog " * 40, "ok"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(bundled_model_path(), device="cpu")
    return model.encode(SENTENCES, normalize_embeddings=True)


@pytest.mark.parametrize("precision, least_cosine", [("fp32", 0.9999), ("int8", 0.97)])
def test_onnx_vectors_match_sentence_transformers_row_by_row(cache, reference, precision, least_cosine):
    encoder = load_encoder(bundled_model_path(), precision, cache)
    vectors = encoder.encode(SENTENCES, batch_size=3)  # a batch that mixes a long row with short ones
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() >= least_cosine


def test_tokens_are_counted_as_sentence_transformers_counts_them(cache):
    from sentence_transformers import SentenceTransformer

    tokenizer = SentenceTransformer(bundled_model_path(), device="cpu").tokenizer
    expected = [len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in SENTENCES]
    assert load_encoder(bundled_model_path(), "fp32", cache).count_tokens(SENTENCES) == expected
    assert expected[2] > 256  # counting never truncates, even past the model's window


def test_the_export_is_made_once_and_reused(cache):
    layout = read_layout(bundled_model_path())
    load_encoder(bundled_model_path(), "fp32", cache)
    exported = export_folder(layout, cache) / "model-fp32.onnx"
    stamp = exported.stat().st_mtime_ns
    load_encoder(bundled_model_path(), "fp32", cache)
    assert exported.stat().st_mtime_ns == stamp


def test_a_corrupt_cached_export_is_made_again(tmp_path):
    layout = read_layout(bundled_model_path())
    broken = export_folder(layout, tmp_path) / "model-fp32.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not an onnx file")
    encoder = load_encoder(bundled_model_path(), "fp32", tmp_path)
    assert encoder.encode(["still works"]).shape == (1, 384)
    assert broken.stat().st_size > 1_000_000


def _copy_with_pooling(tmp_path, **pooling):
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_path(), folder)
    config = folder / "1_Pooling" / "config.json"
    settings = json.loads(config.read_text())
    settings.update(pooling)
    config.write_text(json.dumps(settings))
    return folder


def test_a_model_with_another_pooling_falls_back_to_sentence_transformers(tmp_path):
    folder = _copy_with_pooling(tmp_path, pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    with pytest.raises(OnnxUnavailable, match="not mean pooling"):
        read_layout(folder)
    embedder = Embedder(str(folder))
    vectors = embedder.encode(SENTENCES[:2])
    assert embedder.backend == "torch" and "mean pooling" in embedder.fallback_reason
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_asking_for_onnx_where_it_cannot_run_is_a_clear_error(tmp_path):
    folder = _copy_with_pooling(tmp_path, pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    with pytest.raises(EmbeddingModelError, match="cannot run .* through ONNX: .*not mean pooling"):
        Embedder(str(folder), backend="onnx").encode(["x"])


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(EmbeddingModelError, match="one of auto, onnx, torch"):
        Embedder(backend="tensorrt")


def test_a_dense_cli_search_imports_neither_torch_nor_sentence_transformers(tmp_path):
    """The reason for the ONNX path: a query in a fresh process stays light."""
    environment = {**os.environ, "TUNEWISE_MODEL_CACHE": str(tmp_path / "cache")}
    document = tmp_path / "notes.md"
    document.write_text("# Passwords\n\nTo reset a password, open Settings and choose Reset.\n")
    ingest = [sys.executable, "-m", "ui.cli", "ingest", "--workspace", str(tmp_path / "ws"), str(document)]
    subprocess.run(ingest, cwd=ROOT, env=environment, check=True, capture_output=True, timeout=300)
    probe = ("import sys, runpy; sys.argv = ['tunewise', 'search', '--workspace', sys.argv[1], '--mode', 'hybrid', "
             "'forgot my password']\ntry:\n    runpy.run_module('ui.cli', run_name='__main__')\nexcept SystemExit:\n"
             "    pass\nprint('heavy:', sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
             "if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "ws")], cwd=ROOT, env=environment,
                           capture_output=True, text=True, timeout=300)
    assert "Settings and choose Reset" in found.stdout, found.stderr
    assert "heavy: []" in found.stdout
