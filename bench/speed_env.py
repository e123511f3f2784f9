"""What a speed result was measured on: machine, load, versions, device, threads (shared by bench/speed_*.py)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGES = ("torch", "numpy", "pydicom", "highdicom", "monai", "nnunetv2", "dynamic_network_architectures", "SimpleITK")


def versions() -> dict[str, str]:
    """Versions of the packages that matter for speed (absent ones left out)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def cpu_name() -> str:
    """The processor's model name (Linux), else the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict[str, Any]:
    """Machine, load averages (the CPU here is shared), versions, device name and thread count."""
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions(),
        "device": device,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "commit": _commit(),
    }
    if device.startswith("cuda"):
        import torch

        info["card"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _commit() -> str | None:
    try:
        run = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=False
        )
    except OSError:
        return None
    return run.stdout.strip() or None
