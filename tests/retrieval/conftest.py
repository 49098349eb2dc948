import pytest


@pytest.fixture(scope="session")
def embedder():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole run."""
    from retrieval.embeddings import shared_embedder

    return shared_embedder()


@pytest.fixture
def index(tmp_path):
    from retrieval.index import ChromaSettings, DocumentIndex

    built = DocumentIndex(tmp_path / "index.sqlite", ChromaSettings(path=tmp_path / "chroma"))
    yield built
    built.close()
