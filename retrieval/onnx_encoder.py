"""A sentence-transformers model run through ONNX Runtime, exported once and cached.

Why: importing sentence-transformers costs 8-12 s on a 2-core machine (it pulls in torch,
scikit-learn, PEFT and the trainer), which was the whole wait of a dense ``tunewise search``.
ONNX Runtime with the ``tokenizers`` library imports in about 0.4 s and encodes as fast as torch in
fp32, or about 1.35x faster with int8 weights (bench/ingest.py). Torch and transformers are needed
once, to export; after that a query never imports them.

Only the common shape is exported: a Transformer module, mean pooling and optional normalisation
(what all-MiniLM-L6-v2 and most sentence-transformers models are). Anything else, or any failure
to export, is reported as ``OnnxUnavailable`` and the caller falls back to sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from tunewise.errors import InputError, TunewiseError

EXPORT_VERSION = "1"
"""Bump when the export changes, so old cached files are not reused."""

PRECISIONS = ("fp32", "int8")
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CACHE_ENV = "TUNEWISE_MODEL_CACHE"


class OnnxUnavailable(TunewiseError):
    """This model cannot run through ONNX here; the message says why (the caller falls back)."""


@dataclass(frozen=True)
class SentenceModelLayout:
    """What the ONNX path needs to know about a sentence-transformers folder."""

    folder: Path
    weights: Path
    max_seq_length: int
    normalize: bool


def read_layout(folder: str | Path) -> SentenceModelLayout:
    """The folder's modules, checked for the transformer + mean pooling shape this path supports."""
    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError) as error:
        raise OnnxUnavailable(f"{folder} has no readable modules.json") from error
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise OnnxUnavailable(f"modules {kinds} are not Transformer, Pooling[, Normalize]")
    if modules[0].get("path", "") not in ("", "."):
        raise OnnxUnavailable("the transformer lives in a sub-folder")
    pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise OnnxUnavailable(f"pooling {modes} is not mean pooling")
    if not (folder / "tokenizer.json").is_file():
        raise OnnxUnavailable("no fast tokenizer (tokenizer.json)")
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None:
        raise OnnxUnavailable("no model.safetensors or pytorch_model.bin")
    try:
        max_length = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        max_length = 512
    return SentenceModelLayout(folder, weights, max_length, normalize="Normalize" in kinds)


def default_cache_dir() -> Path:
    """Beside the converted chat models: $TUNEWISE_MODEL_CACHE, else ~/.cache/tunewise/models."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunewise" / "models"


def export_folder(layout: SentenceModelLayout, cache_dir: Path) -> Path:
    """Where this model's export lives: keyed by its folder and its weights' size and time."""
    stat = layout.weights.stat()
    key = f"{layout.folder.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{EXPORT_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / "onnx-embeddings" / f"{layout.folder.name}-{digest}"


def onnx_file(layout: SentenceModelLayout, precision: str, cache_dir: Path | None = None) -> Path:
    """The cached ONNX file for ``precision``, exporting (and quantising) it the first time."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    folder = export_folder(layout, cache_dir or default_cache_dir())
    target = folder / f"model-{precision}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed: two processes exporting at once both succeed,
    # and a reader never sees half a file.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
        fp32 = folder / "model-fp32.onnx"
        if not fp32.is_file():
            _export_fp32(layout, Path(scratch) / "model-fp32.onnx")
            os.replace(Path(scratch) / "model-fp32.onnx", fp32)
        if precision == "int8":
            _quantise(fp32, Path(scratch) / "model-int8.onnx")
            os.replace(Path(scratch) / "model-int8.onnx", target)
    return target


def _export_fp32(layout: SentenceModelLayout, path: Path) -> None:
    try:
        import torch
        from transformers import AutoModel
    except ImportError as error:
        raise OnnxUnavailable(f"exporting needs torch and transformers ({error})") from error
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so plainly)
    except ImportError as error:
        raise OnnxUnavailable("exporting needs the onnx package (pip install onnx)") from error

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(layout.folder)).eval()
    takes_types = "token_type_ids" in model.forward.__code__.co_varnames

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            extra = {"token_type_ids": token_type_ids} if takes_types else {}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # a padded row, so the traced graph is the one that honours the mask
    dynamic = {name: {0: "batch", 1: "tokens"} for name in (*ONNX_INPUTS, "last_hidden_state")}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shapes that are fixed for this model
            torch.onnx.export(LastHiddenState(model), (ids, mask, torch.zeros_like(ids)), str(path),
                              input_names=list(ONNX_INPUTS), output_names=["last_hidden_state"],
                              dynamic_axes=dynamic, opset_version=17, dynamo=False)
    except Exception as error:  # the exporter raises many kinds; all mean "use torch instead"
        raise OnnxUnavailable(f"export failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}") \
            from error


def _quantise(source: Path, path: Path) -> None:
    """Dynamic int8 weights, per channel, 7-bit range: the setting that keeps cosine >= 0.98 on AVX2
    CPUs without VNNI, where full-range int8 saturates (measured in bench/ingest.py)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise OnnxUnavailable(f"quantising needs onnxruntime's quantization tools ({error})") from error
    import logging

    logging.getLogger("root").setLevel(logging.ERROR)  # its "consider pre-processing" notice
    quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


class OnnxSentenceEncoder:
    """Mean-pooled, unit-length sentence vectors from an exported model (cosine search wants unit length,
    whether or not the folder has a Normalize module)."""

    def __init__(self, layout: SentenceModelLayout, model_file: Path, threads: int | None = None):
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as error:
            raise OnnxUnavailable(f"needs onnxruntime and tokenizers ({error})") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(str(model_file), options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as error:  # a corrupt or foreign file: let the caller redo or fall back
            raise OnnxUnavailable(f"cannot open {model_file}: {error}") from error
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(layout.folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(layout.max_seq_length)
        self._tokenizer.enable_padding()
        self._counter = Tokenizer.from_file(str(layout.folder / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        self.max_seq_length = layout.max_seq_length
        self.dimension = int(self._session.get_outputs()[0].shape[-1] or self.encode(["x"]).shape[1])

    def encode(self, texts: list[str], batch_size: int = 64):
        """One float32 row per text; batches hold texts of similar length so little is padding."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: list = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            encoded = self._tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
            weights = mask[..., None].astype(np.float32)
            vectors = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
            for row, i in enumerate(batch):
                rows[i] = vectors[row]
        if not rows:
            return np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)
        return np.stack(rows).astype(np.float32)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text without special tokens, as the model's own tokenizer splits them."""
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]


def load_encoder(folder: str | Path, precision: str, cache_dir: Path | None = None) -> OnnxSentenceEncoder:
    """The ONNX encoder for a sentence-transformers folder; a broken cached file is exported again once."""
    layout = read_layout(folder)
    path = onnx_file(layout, precision, cache_dir)
    try:
        return OnnxSentenceEncoder(layout, path)
    except OnnxUnavailable:
        shutil.rmtree(path.parent, ignore_errors=True)
        return OnnxSentenceEncoder(layout, onnx_file(layout, precision, cache_dir))
