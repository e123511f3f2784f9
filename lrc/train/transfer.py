"""What a fine-tuning starts from: a new network, or one initialised from a base model's weights.

From a ``pretrained`` base, its backbone gives encoder and decoder (``transfer="all"``) or the
encoder only, less the stages of ``reinit``, optionally shrunk towards a fresh initialisation
(``shrink``, ``perturb``). From a ``segmentation`` base, the output layer's channel of each structure
the base segments starts from the base's channel of that name. The base also fixes the grid
(window, spacing, canvas) and the defaults of the backbone's rate and of inference tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lrc.intensity import IntensityWindow
from lrc.io.labels import LabelTable
from lrc.label_match import LabelMismatch, match_labels, number_labels
from lrc.model_dirs.card import ModelCard
from lrc.model_dirs.store import load_model
from lrc.nets.stages import ENCODER_STAGES
from lrc.nets.unet import UNet
from lrc.train.finetune_config import SELF_SUPERVISED_LR_FACTOR, FinetuneConfig

ENCODER = tuple(f"{stage}." for stage in ENCODER_STAGES)  # parameter-name prefixes of the encoder


@dataclass
class Start:
    """The network a fine-tuning starts from and what it took from its base.

    Attributes:
        net: the network (on the CPU).
        window: the intensity window (the base's, else the data's modality's).
        output: the model's label table (the values it writes).
        class_of: value in the cases' label maps -> the model's class index.
        base: the base's card, or ``None`` from scratch.
        parent: the card's record of the base, or ``None``.
        transferred: parameter names initialised from the base.
        boosted: parameter names at the backbone's rate (the transferred ones; from scratch, the
            layers a base would give, as a rate control).
        head: output channel -> the base's channel of the same structure.
    """

    net: UNet
    window: IntensityWindow
    output: LabelTable
    class_of: dict[int, int]
    base: ModelCard | None
    parent: dict[str, Any] | None
    transferred: set[str]
    boosted: set[str]
    head: dict[int, int]


def start_network(
    window: IntensityWindow,
    labels: LabelTable,
    numbering: LabelTable | None,
    init: str | Path | None,
    config: FinetuneConfig,
) -> Start:
    """The starting network for ``labels``, from ``init`` (a model directory) or new.

    Resolves ``config`` in place: from a base its grid (spacing, canvas, ``spacing_z`` in 3D, the
    patch within the canvas), then the defaults of ``backbone_lr_factor`` and ``tile``.
    Torch's generator must be seeded: the new layers draw from it.

    Raises:
        ValueError: the base has other spatial dims, or its weights do not fit.
        LabelMismatch: a structure of ``labels`` matches several of the numbering, or two match one.
    """
    dims = config.spatial_dims
    source: UNet | None = None
    base: ModelCard | None = None
    if init is not None:
        source, base = load_model(init)
    base_labels = base.labels if base is not None and base.kind == "segmentation" else None
    output = number_labels(labels, numbering if numbering is not None else base_labels)
    class_of = _classes(output, labels)
    net = UNet(dims, 1, len(output) + 1, config.features)
    transferred: set[str] = set()
    head: dict[int, int] = {}
    parent = None
    if source is not None and base is not None:
        if source.arguments["spatial_dims"] != dims:
            raise ValueError(f"{init} is a {source.arguments['spatial_dims']}D network; this fine-tuning is {dims}D")
        window, config.spacing, config.canvas = base.window, base.spacing[0], base.canvas
        config.spacing_z = base.spacing[2] if dims == 3 else None
        config.patch = min(config.patch, config.canvas)
        net = UNet(dims, 1, len(output) + 1, source.arguments["features"])
        transferred = _transfer(net, source, config, str(init))
        if base_labels is not None:
            head = _head_channels(output, base_labels)
            copy_channels(net.final_conv, source.final_conv, head)
        if config.backbone_lr_factor is None:
            config.backbone_lr_factor = SELF_SUPERVISED_LR_FACTOR if base.kind == "pretrained" else 1.0
        if config.tile is None and dims == 2:  # self-supervised: tiles; a segmentation model: as it predicts
            config.tile = "patch" if base.kind == "pretrained" or base.inference_tile else "slice"
        parent = {
            "path": str(init),
            "kind": base.kind,
            "weights_sha256": base.weights_sha256,
            "method": base.training.get("method"),
        }
    if config.backbone_lr_factor is None:
        config.backbone_lr_factor = 1.0  # nothing transferred: recorded as the plain rate
    if config.tile is None:
        config.tile = "slice"
    boosted = transferred or {n for n, _ in net.named_parameters() if _given(n, config)}
    return Start(net, window, output, class_of, base, parent, transferred, boosted, head)


def _transfer(net: UNet, source: UNet, config: FinetuneConfig, init: str) -> set[str]:
    """Load the base's weights that ``config`` transfers into ``net``, shrunk and perturbed; their names."""
    weights = {k: v for k, v in source.state_dict().items() if _given(k, config)}
    mixing = (config.shrink, config.perturb) != (1.0, 0.0)
    fresh = {k: v.detach().clone() for k, v in net.state_dict().items()} if mixing else {}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    skipped = [k for k in missing if _given(k, config)]
    if unexpected or skipped or not weights:
        raise ValueError(f"{init}: weights do not fit this network (missing {missing}, unexpected {unexpected})")
    shrink_perturb(net, fresh, set(weights), config.shrink, config.perturb)
    return set(weights)


