"""What the machine can train on: the CUDA GPUs torch sees, and a rough speed for estimates."""

from __future__ import annotations

from dataclasses import dataclass

# Dense bf16/fp16 tensor throughput in TFLOP/s as published, for rough time estimates only.
PEAK_TFLOPS = {"h200": 989, "h100": 989, "a100": 312, "l40s": 362, "a10g": 125, "a10": 125, "l4": 121,
               "4090": 165, "3090": 71, "t4": 65, "v100": 125}
ASSUMED_UTILISATION = 0.3
CPU_TFLOPS = 0.05
"""What a small CPU sustains in fp32 training, order of magnitude."""


@dataclass(frozen=True)
class Hardware:
    device: str
    """"cuda" or "cpu"."""
    gpu_name: str = ""
    gpu_count: int = 0
    vram_gb: float = 0.0
    """Memory of the first GPU in GB (10^9 bytes); 0 without CUDA."""
    bf16: bool = False

    @property
    def tflops(self) -> float:
        if self.device != "cuda":
            return CPU_TFLOPS
        name = self.gpu_name.lower().replace(" ", "")
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), 100)
        return peak * ASSUMED_UTILISATION


def detect_hardware() -> Hardware:
    import torch

    if not torch.cuda.is_available():
        return Hardware("cpu")
    props = torch.cuda.get_device_properties(0)
    return Hardware("cuda", props.name, torch.cuda.device_count(), props.total_memory / 1e9,
                    torch.cuda.is_bf16_supported())
