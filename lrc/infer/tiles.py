"""2D sliding-window inference: a network run over patch-sized tiles of each slice.

A network fine-tuned on ``patch x patch`` crops has seen that field of view only; its instance
norms take their statistics from it. Run on a whole slice, it sees more context and other
statistics. Pre-trained initialisations are the most sensitive to that: on the synthetic
cohort (``docs/research/REPORT.md``) the best MoCo+LRC recipe fitted its training
volumes with a mean Dice of 0.73-0.78 on whole slices and 0.93-0.94 tile by tile, and scored
0.03-0.09 higher on the test volumes tile by tile, where models trained from scratch moved by
-0.02 to +0.03. nnU-Net predicts the same way (tiles of its training patch, Gaussian weights).

The tiles overlap by half and their logits are averaged with a Gaussian weight (sigma = tile / 8)
that trusts each tile's centre more than its border. Slices no larger than a tile run whole.
MONAI's ``sliding_window_inference`` does this for the 3D networks; the 2D path stays free of
MONAI's import (seconds at start-up, ``bench/SPEED.md``), so it has its own small loop here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SIGMA_SCALE = 1.0 / 8  # nnU-Net's Gaussian importance map: sigma = patch side / 8


def tile_starts(size: int, tile: int) -> list[int]:
    """Starts of tiles of side ``tile`` that cover ``size`` with at least half a tile of overlap."""
    if size <= tile:
        return [0]
    count = -(-(size - tile) // (tile // 2)) + 1  # ceil((size - tile) / (tile / 2)) + 1
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def gaussian(tile: int, device: torch.device) -> torch.Tensor:
    """Gaussian weights along one side of a tile (sigma = tile / 8), 1 at the centre."""
    centre = (tile - 1) / 2
    axis = torch.exp(-0.5 * ((torch.arange(tile, device=device) - centre) / (tile * SIGMA_SCALE)) ** 2)
    return axis / axis.max()


def tiled_forward(forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, tile: int) -> torch.Tensor:
    """Logits of ``forward`` over half-overlapping ``tile x tile`` windows of a ``B x 1 x H x W`` batch.

    Sides shorter than ``tile`` are not tiled (the window spans them). The windows run stacked, as
    many per forward pass as hold the batch's own pixel count (a whole-slice pass's memory). The
    result has the batch's size and ``forward``'s classes.
    """
    height, width = batch.shape[-2:]
    rows, columns = tile_starts(height, tile), tile_starts(width, tile)
    if len(rows) == len(columns) == 1:
        return forward(batch)
    tall, wide = min(tile, height), min(tile, width)
    corners = [(row, column) for row in rows for column in columns]
    per_pass = max(1, (height * width) // (tall * wide))  # windows of every slice of the batch per pass
    weight = _window_weights(tall, wide, tile, batch.device)
    total: torch.Tensor | None = None
    for first in range(0, len(corners), per_pass):
        chosen = corners[first : first + per_pass]
        windows = torch.cat([batch[..., r : r + tall, c : c + wide] for r, c in chosen])  # (n B) x 1 x tall x wide
        logits = (forward(windows).float() * weight).unflatten(0, (len(chosen), batch.shape[0]))
        if total is None:
            total = torch.zeros((batch.shape[0], logits.shape[2], height, width), device=batch.device)
        for (row, column), window in zip(chosen, logits, strict=True):
            total[..., row : row + tall, column : column + wide] += window
    norm = torch.zeros((height, width), device=batch.device)
    for row, column in corners:
        norm[row : row + tall, column : column + wide] += weight
    assert total is not None
    return total / norm


def _window_weights(tall: int, wide: int, tile: int, device: torch.device) -> torch.Tensor:
    """Weights of one ``tall x wide`` window: Gaussian along each tiled side, flat along a side
    that the slice keeps shorter than the tile; never 0 (every pixel of a window counts a little)."""
    column = gaussian(tile, device) if tall == tile else torch.ones(tall, device=device)
    row = gaussian(tile, device) if wide == tile else torch.ones(wide, device=device)
    return (column[:, None] * row[None, :]).clamp_(min=1e-3)
