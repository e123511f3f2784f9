"""Random training patches for fine-tuning: 2D crops of slice canvases, or 3D crops of volumes.

Half of the patches (``foreground_fraction``) are centred on a random labelled voxel, as nnU-Net
oversamples foreground so that small organs are seen; the rest are uniform. With ``flip``, half
of the patches are mirrored left-right (off by default: side tells organs apart; the coin is drawn
either way, so runs with and without flips cut the same patches), and each batch gets a mild
random intensity gain. 2D patches may also be cut rotated and scaled (:class:`SpatialAugment`, as
nnU-Net's spatial augmentation): the patch's sampling grid is turned and stretched about its
centre on the whole canvas slice, so the context comes from the slice (not from padding) until the
grid leaves the canvas (air, background).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from lrc.intensity import IntensityWindow
from lrc.io.geometry import align_to
from lrc.io.volume import Volume
from lrc.train.finetune_config import SpatialAugment
from lrc.train.slices import Preparing, SliceSet, class_map, prepared_share, to_model_grid
from lrc.views import warp


class PatchSampler(Protocol):
    """Something that yields training batches of a fixed patch shape."""

    shape: tuple[int, ...]

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``B1...`` (float) and class targets ``B1...`` (long) on ``device``."""
        ...


def _corner(
    rng: np.random.Generator, foreground: np.ndarray | None, size: tuple[int, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """Start of a patch of ``shape`` inside ``size``: around a foreground voxel when one is given."""
    room = np.maximum(np.asarray(size) - np.asarray(shape), 0)
    if foreground is not None and len(foreground):
        centre = foreground[rng.integers(len(foreground))]
        return np.clip(centre - np.asarray(shape) // 2, 0, room)
    return np.array([rng.integers(0, r + 1) for r in room])


def _finish(
    images: list[torch.Tensor], labels: list[torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack(images)[:, None].to(device).float()  # B x 1 x ...
    y = torch.stack(labels)[:, None].to(device).long()  # B x 1 x ...
    gain = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=device).uniform_(0.9, 1.1)
    return x * gain, y


class SlicePatchSampler:
    """2D patches from the canvas slices of :func:`lrc.train.slices.build_slices`."""

    def __init__(
        self,
        slices: SliceSet,
        patch: int,
        batch_size: int,
        foreground_fraction: float,
        rng: np.random.Generator,
        spatial: SpatialAugment | None = None,
        flip: bool = False,
    ) -> None:
        if slices.labels is None:
            raise ValueError("slices without labels cannot be fine-tuned on")
        self.images = torch.from_numpy(slices.images)  # N x C x C
        self.labels = torch.from_numpy(slices.labels)  # N x C x C
        self.shape: tuple[int, ...] = (patch, patch)
        self.batch_size = batch_size
        self.foreground_fraction = foreground_fraction
        self.rng = rng
        self.spatial = spatial if spatial is not None and spatial.active else None
        self.flip = flip
        self.foreground = [np.argwhere(lab > 0) for lab in slices.labels]  # per slice: F x 2
        self.with_foreground = np.flatnonzero([len(f) > 0 for f in self.foreground])

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``B x 1 x P x P`` images and targets."""
        images, labels = [], []
        size = tuple(self.images.shape[1:])
        picks = []
        for _ in range(self.batch_size):
            if len(self.with_foreground) and self.rng.random() < self.foreground_fraction:
                index = int(self.rng.choice(self.with_foreground))
                corner = _corner(self.rng, self.foreground[index], size, self.shape)
            else:
                index = int(self.rng.integers(len(self.images)))
                corner = _corner(self.rng, None, size, self.shape)
            flip = self.rng.random() < 0.5 and self.flip
            if self.spatial is not None:
                picks.append((index, corner, flip))
                continue
            (x0, y0), (px, py) = (int(c) for c in corner), self.shape
            image = self.images[index, x0 : x0 + px, y0 : y0 + py]
            label = self.labels[index, x0 : x0 + px, y0 : y0 + py]
            if flip:
                image, label = image.flip(0), label.flip(0)
            images.append(image)
            labels.append(label)
        if self.spatial is not None:
            return self._warped(picks, device)
        return _finish(images, labels, device)

    def _warped(
        self, picks: list[tuple[int, np.ndarray, bool]], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated and scaled patches about the centres of ``picks`` (slice index, patch corner, flip)."""
        assert self.spatial is not None
        index = torch.tensor([p[0] for p in picks])
        canvas = self.images.shape[1]
        patch = self.shape[0]
        count = len(picks)
        # theta maps the patch's normalised output grid to the canvas's (align_corners=False): with
        # scale 1 and no rotation it is exactly the unaugmented crop at ``corner``.
        centre = (np.stack([p[1] for p in picks]) + patch / 2) / canvas * 2 - 1  # B x (row, column)
        low, high = self.spatial.scale
        side = torch.from_numpy(self.rng.uniform(low, high, count)) * patch / canvas  # B
        limit = math.radians(self.spatial.rotate_degrees)
        angle = torch.from_numpy(self.rng.uniform(-limit, limit, count))  # B
        flip = torch.tensor([-1.0 if p[2] else 1.0 for p in picks], dtype=torch.float64)  # flips rows, as above
        cos, sin = torch.cos(angle) * side, torch.sin(angle) * side
        theta = torch.stack(
            [
                torch.stack([cos, -sin * flip, torch.from_numpy(centre[:, 1])], dim=1),  # grid x: columns
                torch.stack([sin, cos * flip, torch.from_numpy(centre[:, 0])], dim=1),  # grid y: rows
            ],
            dim=1,
        ).float()  # B x 2 x 3
        slices = self.images[index][:, None].to(device).float()  # B x 1 x C x C
        targets = self.labels[index].to(device)  # B x C x C
        images, labels = warp(slices, targets, theta.to(device), patch)
        return _finish(list(images[:, 0]), list(labels), device)


def build_volumes(
    cases: list[tuple[Volume, Volume]],
    window: IntensityWindow,
    spacing: tuple[float, float, float],
    class_of: dict[int, int],
    preparing: Preparing | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cases on the 3D model grid: (windowed float16 image, class map) per case, RAS, at ``spacing``;
    ``preparing`` is called before each case and at the end (:data:`lrc.train.slices.Preparing`)."""
    out = []
    for index, (image, label) in enumerate(cases):
        prepared_share(preparing, index, len(cases))
        grid = to_model_grid(image, spacing[0], spacing[2])
        labels = to_model_grid(align_to(label, image), spacing[0], spacing[2], is_label=True)
        out.append((window.apply(grid.array).astype(np.float16), class_map(labels.array, class_of)))
    prepared_share(preparing, len(cases), len(cases))
    return out


class VolumePatchSampler:
    """3D patches from whole volumes (padded with 0 where a volume is smaller than the patch)."""

    def __init__(
        self,
        volumes: list[tuple[np.ndarray, np.ndarray]],
        shape: tuple[int, int, int],
        batch_size: int,
        foreground_fraction: float,
        rng: np.random.Generator,
        flip: bool = False,
    ) -> None:
        self.shape: tuple[int, ...] = shape
        self.flip = flip
        self.batch_size = batch_size
        self.foreground_fraction = foreground_fraction
        self.rng = rng
        self.volumes = []
        for image, labels in volumes:
            pad = [(0, max(0, s - n)) for s, n in zip(shape, image.shape, strict=True)]
            self.volumes.append((torch.from_numpy(np.pad(image, pad)), torch.from_numpy(np.pad(labels, pad))))
        self.foreground = [np.argwhere(labels.numpy() > 0) for _, labels in self.volumes]

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``B x 1 x P x P x D`` images and targets."""
        images, labels = [], []
        for _ in range(self.batch_size):
            index = int(self.rng.integers(len(self.volumes)))
            image, label = self.volumes[index]
            wanted = self.rng.random() < self.foreground_fraction
            corner = _corner(self.rng, self.foreground[index] if wanted else None, tuple(image.shape), self.shape)
            window = tuple(slice(int(c), int(c) + s) for c, s in zip(corner, self.shape, strict=True))
            patch, target = image[window], label[window]
            if self.rng.random() < 0.5 and self.flip:
                patch, target = patch.flip(0), target.flip(0)
            images.append(patch)
            labels.append(target)
        return _finish(images, labels, device)