def _classes(output: LabelTable, labels: LabelTable) -> dict[int, int]:
    """Value in the cases' label maps -> the model's class index (1-based position in ``output``)."""
    index = {value: position for position, value in enumerate(output, start=1)}
    return {pair.reference: index[pair.model] for pair in match_labels(output, labels).pairs}


def _head_channels(output: LabelTable, base: LabelTable) -> dict[int, int]:
    """Output channel -> the base's channel of the same structure (background 0 -> 0)."""
    mine = {value: position for position, value in enumerate(output, start=1)}
    theirs = {value: position for position, value in enumerate(base, start=1)}
    try:
        shared = match_labels(output, base).pairs
    except LabelMismatch:  # nothing in common: only the background channel carries over
        shared = ()
    return {0: 0} | {mine[pair.model]: theirs[pair.reference] for pair in shared}


def head_values(table: LabelTable, channels: dict[int, int]) -> list[int]:
    """The label values of the (non-background) output channels in ``channels``."""
    values = list(table)
    return [values[channel - 1] for channel in channels if channel > 0]


@torch.no_grad()
def copy_channels(target: torch.nn.Module, source: torch.nn.Module, channels: dict[int, int]) -> None:
    """Copy output channels of a convolution: ``target``'s channel ``c`` takes ``source``'s ``channels[c]``."""
    given = dict(source.named_parameters())
    for name, param in target.named_parameters():
        for mine, theirs in channels.items():
            param[mine] = given[name][theirs].to(param.device, param.dtype)


def _given(name: str, config: FinetuneConfig) -> bool:
    """Whether the state entry ``name`` comes from the pre-trained network under ``config``."""
    if name.startswith(("final_conv.", *(f"{stage}." for stage in config.reinit))):
        return False
    return config.transfer != "encoder" or name.startswith(ENCODER)


@torch.no_grad()
def shrink_perturb(
    net: torch.nn.Module, fresh: dict[str, torch.Tensor], names: set[str], shrink: float, perturb: float
) -> None:
    """Set each state entry of ``names`` to ``shrink * current + perturb * fresh[name]``, in place."""
    if shrink == 1 and perturb == 0:
        return
    for name, value in net.state_dict().items():
        if name in names:
            value.mul_(shrink).add_(fresh[name].to(value.device, value.dtype), alpha=perturb)
