"""Pick the compute device: ``auto`` is CUDA when present, else CPU.

:func:`check_device_name` needs no torch, so that settings and command lines can refuse a bad
name before anything heavy is imported.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str) -> str:
    """``name`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether this machine has it is not asked).

    Raises:
        ValueError: any other name (``tpu``, ``cuda:x``, an empty string).
    """
    if not DEVICE_NAME.match(name.strip()):
        raise ValueError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return name.strip()


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a device; refuses CUDA when there is none.

    Raises:
        ValueError: an unknown name, CUDA asked for on a machine without it, or a CUDA index
            beyond the machine's devices.
    """
    import torch

    if isinstance(name, torch.device):
        return name
    name = check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("CUDA was asked for but this machine has no usable CUDA device; use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"{name} was asked for but this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}"
            )
    return device


def autocast(device: torch.device, bf16: bool = True) -> torch.autocast:
    """bf16 autocast on CUDA (unless ``bf16`` is False); disabled on CPU (float32 there)."""
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
