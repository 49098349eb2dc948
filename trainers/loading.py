"""Loading a causal language model: one precision rule for chat, training and export.

The runtime (assistant/runtime/generation.py), the training job (trainers/sft.py) and the adapter
export (trainers/adapters.py) all load a base through :func:`load_causal_lm`, so a model computes
in the same precision wherever it is loaded, and always from safetensors (a pickled ``.bin`` can
run code on load). The rule itself is :func:`dtype_for`, plain data in and out.

torch and transformers are imported inside the function: importing this module costs nothing.
"""

from __future__ import annotations


def dtype_for(device: str, bf16_supported: bool) -> str:
    """The torch dtype name a model computes in on ``device``.

    Args:
        device: where the model computes: ``"cuda"``, ``"cuda:N"`` (one rank of a multi-GPU job) or
            ``"cpu"``; anything that is not CUDA counts as a CPU.
        bf16_supported: whether that GPU has bfloat16 (``torch.cuda.is_bf16_supported()``); ignored
            off CUDA.

    Returns:
        ``"bfloat16"`` on a GPU that has it (fp32's range at half the memory: no loss scaling),
        ``"float16"`` on an older GPU (half the memory still; training adds loss scaling), and
        ``"float32"`` elsewhere: torch's CPU kernels for 16-bit types are slower or missing.
    """
    if str(device).startswith("cuda"):
        return "bfloat16" if bf16_supported else "float16"
    return "float32"


def load_causal_lm(source: str, device: str, *, quantize_4bit: bool = False, trust_remote_code: bool = False,
                   keep_on_cpu: bool = False, full_precision: bool = False):
    """A causal LM from ``source`` (a folder or hub id), on ``device`` in the precision of :func:`dtype_for`.

    Errors are transformers' own (OSError or ValueError for a model that cannot be had): callers
    that speak to people wrap them (the runtime's ModelUnavailableError).

    Args:
        source: what ``from_pretrained`` loads: a local folder or a hub id.
        device: where the model computes (``"cuda"``, ``"cuda:N"``, ``"cpu"``).
        quantize_4bit: QLoRA's base: NF4 weights with double quantisation, placed on ``device`` by
            bitsandbytes. Computes in the device's precision on CUDA; bfloat16 on a CPU, the setting
            bitsandbytes' CPU kernels were measured to train with (LoRA gradients matched an fp32 copy).
        trust_remote_code: run code shipped with the model; off unless its author is trusted.
        keep_on_cpu: load into RAM in ``device``'s precision without moving it there. The export merges
            this way: a QLoRA base's 16-bit copy may not fit the GPU it trained on, and the merged model
            is saved in the precision it will run in.
        full_precision: fp32 weights on every device: a full fine-tune's master weights. Its updates (a rate of
            1e-5 times a weight) are far below bfloat16's resolution (about 0.4% of a weight), so 16-bit weights
            would round most of them away; on CUDA the forward still computes in 16-bit under autocast.
    """
    import torch
    from transformers import AutoModelForCausalLM

    cuda = str(device).startswith("cuda")
    dtype = getattr(torch, "float32" if full_precision else dtype_for(device, cuda and torch.cuda.is_bf16_supported()))
    options = dict(dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
    if not quantize_4bit:
        model = AutoModelForCausalLM.from_pretrained(source, **options)
        return model if keep_on_cpu else model.to(device)
    if full_precision:
        raise ValueError("a 4-bit base is frozen: full precision is for a full fine-tune's weights")
    if keep_on_cpu:
        raise ValueError("4-bit weights load on the device they compute on; keep_on_cpu is for 16-bit loads")
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype if cuda else torch.bfloat16)
    return AutoModelForCausalLM.from_pretrained(source, quantization_config=quantization, device_map={"": device},
                                                **options)
