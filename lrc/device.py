"""Pick the compute device: ``auto`` is CUDA when present, else CPU."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a device; refuses CUDA when there is none.

    Raises:
        ValueError: CUDA asked for on a machine without it, or an unknown name.
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but this machine has no usable CUDA device; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}: use auto, cpu or cuda[:N]")
    return device


def autocast(device: torch.device, bf16: bool = True) -> torch.autocast:
    """bf16 autocast on CUDA (unless ``bf16`` is False); disabled on CPU (float32 there)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
