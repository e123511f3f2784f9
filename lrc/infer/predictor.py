"""Segment volumes with a model loaded once (the shape of a warm worker).

For each volume: reorient to RAS (no interpolation), move to the device as stored (int16 for CT:
half the bytes of float32), window there, resample in-plane to the model spacing, run the 2D
network over batches of slices (bf16 autocast on CUDA), resample the logits back to the input
in-plane size, take the arg-max, map classes to label values, and undo the reorientation. The
result lies exactly on the input grid (same shape and affine) and keeps its DICOM source, so it
can be written as a DICOM SEG at once. 3D networks run MONAI's sliding window over the volume
resampled to the model spacing.

``F.interpolate(size=..., align_corners=False)`` maps the corners of the first and last voxels onto
each other, the same grid convention as :func:`lrc.io.resample.grid_for_spacing`.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from lrc.device import autocast, resolve_device
from lrc.io.geometry import align_to, reorient
from lrc.io.volume import Volume
from lrc.models.card import ModelCard
from lrc.models.store import load_model
from lrc.nets.unet import UNet
from lrc.runtime import tune_cpu_allocator

MULTIPLE = 16  # BasicUNet halves the size four times


class Predictor:
    """A segmentation model ready to predict.

    Args:
        net: the network (moved to ``device``, put in eval mode).
        card: its model card (window, spacing, label table).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        batch_size: slices per forward pass (2D); default 32 on CUDA, 2 on the CPU, where small
            batches keep activation buffers below glibc's mmap threshold (see :mod:`lrc.runtime`).
        bf16: bf16 autocast on CUDA (float32 when False; the CPU always runs float32).
    """

    def __init__(
        self,
        net: UNet,
        card: ModelCard,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        bf16: bool = True,
    ) -> None:
        if card.kind != "segmentation" or card.labels is None:
            raise ValueError(f"a segmentation model is needed, got a {card.kind} model")
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.card = card
        self.bf16 = bf16
        self.batch_size = batch_size or (32 if self.device.type == "cuda" else 2)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.label_dtype = np.uint8 if max(card.labels) < 256 else np.uint16
        self.values = np.array([0, *card.labels], dtype=self.label_dtype)  # class index -> label value

    @classmethod
    def from_dir(
        cls, directory: str | os.PathLike[str], device: str | torch.device = "auto", batch_size: int | None = None
    ) -> Predictor:
        """Load a segmentation model directory (checked against its card)."""
        resolved = resolve_device(device)
        net, card = load_model(directory, kind="segmentation", device=resolved)
        return cls(net, card, resolved, batch_size)

    @torch.inference_mode()
    def predict(self, volume: Volume) -> Volume:
        """The label map of ``volume``, on its exact grid, with its DICOM source kept."""
        canonical = reorient(volume, "RAS")
        bounds = self.card.window.bounds(canonical.array)
        voxels = torch.from_numpy(np.ascontiguousarray(canonical.array)).to(self.device)  # X x Y x Z, stored dtype
        if self.card.arguments["spatial_dims"] == 2:
            classes = self._predict_2d(voxels, bounds, canonical.spacing)
        else:
            classes = self._predict_3d(_window(voxels, bounds), canonical.spacing)
        labels = self.values[classes.cpu().numpy()]  # X x Y x Z label values
        predicted = Volume(labels, canonical.affine, "SEG")
        result = align_to(predicted, volume)
        result.source = volume.source
        return result

    def _model_size(self, size: tuple[int, ...], spacing: tuple[float, ...]) -> tuple[int, ...]:
        target = self.card.spacing
        return tuple(max(1, round(n * s / t)) if t else n for n, s, t in zip(size, spacing, target, strict=False))

    def _predict_2d(
        self, voxels: torch.Tensor, bounds: tuple[float, float], spacing: tuple[float, float, float]
    ) -> torch.Tensor:
        x_size, y_size, depth = voxels.shape
        model_x, model_y = self._model_size((x_size, y_size), spacing[:2])
        pad_x, pad_y = (-model_x) % MULTIPLE, (-model_y) % MULTIPLE
        slices = voxels.permute(2, 0, 1)[:, None]  # Z x 1 x X x Y, stored dtype
        out = torch.empty((depth, x_size, y_size), dtype=torch.uint8, device=self.device)  # Z x X x Y classes
        for start in range(0, depth, self.batch_size):
            batch = _window(slices[start : start + self.batch_size], bounds)  # b x 1 x X x Y in [0, 1]
            if (model_x, model_y) != (x_size, y_size):
                batch = nn.functional.interpolate(batch, size=(model_x, model_y), mode="bilinear", align_corners=False)
            batch = nn.functional.pad(batch, (pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2))
            with autocast(self.device, self.bf16):
                logits = self.net(batch)  # b x C x X' x Y' (padded)
            logits = logits[:, :, pad_x // 2 : pad_x // 2 + model_x, pad_y // 2 : pad_y // 2 + model_y].float()
            if (model_x, model_y) != (x_size, y_size):
                logits = nn.functional.interpolate(logits, size=(x_size, y_size), mode="bilinear", align_corners=False)
            # max(dim=1).indices: ~12x faster than argmax(dim=1) on the CPU for this layout.
            out[start : start + self.batch_size] = logits.max(dim=1).indices
        return out.permute(1, 2, 0)  # X x Y x Z

    def _predict_3d(self, image: torch.Tensor, spacing: tuple[float, float, float]) -> torch.Tensor:
        from monai.inferers import sliding_window_inference

        size = tuple(image.shape)
        model_size = self._model_size(size, spacing)
        volume = image[None, None]  # 1 x 1 x X x Y x Z
        if model_size != size:
            volume = nn.functional.interpolate(volume, size=model_size, mode="trilinear", align_corners=False)
        roi = tuple(int(v) for v in self.card.training.get("patch", [96, 96, 96]))
        with autocast(self.device, self.bf16):
            logits = sliding_window_inference(volume, roi, 2, self.net, overlap=0.25, mode="gaussian")
        logits = torch.as_tensor(logits).float()
        if model_size != size:
            logits = nn.functional.interpolate(logits, size=size, mode="trilinear", align_corners=False)
        return logits[0].max(dim=0).indices.to(torch.uint8)


def _window(voxels: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """Stored values to float32 in [0, 1] on their device."""
    low, high = bounds
    return ((voxels.float() - low) * (1.0 / (high - low))).clamp_(0.0, 1.0)
