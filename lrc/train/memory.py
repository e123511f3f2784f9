"""What a training job will hold in memory, estimated from its settings and its images' grids.

The service checks these estimates before it queues a job (``LRC_WORKER_MEMORY_BYTES``), so that
options or inputs that cannot fit (a spacing of 0.001 mm, a million regions per slice, thousands
of series) are refused with the reason instead of taking a worker down. The estimates are upper
bounds of the large allocations, not of every byte: each term names what it counts, and the
constants are those of the code paths (:mod:`lrc.train.slices`, :mod:`lrc.losses.local_contrast`,
the U-Net's activations) measured on the project's machines within a factor of 2. No torch here:
the API process imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Grid = tuple[Sequence[int], Sequence[float]]  # (shape x, y, z; spacing mm)

PROCESS = 600 * 1024**2  # a worker with torch, MONAI and a model loaded
ACTIVATION_FACTOR = 96  # bytes kept per pixel per first-stage feature, forward + backward (measured: 86-93)


@dataclass(frozen=True)
class Estimate:
    """Bytes of each large allocation of a job, and their sum."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        """All the parts together."""
        return sum(self.parts.values())

    def describe(self) -> str:
        """The largest parts, for a message."""
        largest = sorted(self.parts.items(), key=lambda item: -item[1])[:3]
        return ", ".join(f"{name} {gib(size)}" for name, size in largest)


def gib(size: float) -> str:
    """``size`` bytes in GiB, two significant digits."""
    return f"{size / 1024**3:.2g} GiB"


def _resampled(grid: Grid, spacing: float, slice_spacing: float | None = None) -> tuple[float, float, float]:
    """Voxels along x, y, z after resampling to ``spacing`` in-plane (and ``slice_spacing`` across)."""
    shape, size = grid
    z = shape[2] * size[2] / slice_spacing if slice_spacing else shape[2]
    return shape[0] * size[0] / spacing, shape[1] * size[1] / spacing, z


def _slices(grids: Sequence[Grid], spacing: float, canvas: int, per_pixel: int) -> tuple[int, int]:
    """Bytes of the stacked canvas slices of every volume, and of the largest volume while it is resampled."""
    stacked = sum(int(g[0][2]) for g in grids) * canvas * canvas * per_pixel
    largest = max((x * y * z for x, y, z in (_resampled(g, spacing) for g in grids)), default=0.0)
    return stacked, int(largest * 4 * 2)  # float32, source and result


def _network(batch: int, side: int, first_features: int, depth: int = 1) -> int:
    return batch * side * side * depth * first_features * ACTIVATION_FACTOR


def finetune_bytes(
    grids: Sequence[Grid],
    *,
    spacing: float,
    canvas: int,
    batch_size: int,
    patch: int,
    features: Sequence[int],
    spatial_dims: int = 2,
    patch_depth: int = 32,
) -> Estimate:
    """Fine-tuning on the cases of ``grids``: the volumes read, their slices (or 3D volumes) on the model
    grid, the largest one while it is resampled, the training step's and the validation's activations."""
    read = sum(int(g[0][0] * g[0][1] * g[0][2]) for g in grids) * (4 + 2)  # image as read, label map
    if spatial_dims == 2:
        stacked, resampling = _slices(grids, spacing, canvas, per_pixel=3)  # float16 image + uint8 class
        step = _network(batch_size, patch, features[0])
        validation = _network(2, canvas, features[0]) // 3  # the predictor: no gradients, 2 slices a batch
    else:
        model = [_resampled(g, spacing, spacing) for g in grids]
        stacked = int(sum(x * y * z for x, y, z in model) * 3)
        resampling = int(max((x * y * z for x, y, z in model), default=0.0) * 4 * 2)
        step = _network(batch_size, patch, features[0], patch_depth)
        validation = _network(1, patch, features[0], patch_depth)
    parts = {"worker": PROCESS, "cases read": read, "training slices": stacked, "resampling": resampling}
    return Estimate(parts | {"training step": step, "validation": validation})


def pretrain_bytes(
    grids: Sequence[Grid],
    *,
    spacing: float,
    canvas: int,
    view_size: int,
    batch_size: int,
    features: Sequence[int],
    queue_size: int,
    embedding_dim: int,
    regions_per_image: int,
    pixels_per_region: int,
) -> Estimate:
    """2D pre-training on ``grids``: the volumes read, their slices with super-pixels (int32), the largest
    volume while it is resampled, both encoders' activations over two views, the MoCo queue and the
    local loss's pairwise similarities (samples x samples, a few float32 copies)."""
    read = sum(int(g[0][0] * g[0][1] * g[0][2]) for g in grids) * 4
    stacked, resampling = _slices(grids, spacing, canvas, per_pixel=2 + 4)
    step = _network(2 * batch_size, view_size, features[0]) * 3 // 2  # query network + key encoder (no gradients)
    samples = 2 * batch_size * regions_per_image * pixels_per_region
    parts = {
        "worker": PROCESS,
        "volumes read": read,
        "slices and super-pixels": stacked,
        "resampling": resampling,
        "training step": step,
        "MoCo queue": queue_size * embedding_dim * 4 * 2,
        "local loss": samples * samples * 4 * 4,
    }
    return Estimate(parts)
