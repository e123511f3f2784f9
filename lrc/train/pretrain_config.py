"""Pre-training settings, without torch: the API and the command line offer them (:mod:`lrc.train.setting`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lrc.nets.stages import DEFAULT_FEATURES
from lrc.superpixels import SuperpixelParams
from lrc.train.limits import SEED_MAX, check_at_least, check_positive, check_seed
from lrc.train.setting import setting
from lrc.view_config import ViewConfig

METHODS = ("moco", "lrc", "moco+lrc", "supervised+lrc")
NEGATIVES = ("batch", "image")  # where the LRC local loss takes its negatives (lrc.losses.local_contrast)


@dataclass
class PretrainConfig:
    """Pre-training settings (defaults follow DESIGN.md's LRC specification).

    The fields declared with :func:`lrc.train.setting.setting` are what the API and ``lrc pretrain``
    offer; the rest are library settings for experiments (``bench/``), among them the loss settings
    the ablations found no gain in (``local_negatives``, ``negative_margin``, ``decorrelation_weight``,
    ``momentum``, the super-pixels' scale: ``docs/research/REPORT.md``).

    Args:
        method: ``moco``, ``lrc``, ``moco+lrc`` or ``supervised+lrc``.
        steps: optimisation steps.
        batch_size: slices per step (each gives two views).
        lr: AdamW learning rate; weight_decay: AdamW weight decay.
        spacing: in-plane model spacing, mm. canvas: slice canvas side, pixels. view_size: side of each view.
        spatial_dims: 2 (slices, the default) or 3 (blocks of ``canvas x canvas x depth`` at
            ``spacing x spacing x spacing_z`` mm, views of ``view_size x view_size x view_depth``;
            super-pixels stay per slice, see :mod:`lrc.train.blocks`). ``supervised+lrc`` is 2D only.
        features: U-Net feature sizes. embedding_dim: projection size of both heads.
        queue_size, momentum, temperature_global: MoCo v2 settings.
        temperature_local, lambda_local, regions_per_image (K), pixels_per_region (M): LRC settings.
        local_negatives: the local loss's negatives: ``batch`` (the specification) or ``image``
            (only the other regions of the same image; :mod:`lrc.losses.local_contrast`).
        negative_margin: regions whose mean intensities (windowed, 0-1) differ by less than this
            are no negatives of each other in the local loss (0: off, the specification).
        decorrelation_weight: weight of the channel-correlation penalty on the last decoder
            features of both views (0: off, the specification).
        restore_weight: weight of a restoration loss (0: off, the specification): a random
            ``restore_mask`` share of each view's 8-pixel cells is hidden (set to the view's
            mean) before the network sees it, and a 1x1 head on the last decoder features must
            give back the view before its intensity changes and the hiding (mean squared error).
            The in-painting and denoising of Models Genesis, as a term that keeps the features
            describing the image while the contrastive terms narrow them.
        views: augmentation ranges. superpixels: Felzenszwalb settings.
        seed: seeds numpy and torch; recorded in the card.
    """

    method: str = setting("moco+lrc", choices=("moco", "lrc", "moco+lrc"), cli="Self-supervised objective.")
    steps: int = setting(1000, ge=1, le=1_000_000, api=True, cli="Optimisation steps.")
    batch_size: int = setting(16, ge=2, le=1024, api=True, cli="Slices per step.")
    lr: float = 1e-3
    weight_decay: float = 1e-4
    spacing: float = setting(
        1.5, ge=0.1, le=10, api=True, description="in-plane model spacing, mm", cli="In-plane model spacing, mm."
    )
    canvas: int = setting(
        256, ge=16, le=2048, multiple_of=16, api=True, cli="Slice canvas side at that spacing, pixels (multiple of 16)."
    )
    view_size: int = setting(
        192, ge=16, le=2048, multiple_of=16, api=True, cli="Side of each augmented view (multiple of 16)."
    )
    spatial_dims: int = setting(2, choices=(2, 3), flag="--dims", cli="2 (slices) or 3 (blocks of --depth slices).")
    spacing_z: float = setting(3.0, gt=0, cli="3D: spacing across slices, mm.")
    depth: int = setting(48, ge=1, cli="3D: slices per block.")
    view_depth: int = setting(32, ge=16, multiple_of=16, cli="3D: depth of each view (multiple of 16).")
    features: tuple[int, ...] = setting(DEFAULT_FEATURES, ge=1, le=1024, length=6, none_default=True, api=True)
    embedding_dim: int = 128
    queue_size: int = setting(4096, ge=8, le=65536, api=True, description="MoCo's queue of negatives")
    momentum: float = 0.999
    temperature_global: float = 0.2
    temperature_local: float = 0.1
    lambda_local: float = 1.0
    regions_per_image: int = setting(16, ge=1, le=256, api=True, description="LRC: super-pixels sampled per slice (K)")
    pixels_per_region: int = setting(8, ge=1, le=256, api=True, description="LRC: pixels sampled per super-pixel (M)")
    local_negatives: str = "batch"
    negative_margin: float = 0.0
    decorrelation_weight: float = 0.0
    restore_weight: float = 0.0
    restore_mask: float = 0.25
    views: ViewConfig = field(default_factory=ViewConfig)
    superpixels: SuperpixelParams = field(default_factory=SuperpixelParams)
    seed: int = setting(0, ge=0, le=SEED_MAX, api=True, cli="Random seed (recorded in the card).")

    def __post_init__(self) -> None:
        check_at_least(1, steps=self.steps)
        check_at_least(2, batch_size=self.batch_size)
        check_at_least(16, canvas=self.canvas, view_size=self.view_size)
        check_positive(spacing=self.spacing, spacing_z=self.spacing_z, lr=self.lr)
        check_seed(self.seed)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.view_size % 16 or self.canvas % 16:
            raise ValueError(f"canvas and view_size must be multiples of 16, got {self.canvas} and {self.view_size}")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.spatial_dims == 3:
            check_at_least(1, depth=self.depth)
            check_at_least(16, view_depth=self.view_depth)
        if self.spatial_dims == 3 and self.view_depth % 16:
            raise ValueError(f"view_depth must be a multiple of 16, got {self.view_depth}")
        if self.spatial_dims == 3 and self.method == "supervised+lrc":
            raise ValueError("supervised+lrc pre-training is 2D only")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.local_negatives not in NEGATIVES:
            raise ValueError(f"local_negatives must be one of {NEGATIVES}, got {self.local_negatives!r}")
        if self.restore_weight < 0 or not 0 <= self.restore_mask < 1:
            weight, mask = self.restore_weight, self.restore_mask
            raise ValueError(f"need restore_weight >= 0 and restore_mask in [0, 1), got {weight} and {mask}")
        if self.restore_weight > 0 and self.method == "supervised+lrc":
            raise ValueError("restoration is not combined with supervised+lrc pre-training")
        if self.negative_margin < 0:
            raise ValueError(f"negative_margin must be >= 0, got {self.negative_margin}")
        if self.decorrelation_weight < 0:
            raise ValueError(f"decorrelation_weight must be >= 0, got {self.decorrelation_weight}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (recorded in the card)."""
        data = asdict(self)
        data["features"] = list(self.features)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PretrainConfig:
        """The configuration :meth:`to_json` recorded (a card's ``training["config"]``)."""
        views: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["views"].items()}
        settings: dict[str, Any] = dict(data) | {
            "features": tuple(data["features"]),
            "views": ViewConfig(**views),
            "superpixels": SuperpixelParams(**data["superpixels"]),
        }
        return cls(**settings)
