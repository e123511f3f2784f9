"""Segment volumes with a model loaded once (the shape of a warm worker).

For each volume: view it in RAS (flips and axis swaps as NumPy views, no interpolation), move it
to the device as stored (int16 for CT: half the bytes of float32) slice-major (Z x Y x X, which is
how a volume read from DICOM already lies in memory, so each batch of slices is one contiguous
block), window there, resample in-plane to the model spacing, run the 2D network over batches of
slices (bf16 autocast on CUDA), resample the logits back to the input in-plane size, take the
arg-max and map classes to label values on the device, and view the result in the input's axes.
The result lies exactly on the input grid (same shape and affine, Fortran order like the input) and
keeps its DICOM source, so it can be written as a DICOM SEG at once. 3D networks run MONAI's
sliding window over the volume resampled to the model spacing.

Measured on the 300-slice 512x512 CT, 2 shared cores, best of 3 interleaved runs
(``bench/speed_ab.py``, ``bench/SPEED.md``): 0.053 s a slice with the slice-major layout (0.058 s
with slices cut across a C-ordered reoriented copy), 0.035 s with the CPU copy of the network
(:mod:`lrc.infer.cpu`).

``F.interpolate(size=..., align_corners=False)`` maps the corners of the first and last voxels onto
each other, the same grid convention as :func:`lrc.io.resample.grid_for_spacing`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import nibabel as nib
import numpy as np
import torch
from torch import nn

from lrc.device import autocast, resolve_device
from lrc.infer.cpu import channels_last, for_cpu
from lrc.infer.stages import NoTimes, StageTimes
from lrc.infer.tiles import tiled_forward
from lrc.io.volume import Volume
from lrc.model_dirs.card import TILE_MULTIPLE, ModelCard
from lrc.model_dirs.store import load_model
from lrc.nets.unet import UNet
from lrc.runtime import tune_cpu_allocator

MULTIPLE = TILE_MULTIPLE  # BasicUNet halves the size four times
# The bottleneck's instance norm needs more than one value per channel: 2 x 2 after four halvings.
MIN_SIDE = 2 * MULTIPLE


class Predictor:
    """A segmentation model ready to predict.

    Args:
        net: the network (moved to ``device``, put in eval mode).
        card: its model card (window, spacing, label table).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        batch_size: slices per forward pass (2D); default 32 on CUDA, 2 on the CPU, where small
            batches keep activation buffers below glibc's mmap threshold (see :mod:`lrc.runtime`).
        bf16: bf16 autocast on CUDA (float32 when False; the CPU always runs float32).
        fast_cpu: on the CPU, run a copy of ``net`` with group norms and channels-last weights
            (:mod:`lrc.infer.cpu`; the same arithmetic, ~1.3x faster); ``net`` itself is left as it is.
        tile: run a 2D network over half-overlapping ``tile x tile`` windows of each slice (model
            grid) instead of the whole slice (:mod:`lrc.infer.tiles`); ``"patch"``: tiles of the
            model's training patch, as nnU-Net predicts; ``None`` or ``"slice"``: whole slices;
            ``"model"`` (the default): as the card says (``inference_tile``: fine-tuning sets tiles
            for models from self-supervised weights, see ``FinetuneConfig.tile``). 3D networks
            always run over windows of their training patch (``"patch"`` is accepted, a size is not).
    """

    def __init__(
        self,
        net: UNet,
        card: ModelCard,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        bf16: bool = True,
        fast_cpu: bool = True,
        tile: int | str | None = "model",
    ) -> None:
        if card.kind != "segmentation" or card.labels is None:
            raise ValueError(f"a segmentation model is needed, got a {card.kind} model")
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        dims = int(card.arguments["spatial_dims"])
        self.memory_format = channels_last(dims) if fast_cpu and self.device.type == "cpu" else torch.contiguous_format
        self._forward = for_cpu(self.net, dims) if fast_cpu and self.device.type == "cpu" else self.net
        self.card = card
        self.bf16 = bf16
        self.batch_size = batch_size or (32 if self.device.type == "cuda" else 2)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.tile = self._tile_side(tile)
        self.label_dtype = np.uint8 if max(card.labels) < 256 else np.uint16
        self.values = np.array([0, *card.labels], dtype=self.label_dtype)  # class index -> label value

    @classmethod
    def from_dir(
        cls,
        directory: str | os.PathLike[str],
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        tile: int | str | None = "model",
    ) -> Predictor:
        """Load a segmentation model directory (checked against its card)."""
        resolved = resolve_device(device)
        net, card = load_model(directory, kind="segmentation", device=resolved)
        return cls(net, card, resolved, batch_size, tile=tile)

    def with_tile(self, tile: int | str | None) -> Predictor:
        """This predictor (the same network and weights, not copied) with another ``tile``."""
        other = copy.copy(self)
        other.tile = self._tile_side(tile)
        return other

    def _tile_side(self, tile: int | str | None) -> int | None:
        """The tile side that ``tile`` asks for on this model (:meth:`ModelCard.tile_side`)."""
        return self.card.tile_side(tile)

    @torch.inference_mode()
    def predict(
        self, volume: Volume, times: StageTimes | None = None, progress: Callable[[int, int], None] | None = None
    ) -> Volume:
        """The label map of ``volume``, on its exact grid, with its DICOM source kept.

        Args:
            volume: the image.
            times: when given, seconds per stage are added to it (see :mod:`lrc.infer.stages`).
            progress: called as ``progress(done, total)`` after each batch of slices (2D), or at the
                end (3D: one sliding-window pass).
        """
        clock = times if times is not None else NoTimes()
        with clock.stage("preprocess", self.device):
            to_ras = nib.orientations.ornt_transform(
                nib.orientations.io_orientation(volume.affine), nib.orientations.axcodes2ornt(("R", "A", "S"))
            )
            canonical = nib.orientations.apply_orientation(volume.array, to_ras)  # X x Y x Z view, RAS
            spacing = reorient_spacing(volume.spacing, to_ras)
            bounds = self.card.window.bounds(canonical)
            if self.card.arguments["spatial_dims"] == 2:
                # Z x Y x X: one slice per contiguous block (a plain view of a volume read from DICOM).
                stack = torch.from_numpy(np.ascontiguousarray(canonical.transpose(2, 1, 0))).to(self.device)
        if self.card.arguments["spatial_dims"] == 2:
            classes = self._predict_2d(stack, bounds, spacing, clock, progress)  # Z x Y x X label values
        else:
            with clock.stage("preprocess", self.device):
                voxels = torch.from_numpy(np.ascontiguousarray(canonical)).to(self.device)  # X x Y x Z
                image = _window(voxels, bounds)
            classes = self._predict_3d(image, spacing, clock).permute(2, 1, 0)  # Z x Y x X label values
            if progress:
                progress(1, 1)
        with clock.stage("postprocess", self.device):
            labels = classes.cpu().numpy().astype(self.label_dtype, copy=False).transpose(2, 1, 0)  # X x Y x Z, RAS
            back = nib.orientations.ornt_transform(
                nib.orientations.axcodes2ornt(("R", "A", "S")), nib.orientations.io_orientation(volume.affine)
            )
            array = np.asfortranarray(nib.orientations.apply_orientation(labels, back))  # the input's axes
        return volume.with_array(array, modality="SEG", warnings=())

    def _values_on_device(self) -> torch.Tensor:
        # Class index -> label value, looked up on the device (torch indexes no uint16 tensor).
        return torch.from_numpy(self.values.astype(np.uint8 if self.label_dtype == np.uint8 else np.int32)).to(
            self.device
        )

    def _model_size(self, size: tuple[int, ...], spacing: tuple[float, ...]) -> tuple[int, ...]:
        target = self.card.spacing
        return tuple(max(1, round(n * s / t)) if t else n for n, s, t in zip(size, spacing, target, strict=False))

    def _predict_2d(
        self,
        stack: torch.Tensor,
        bounds: tuple[float, float],
        spacing: tuple[float, ...],
        clock: StageTimes,
        progress: Callable[[int, int], None] | None,
    ) -> torch.Tensor:
        depth, y_size, x_size = stack.shape
        model_x, model_y = self._model_size((x_size, y_size), spacing[:2])
        pad_x, pad_y = _padding(model_x), _padding(model_y)
        resample = (model_x, model_y) != (x_size, y_size)
        values = self._values_on_device()
        out = torch.empty((depth, y_size, x_size), dtype=values.dtype, device=self.device)  # Z x Y x X labels
        for start in range(0, depth, self.batch_size):
            with clock.stage("preprocess", self.device):
                batch = stack[start : start + self.batch_size].transpose(1, 2).contiguous()  # b x X x Y stored
                batch = _window(batch[:, None], bounds)  # b x 1 x X x Y in [0, 1]
                if resample:
                    batch = nn.functional.interpolate(
                        batch, size=(model_x, model_y), mode="bilinear", align_corners=False
                    )
                batch = nn.functional.pad(batch, (pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2))
                batch = batch.contiguous(memory_format=self.memory_format)
            with clock.stage("model", self.device), autocast(self.device, self.bf16):
                if self.tile is None:
                    logits = self._forward(batch)  # b x C x X' x Y' (padded)
                else:
                    logits = tiled_forward(self._forward_contiguous, batch, self.tile)
            with clock.stage("postprocess", self.device):
                logits = logits[:, :, pad_x // 2 : pad_x // 2 + model_x, pad_y // 2 : pad_y // 2 + model_y].float()
                if resample:
                    logits = nn.functional.interpolate(
                        logits, size=(x_size, y_size), mode="bilinear", align_corners=False
                    )
                # max(dim=1).indices: ~12x faster than argmax(dim=1) on the CPU for this layout.
                out[start : start + self.batch_size] = values[logits.max(dim=1).indices.transpose(1, 2)]
            if progress:
                progress(min(start + self.batch_size, depth), depth)
        return out

    def _forward_contiguous(self, batch: torch.Tensor) -> torch.Tensor:
        return self._forward(batch.contiguous(memory_format=self.memory_format))

    def _predict_3d(self, image: torch.Tensor, spacing: tuple[float, ...], clock: StageTimes) -> torch.Tensor:
        from monai.inferers import sliding_window_inference

        size = tuple(image.shape)
        model_size = self._model_size(size, spacing)
        with clock.stage("preprocess", self.device):
            volume = image[None, None]  # 1 x 1 x X x Y x Z
            if model_size != size:
                volume = nn.functional.interpolate(volume, size=model_size, mode="trilinear", align_corners=False)
        roi = tuple(int(v) for v in self.card.training.get("patch", [96, 96, 96]))
        with clock.stage("model", self.device), autocast(self.device, self.bf16):
            logits = sliding_window_inference(volume, roi, 2, self._forward, overlap=0.25, mode="gaussian")
        with clock.stage("postprocess", self.device):
            logits = torch.as_tensor(logits).float()
            if model_size != size:
                logits = nn.functional.interpolate(logits, size=size, mode="trilinear", align_corners=False)
            return self._values_on_device()[logits[0].max(dim=0).indices]  # X x Y x Z label values


def _padding(size: int) -> int:
    """Pixels to add to a side of ``size``: up to a multiple of :data:`MULTIPLE`, and to :data:`MIN_SIDE` at least."""
    return max(MIN_SIDE, -(-size // MULTIPLE) * MULTIPLE) - size


def reorient_spacing(spacing: tuple[float, float, float], transform: np.ndarray) -> tuple[float, ...]:
    """Voxel sizes along the axes of a volume reoriented by a nibabel orientation ``transform``."""
    reordered = [0.0, 0.0, 0.0]
    for axis, (target, _flip) in enumerate(transform):
        reordered[int(target)] = spacing[axis]
    return tuple(reordered)


def _window(voxels: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """Stored values to float32 in [0, 1] on their device."""
    low, high = bounds
    return ((voxels.float() - low) * (1.0 / (high - low))).clamp_(0.0, 1.0)
