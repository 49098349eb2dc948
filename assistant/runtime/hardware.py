"""What the machine can train on: the CUDA GPUs torch sees, its RAM, and a rough speed for estimates."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
    ram_gb: float = 0.0
    """Total RAM in GB (10^9 bytes), what a CPU run trains in; 0 when unknown."""

    @property
    def tflops(self) -> float:
        if self.device != "cuda":
            return CPU_TFLOPS
        name = self.gpu_name.lower().replace(" ", "")
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), 100)
        return peak * ASSUMED_UTILISATION


def meminfo_total_gb(text: str) -> float:
    """MemTotal of a /proc/meminfo text in GB (10^9 bytes); 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "MemTotal":
            number, *unit = value.split()
            return int(number) * (1024 if unit == ["kB"] else 1) / 1e9
    return 0.0


def total_ram_gb() -> float:
    """The machine's total RAM in GB (10^9 bytes), or 0 when it cannot be read.

    sysconf works on Linux and macOS; /proc/meminfo is the fallback where sysconf lacks the
    names. A container's memory limit, if lower, is not taken into account.
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (AttributeError, ValueError, OSError):
        pass
    try:
        return meminfo_total_gb(Path("/proc/meminfo").read_text())
    except (OSError, ValueError):
        return 0.0


def detect_hardware() -> Hardware:
    import torch

    ram = total_ram_gb()
    if not torch.cuda.is_available():
        return Hardware("cpu", ram_gb=ram)
    props = torch.cuda.get_device_properties(0)
    return Hardware("cuda", props.name, torch.cuda.device_count(), props.total_memory / 1e9,
                    torch.cuda.is_bf16_supported(), ram)
