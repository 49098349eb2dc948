"""A test run writes nothing under the real ~/.cache: every cache the code or its libraries would
fill there points elsewhere (tests/conftest.py sets them), in this process and in the subprocesses
that train or run the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HOME_CACHE = Path.home() / ".cache"


def outside_home_cache(path: str | Path) -> bool:
    return not Path(path).expanduser().resolve().is_relative_to(HOME_CACHE.resolve())


def huggingface_hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE  # read once, when huggingface_hub is first imported


def model_cache() -> Path:
    from assistant.runtime.models import model_cache_dir

    return model_cache_dir()


def onnx_cache() -> Path:
    from retrieval.onnx_encoder import default_cache_dir

    return default_cache_dir()


CACHES = {
    "the converted bundled model": model_cache,
    "the embedder's ONNX export": onnx_cache,
    "the Hugging Face hub": huggingface_hub_cache,
    "XDG-aware libraries (onnxruntime's device id)": lambda: os.environ["XDG_CACHE_HOME"],
    "torch hub": lambda: os.environ["TORCH_HOME"],
    "triton kernels": lambda: os.environ["TRITON_CACHE_DIR"],
    "torch.compile": lambda: os.environ["TORCHINDUCTOR_CACHE_DIR"],
}


@pytest.mark.parametrize("where", CACHES.values(), ids=CACHES.keys())
def test_each_cache_points_outside_the_home_cache(where):
    assert outside_home_cache(where()), where()


def test_without_a_model_cache_setting_the_fallback_is_outside_the_home_cache_too(monkeypatch):
    monkeypatch.delenv("TUNEWISE_MODEL_CACHE")
    assert outside_home_cache(model_cache()) and outside_home_cache(onnx_cache())


def test_the_bundled_model_is_converted_once_per_checkout_not_once_per_run():
    repository = Path(__file__).resolve().parents[1]
    assert model_cache().is_relative_to(repository / ".venv")  # git-ignored, kept between runs


def test_a_subprocess_such_as_a_training_job_inherits_the_caches():
    code = ("import json; from huggingface_hub import constants; from assistant.runtime.models import model_cache_dir;"
            "print(json.dumps([constants.HF_HUB_CACHE, str(model_cache_dir())]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    hub, models = json.loads(out)
    assert outside_home_cache(hub) and outside_home_cache(models), (hub, models)
