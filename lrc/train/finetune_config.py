"""Fine-tuning settings, without torch: the API refuses bad options with the checks the training runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lrc.nets.stages import DECODER_STAGES, DEFAULT_FEATURES, ENCODER_STAGES
from lrc.train.limits import SEED_MAX, check_at_least, check_positive, check_seed
from lrc.train.setting import setting

TRANSFERS = ("all", "encoder")
MAX_SCALE = 4.0  # widest field of view of an augmented patch, in patches
SELF_SUPERVISED_LR_FACTOR = 3.0  # backbone_lr_factor's default from a self-supervised model
TILES = ("slice", "patch")  # a model's inference: whole slices or tiles of its training patch (or a side)


@dataclass(frozen=True)
class SpatialAugment:
    """Random rotation and scaling of 2D training patches.

    Args:
        scale: range of the field of view as a multiple of the patch (above 1: more context, organs
            drawn smaller; below 1: magnified), drawn uniformly.
        rotate_degrees: in-plane rotations drawn uniformly in +-this.
    """

    scale: tuple[float, float] = (1.0, 1.0)
    rotate_degrees: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= MAX_SCALE:
            raise ValueError(f"augment_scale must be 0 < min <= max <= {MAX_SCALE:g}, got {list(self.scale)}")
        if not 0 <= self.rotate_degrees <= 180:
            raise ValueError(f"augment_rotate must be 0 to 180 degrees, got {self.rotate_degrees}")

    @property
    def active(self) -> bool:
        """Whether it changes anything."""
        return self.scale != (1.0, 1.0) or self.rotate_degrees > 0


@dataclass
class FinetuneConfig:
    """Fine-tuning settings.

    The fields declared with :func:`lrc.train.setting.setting` are what the API and ``lrc finetune``
    offer, with the declared bounds and words; the rest (``transfer``, ``warmup_steps``, ``shrink``,
    ``perturb``, ``reinit``, ``anchor_weight``, ...) are library settings for experiments
    (``bench/quality.py``): the ablations found no gain in them (``docs/research/REPORT.md``).

    Args:
        steps: maximum optimisation steps.
        batch_size: patches per step. patch: patch side, pixels (multiple of 16).
        lr: AdamW peak learning rate.
        backbone_lr_factor: learning-rate multiplier for the transferred layers (from scratch: the
            layers a base would give, every one but the output layer with ``transfer="all"``);
            ``None`` (the default): ``SELF_SUPERVISED_LR_FACTOR`` (3) from a self-supervised
            (``pretrained``) model, 1 from a segmentation model and from scratch. Pre-trained
            features have to move further than a segmentation model's: at 1x the best MoCo+LRC
            recipe is 0.05-0.07 mean Dice behind scratch on the synthetic cohort, at 3x level with
            or ahead of it; 5x is worse than 3x (``docs/research/REPORT.md``). From scratch, 3x
            converges as fast as pre-trained weights do (+0.14 mean Dice after 500 steps) and is
            level with 1x at 1000 and 2000 steps (``bench/RESULTS.md``): from scratch the default is 1.
        transfer: what a pre-trained init gives: ``all`` (encoder and decoder) or ``encoder``.
        warmup_steps: steps during which the transferred layers stay frozen (their cosine
            schedule runs over the remaining steps).
        shrink, perturb: transferred weights start as ``shrink * pre-trained + perturb * fresh``,
            ``fresh`` being a new random initialisation of the same layer (shrink and perturb;
            ``1`` and ``0``, the defaults, transfer the weights unchanged).
        reinit: U-Net stages (``down_4``, ``upcat_4``, ...) that start fresh even when the
            pre-trained network has them.
        weight_decay: AdamW weight decay (towards 0).
        anchor_weight: decoupled weight decay of the transferred layers towards their pre-trained
            values instead of towards 0 (L2-SP: Li, Grandvalet and Davoine, "Explicit inductive bias
            for transfer learning with convolutional networks", ICML 2018, in AdamW's decoupled form):
            after each step, every transferred weight moves ``lr * anchor_weight`` of the way back to
            where it started (0, the default: off; nothing to do from scratch). On the synthetic
            cohort the best recipe with weight 1 is level with the same recipe without it at k = 1
            and +0.020 / +0.018 mean Dice ahead at k = 2 (dev / final, 5 seeds), -0.010 to +0.023
            against scratch; 10 and above hold the weights so near their start that the model no
            longer fits its training volumes (``docs/research/REPORT.md``). Off by default and
            not offered by the CLI or the API until the k = 2 gain is confirmed at a larger size.
        augment_scale, augment_rotate: 2D patches cut with a field of view of ``augment_scale``
            (min, max) times the patch and rotated by up to +-``augment_rotate`` degrees
            (:class:`SpatialAugment`; the defaults change nothing).
        flip: mirror half of the patches left-right (off by default). Mirroring hides the side,
            which tells spleen from liver and the left kidney from the right one: without it,
            scratch fine-tuning on the synthetic cohort gains 0.07-0.12 mean Dice at k = 1 and 2
            (3/3 seeds, docs/research/REPORT.md), as TotalSegmentator trains without mirroring. Turn it
            on for label sets without left/right pairs, where it is plain augmentation.
        tile: how the model predicts unless told otherwise, recorded in its card
            (``inference_tile``), and how validation predicts: ``"slice"`` (whole slices),
            ``"patch"`` (half-overlapping tiles of the training patch, as nnU-Net predicts) or a tile
            side in pixels; 2D only. ``None`` (the default): ``"patch"`` from a self-supervised
            (``pretrained``) model or from a segmentation model that predicts by tiles, ``"slice"``
            from scratch or from a segmentation model that predicts whole slices. Fine-tuned on
            patches, models from self-supervised weights fit their own training volumes at 0.69-0.81 mean Dice on whole
            slices and 0.92-0.94 tile by tile, and score 0.01-0.12 higher tile by tile on held-out
            volumes, where scratch moves by -0.01 to +0.04 (``docs/research/REPORT.md``);
            tiles cost ~3x the model time.
        spacing, canvas: model grid (taken from the pre-trained card when there is one).
        spatial_dims: 2 (slices, the default) or 3 (patches of ``patch x patch x patch_depth``
            at ``spacing x spacing x spacing_z`` mm, ``spacing_z`` defaulting to ``spacing``).
        features: U-Net features (scratch only; a pre-trained init fixes them).
        contrast_weight: weight of a self-supervised loss on unlabeled slices kept on during
            fine-tuning (:mod:`lrc.train.contrast_term`; 0, the default: off). Needs unlabeled
            volumes; 2D only. On the synthetic cohort it did not help: the best recipe with a
            MoCo+LRC or MoCo term at 0.1 every 4th step is -0.026 to +0.003 mean Dice against the
            same recipe without it (3 seeds, k = 1 and 2), 0.5 keeps the model from fitting its
            training volumes, and from scratch it costs up to 0.06 (``docs/research/REPORT.md``); an
            ablation tool, not offered by the CLI or the API.
        contrast_every: fine-tuning steps per batch of that loss (a MoCo+LRC batch costs several
            fine-tuning steps).
        validate_every: steps between validations. patience: validations without improvement before stopping.
        validation_fraction: share of cases held out when no validation set is given.
        foreground_fraction: share of patches centred on labelled voxels.
        seed: seeds numpy and torch.
    """

    steps: int = setting(2000, ge=1, le=1_000_000, api=True, cli="Maximum optimisation steps.")
    batch_size: int = setting(8, ge=1, le=1024, api=True, cli="Patches per step.")
    patch: int = setting(128, ge=16, le=1024, multiple_of=16, api=True, cli="Patch side, pixels (multiple of 16).")
    validate_every: int = setting(100, ge=1, le=1_000_000, api=True, cli="Steps between validations.")
    spacing: float = setting(
        1.5,
        ge=0.1,
        le=10,
        api=True,
        description="in-plane model spacing, mm (from scratch)",
        cli="In-plane model spacing, mm (scratch only).",
    )
    canvas: int = setting(
        256, ge=16, le=2048, multiple_of=16, api=True, cli="Slice canvas side, pixels (scratch only)."
    )
    spatial_dims: int = setting(
        2, choices=(2, 3), api=True, flag="--dims", cli="2 (slices) or 3 (3D patches; --init must then be 3D)."
    )
    patch_depth: int = setting(
        32, ge=16, le=512, multiple_of=16, api=True, cli="3D patch depth, voxels (multiple of 16)."
    )
    features: tuple[int, ...] = setting(DEFAULT_FEATURES, ge=1, le=1024, length=6, none_default=True, api=True)
    lr: float = setting(1e-3, gt=0, le=1, api=True)
    backbone_lr_factor: float | None = setting(
        None,
        ge=0,
        le=10,
        api=True,
        description="learning-rate multiplier of the base model's layers (from scratch: the same layers); none: 3 from "
        "a pre-trained (self-supervised) model, 1 from a segmentation model and from scratch",
        cli="Learning-rate multiplier of the --init layers (from scratch: the same layers) [default: 3 "
        "from a pre-trained, 1 from a segmentation model and from scratch].",
    )
    augment_scale: tuple[float, float] = setting(
        (1.0, 1.0),
        api=True,
        description="2D patches' field of view as a multiple of the patch (min, max)",
        cli="2D patches' field of view as a multiple of the patch: MIN MAX.",
    )
    augment_rotate: float = setting(
        0.0,
        ge=0,
        le=180,
        api=True,
        description="2D patches rotated by up to +- this, degrees",
        cli="2D patches rotated by up to +- this, degrees.",
    )
    flip: bool = setting(
        False,
        api=True,
        description="mirror half of the patches left-right (hides the side: only without left/right labels)",
        cli="Mirror half of the patches left-right (hides the side: only without left/right labels).",
    )
    tile: str | int | None = setting(
        None,
        choices=TILES,
        api=True,
        description="how the model predicts unless a request says otherwise, and in validation: 'slice' (whole "
        "slices), 'patch' (tiles of the training patch) or a tile side; none: 'patch' from a pre-trained "
        "(self-supervised) model, as the base model predicts from a segmentation model, 'slice' from scratch",
        cli="How the model predicts unless told otherwise, and in validation: 'slice', 'patch' (tiles of the "
        "training patch) or a tile side [default: 'patch' from a pre-trained model, as --init predicts from a "
        "segmentation model, 'slice' from scratch].",
    )
    patience: int = setting(5, ge=1, le=1000, api=True)
    validation_fraction: float = setting(0.2, gt=0, lt=1, api=True)
    seed: int = setting(0, ge=0, le=SEED_MAX, api=True, cli="Random seed (recorded in the card).")
    # Library settings for experiments (bench/), offered neither by the API nor by the CLI.
    transfer: str = "all"
    warmup_steps: int = 0
    shrink: float = 1.0
    perturb: float = 0.0
    reinit: tuple[str, ...] = ()
    weight_decay: float = 1e-4
    anchor_weight: float = 0.0
    spacing_z: float | None = None
    contrast_weight: float = 0.0
    contrast_every: int = 1
    foreground_fraction: float = 0.5

    def __post_init__(self) -> None:
        check_at_least(1, steps=self.steps, batch_size=self.batch_size, validate_every=self.validate_every)
        check_at_least(1, patience=self.patience, contrast_every=self.contrast_every)
        check_at_least(16, patch=self.patch, canvas=self.canvas)
        check_positive(spacing=self.spacing, lr=self.lr)
        if self.spacing_z is not None:
            check_positive(spacing_z=self.spacing_z)
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        check_seed(self.seed)
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.transfer not in TRANSFERS:
            raise ValueError(f"transfer must be one of {TRANSFERS}, got {self.transfer!r}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps), got {self.warmup_steps} for {self.steps} steps")
        if not (self.shrink > 0 and self.perturb >= 0):
            raise ValueError(f"need shrink > 0 and perturb >= 0, got {self.shrink} and {self.perturb}")
        if self.anchor_weight < 0:
            raise ValueError(f"anchor_weight must be >= 0, got {self.anchor_weight}")
        rate = self.lr * (SELF_SUPERVISED_LR_FACTOR if self.backbone_lr_factor is None else self.backbone_lr_factor)
        if rate * self.anchor_weight > 1:  # the default factor counted at its largest (a self-supervised base)
            raise ValueError(
                f"anchor_weight {self.anchor_weight:g} x the transferred layers' rate {rate:g} exceeds 1: "
                "each step would move the weights past their pre-trained values"
            )
        if self.backbone_lr_factor is not None and self.backbone_lr_factor < 0:
            raise ValueError(f"backbone_lr_factor must be >= 0, got {self.backbone_lr_factor}")
        unknown = sorted(set(self.reinit) - set(ENCODER_STAGES + DECODER_STAGES))
        if unknown:
            raise ValueError(f"reinit names U-Net stages ({', '.join(ENCODER_STAGES + DECODER_STAGES)}), got {unknown}")
        self.reinit = tuple(self.reinit)
        given = ENCODER_STAGES if self.transfer == "encoder" else ENCODER_STAGES + DECODER_STAGES
        if set(given) <= set(self.reinit):
            raise ValueError(f"reinit {list(self.reinit)} leaves nothing to transfer: fine-tune from scratch instead")
        self.augment_scale = (float(self.augment_scale[0]), float(self.augment_scale[1]))
        if self.spatial.active and self.spatial_dims == 3:
            raise ValueError("rotation and scaling of training patches (augment_scale, augment_rotate) are 2D only")
        if self.spatial_dims == 3 and self.patch_depth % 16:
            raise ValueError(f"patch_depth must be a multiple of 16, got {self.patch_depth}")
        if isinstance(self.tile, str) and self.tile not in TILES:
            raise ValueError(f"tile must be one of {TILES}, a side in pixels or None, got {self.tile!r}")
        if isinstance(self.tile, int) and (self.tile < 16 or self.tile % 16):
            raise ValueError(f"tile must be a positive multiple of 16, got {self.tile}")
        if self.tile not in (None, "slice") and self.spatial_dims == 3:
            raise ValueError("a 3D model always predicts over windows of its training patch: tile is 2D only")
        if self.contrast_weight < 0 or self.contrast_every < 1:
            weight, every = self.contrast_weight, self.contrast_every
            raise ValueError(f"need contrast_weight >= 0 and contrast_every >= 1, got {weight} and {every}")
        if self.contrast_weight > 0 and self.spatial_dims == 3:
            raise ValueError("the contrast term of fine-tuning (contrast_weight) is 2D only")
        if self.patch % 16 or self.canvas % 16 or self.patch > self.canvas:
            raise ValueError(
                f"patch and canvas must be multiples of 16 with patch <= canvas, got {self.patch}, {self.canvas}"
            )

    @property
    def spatial(self) -> SpatialAugment:
        """The patches' rotation and scaling (raises ``ValueError`` on bad ranges)."""
        return SpatialAugment(self.augment_scale, self.augment_rotate)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["features"] = list(self.features)
        data["augment_scale"] = list(self.augment_scale)
        data["reinit"] = list(self.reinit)
        return data
