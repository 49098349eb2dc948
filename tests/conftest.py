"""Shared fixtures. Everything runs offline: no hub, no telemetry, servers on 127.0.0.1 only.

No test writes to the real ``~/.cache``: the caches the code and its libraries use point at a folder
made for this run (removed at its end), except the converted bundled model, which lives in
``.venv/tunewise-test-cache/models`` so that its one-time conversion (about 40 s) is paid once per
checkout, not once per run. The variables are set here, before anything imports the libraries that
read them once (huggingface_hub, torch); training jobs and CLI subprocesses inherit them.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_MODEL_CACHE = REPOSITORY / ".venv" / "tunewise-test-cache" / "models"
"""The converted bundled model (and the embedder's ONNX export), kept between runs; .venv/ is git-ignored."""
RUN_CACHE = Path(tempfile.mkdtemp(prefix="tunewise-test-caches-"))
"""Every other cache of this run."""
atexit.register(shutil.rmtree, RUN_CACHE, ignore_errors=True)

CACHE_VARIABLES = {
    "TUNEWISE_MODEL_CACHE": SHARED_MODEL_CACHE,  # assistant.runtime.models, retrieval.onnx_encoder
    "XDG_CACHE_HOME": RUN_CACHE / "xdg",  # their fallback, onnxruntime's device id, anything XDG-aware
    "HF_HOME": RUN_CACHE / "huggingface",  # a machine's own hub cache must not change what tests see
    "TORCH_HOME": RUN_CACHE / "torch",
    "TRITON_CACHE_DIR": RUN_CACHE / "triton",
    "TORCHINDUCTOR_CACHE_DIR": RUN_CACHE / "torchinductor",
}
"""Each cache variable the code or its libraries read, and where this run points it."""
for _name, _folder in CACHE_VARIABLES.items():
    os.environ[_name] = str(_folder)
for _name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_DATASETS_CACHE"):
    os.environ.pop(_name, None)  # a machine's own setting would win over HF_HOME


import pytest  # noqa: E402

SLOW_FIXTURES = {
    "trained_adapter",  # tests/trainers/test_adapters.py, tests/real_model: runs a LoRA training job
    "two_adapters",  # tests/assistant/test_variants.py: runs two LoRA training jobs
    "bundled",  # tests/real_model: loads the real bundled model
}
"""Fixtures whose setup is long work (training, the real model).

A fixture cannot mark the tests that use it, so pytest_collection_modifyitems marks them ``slow``: a
test that uses one of these is slow whether or not its author remembered, and ``-m "not slow"``
leaves out everything long.
"""


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by -m
def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny random Llama-shaped chat model on disk, built once per run."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
