"""The model card: everything needed to use, trust and reproduce a model directory.

``model.json`` beside ``weights.safetensors``. Loading checks the card before any weight is used
and refuses what does not fit, with a message that says what.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import lrc
from lrc.intensity import IntensityWindow
from lrc.io.labels import LabelTable

FORMAT = "lrc-model/1"
KINDS = ("pretrained", "segmentation")
TILE_MULTIPLE = 16  # BasicUNet halves the size four times


class ModelCardError(ValueError):
    """A model directory cannot be used: missing files, unknown format, or a card that contradicts its weights."""


def software_versions() -> dict[str, str]:
    """Versions of what produced a model (MONAI's from its metadata: importing it costs seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        monai = version("monai")
    except PackageNotFoundError:  # an inference-only install: the network no longer needs MONAI
        monai = "absent"
    return {
        "lrc": lrc.__version__,
        "torch": torch.__version__,
        "monai": monai,
        "python": platform.python_version(),
    }


@dataclass
class ModelCard:
    """What a model is and how it was made.

    Args:
        kind: ``pretrained`` (a backbone from self-supervised pre-training) or ``segmentation``.
        architecture: network family (``monai.BasicUNet``).
        arguments: constructor arguments of the network.
        window: intensity window used in training (inference uses the same).
        spacing: in-plane voxel size (mm) the model works at; ``None`` in the 3rd place for 2D.
        canvas: side of the square slice canvas (pixels) at that spacing.
        labels: label table (segmentation models): class ``c`` (1-based) is the ``c``-th entry.
        parent: the model this one was initialised from (path and weights sha256), if any.
        training: method, configuration, data hashes, split, seeds, steps.
        metrics: held-out metrics (``validation``), ``None`` when there was no held-out set.
        inference_tile: 2D segmentation models: the side of the tiles it predicts over unless told
            otherwise (:class:`lrc.infer.Predictor`); ``None``: whole slices.
        software: versions of what produced it.
        created: ISO time.
        weights_sha256: hash of ``weights.safetensors``.
    """

    kind: str
    architecture: str
    arguments: dict[str, Any]
    window: IntensityWindow
    spacing: tuple[float, float, float | None]
    canvas: int
    labels: LabelTable | None = None
    parent: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    inference_tile: int | None = None
    software: dict[str, str] = field(default_factory=software_versions)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    weights_sha256: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelCardError(f"model kind must be one of {KINDS}, got {self.kind!r}")
        if self.inference_tile is not None:
            if self.inference_tile < TILE_MULTIPLE or self.inference_tile % TILE_MULTIPLE:
                raise ModelCardError(f"inference_tile must be a positive multiple of 16, got {self.inference_tile}")
            if self.arguments.get("spatial_dims") != 2:
                raise ModelCardError("inference_tile is for 2D networks (3D ones predict over windows of their patch)")
        if self.kind == "segmentation":
            if not self.labels:
                raise ModelCardError("a segmentation model needs a label table")
            if self.arguments.get("out_channels") != len(self.labels) + 1:
                raise ModelCardError(
                    f"the network has {self.arguments.get('out_channels')} output channels but the "
                    f"label table {len(self.labels)} labels (+ background)"
                )

    def tile_side(self, tile: int | str | None) -> int | None:
        """The tile side that ``tile`` asks for on this model (``None``: whole slices, or a 3D model).

        ``"model"``: ``inference_tile``; ``"patch"``: the training patch; ``"slice"`` or ``None``:
        whole slices; a side: checked against the network (multiple of 16, 2D only).

        Raises:
            ValueError: a tile this model cannot run.
        """
        dims = int(self.arguments["spatial_dims"])
        if tile == "model":
            return None if dims == 3 else self.inference_tile  # checked when the card was made
        if tile == "patch":
            if dims == 3:
                return None
            patch = self.training.get("patch")
            if not patch:
                raise ValueError("the model card records no training patch: give the tile side")
            return int(patch[0])
        if tile is None or tile == "slice":
            return None
        if isinstance(tile, str):
            raise ValueError(f"tile must be 'model', 'patch', 'slice', a side or None, got {tile!r}")
        if dims == 3:
            raise ValueError("a 3D model always runs over windows of its training patch: tile can only be 'patch'")
        if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
            raise ValueError(f"tile must be a positive multiple of {TILE_MULTIPLE}, got {tile}")
        return tile

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (``model.json``)."""
        data = asdict(self)
        data["format"] = FORMAT
        data["window"] = self.window.to_json()
        data["labels"] = self.labels.to_json() if self.labels else None
        data["spacing"] = list(self.spacing)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        """Parse and check ``model.json`` content.

        Raises:
            ModelCardError: unknown format or missing/invalid fields.
        """
        if not isinstance(data, dict):
            raise ModelCardError(f"model.json is a JSON {type(data).__name__}, not an object: not a model card")
        if data.get("format") != FORMAT:
            raise ModelCardError(f"unknown model format {data.get('format')!r}; this lrc reads {FORMAT!r}")
        try:
            labels = LabelTable.from_dict(data["labels"]) if data.get("labels") else None
            spacing = data["spacing"]
            return cls(
                kind=data["kind"],
                architecture=data["architecture"],
                arguments=dict(data["arguments"]),
                window=IntensityWindow.from_json(data["window"]),
                spacing=(float(spacing[0]), float(spacing[1]), None if spacing[2] is None else float(spacing[2])),
                canvas=int(data["canvas"]),
                labels=labels,
                parent=data.get("parent"),
                training=dict(data.get("training") or {}),
                metrics=data.get("metrics"),
                inference_tile=None if data.get("inference_tile") is None else int(data["inference_tile"]),
                software=dict(data.get("software") or {}),
                created=str(data.get("created", "")),
                weights_sha256=str(data.get("weights_sha256", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelCardError):
                raise
            raise ModelCardError(f"model.json is incomplete or invalid ({type(exc).__name__}: {exc})") from exc


def tile_option(tiles: bool | None) -> str:
    """A request's ``tiles`` (True: tiles of the training patch, False: whole slices, None: as the card says)
    as :meth:`ModelCard.tile_side` takes it."""
    return "model" if tiles is None else "patch" if tiles else "slice"
