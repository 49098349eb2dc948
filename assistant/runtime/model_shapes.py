"""Read a :class:`ModelShape` from any causal LM config, local path or hub id, with no weights.

The model is built on PyTorch's meta device, so a 70B config costs nothing but a
second; its decoder layers' ``nn.Linear`` modules are grouped by name. torch and
transformers are imported here only, inside the function.
"""

from __future__ import annotations

from collections import defaultdict

from assistant.core.catalog import LinearGroup, ModelShape
from assistant.core.errors import TunewiseError


class ModelConfigError(TunewiseError):
    """The config cannot be read or built; the message says what to do."""


def catalog_shape_for(name_or_path: str) -> ModelShape | None:
    """The catalog entry a hub id names ("Qwen/Qwen2.5-0.5B-Instruct" -> Qwen2.5-0.5B), if any."""
    from assistant.core.catalog import MODEL_CATALOG

    name = name_or_path.rsplit("/", 1)[-1].lower().removeprefix("bundled:")
    for suffix in ("-instruct", "-chat", "-it"):
        name = name.removesuffix(suffix)
    return next((shape for key, shape in MODEL_CATALOG.items() if key.lower() == name), None)


def shape_for_model(name_or_path: str, trust_remote_code: bool = False) -> ModelShape:
    """A shape without waiting on the network: a local folder's config, else the catalog entry the
    id names, else a config already in the local Hugging Face cache."""
    import os

    if not os.path.isdir(name_or_path):
        known = catalog_shape_for(name_or_path)
        if known is not None:
            return known
    return shape_from_pretrained(name_or_path, trust_remote_code, local_files_only=True)


def shape_from_pretrained(name_or_path: str, trust_remote_code: bool = False,
                          local_files_only: bool = False) -> ModelShape:
    """The shape of the model at ``name_or_path`` (a folder with config.json, or a hub id)."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as error:  # pragma: no cover - the dependencies are declared
        raise ModelConfigError(f"reading a model config needs torch and transformers: {error}") from error
    try:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code,
                                            local_files_only=local_files_only)
    except (OSError, ValueError) as error:
        raise ModelConfigError(
            f"cannot read a model config from {name_or_path!r}: give a local folder that holds "
            f"config.json, or a hub id while online ({str(error).splitlines()[0]})") from error
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return shape_from_module(model, config, str(name_or_path))


def shape_from_module(model, config, name: str) -> ModelShape:
    """Group the decoder layers' linear weights by projection name; the rest is 'other'."""
    import torch

    groups: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    linear_params = 0
    output_embeddings = model.get_output_embeddings()
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not output_embeddings:
            groups[module_name.rsplit(".", 1)[-1]].append(
                (module.in_features, module.out_features, module.bias is not None))
            linear_params += module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)
    linear_groups = []
    for leaf, shapes in groups.items():
        in_f, out_f, bias = shapes[0]
        if all(s == shapes[0] for s in shapes):
            linear_groups.append(LinearGroup(leaf, in_f, out_f, len(shapes), bias))
        else:  # same name, different shapes (rare): keep the total exact, one group per shape
            for shape in sorted(set(shapes)):
                linear_groups.append(LinearGroup(leaf, shape[0], shape[1], shapes.count(shape), shape[2]))
    total = sum(p.numel() for p in model.parameters())
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    heads = int(getattr(text, "num_attention_heads", 1))
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    return ModelShape(
        name=name,
        vocab_size=int(text.vocab_size),
        hidden_size=hidden,
        intermediate_size=int(getattr(text, "intermediate_size", None) or 4 * hidden),
        num_layers=int(text.num_hidden_layers),
        kv_dim=kv_heads * head_dim,
        linear_groups=tuple(linear_groups),
        other_params=total - linear_params,
    )
