"""What a pre-training objective is: the batch it sees, what it needs drawn for it, the term it adds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from lrc.nets.unet import ContrastiveUNet
    from lrc.train.pretrain_config import PretrainConfig


class Need(StrEnum):
    """Something an objective needs from the batch or the network, beyond the two views' global embeddings."""

    DENSE = "dense"  # the last decoder features of both views
    CLEAN = "clean"  # the views before their intensity changes, with a share of their cells hidden
    LABELS = "labels"  # label maps carried through the views' geometry
    IMAGE_HEAD = "image_head"  # the network's 1x1 head from the last decoder features to an image


@dataclass(frozen=True)
class Views:
    """Two views of a batch of ``B`` slices (or blocks), drawn once for every objective.

    Attributes:
        first, second: the views, ``B1S..``.
        map_1, map_2: their super-pixel ids, ``BS..`` (0: no region).
        clean: both views before their intensity changes and hiding, ``2B1S..`` (:attr:`Need.CLEAN`), else ``None``.
        target: the class of each pixel of the first view, ``B1S..`` (:attr:`Need.LABELS`), else ``None``.
    """

    first: torch.Tensor
    second: torch.Tensor
    map_1: torch.Tensor
    map_2: torch.Tensor
    clean: torch.Tensor | None = None
    target: torch.Tensor | None = None


@dataclass(frozen=True)
class Batch:
    """A batch as the objectives see it: the views and the online network's outputs on both.

    Attributes:
        views: the drawn views.
        both: the views stacked, first then second, ``2B1S..``.
        query: the global embeddings of ``both``, ``2BE`` unit vectors.
        dense: the last decoder features of ``both``, ``2BCS..`` (:attr:`Need.DENSE`), else ``None``.
        generator: the run's random generator (on the batch's device), for any sampling a term does.
    """

    views: Views
    both: torch.Tensor
    query: torch.Tensor
    dense: torch.Tensor | None
    generator: torch.Generator

    @property
    def size(self) -> int:
        """``B``, the number of slices (each gives two views)."""
        return int(self.views.first.shape[0])

    def require_dense(self) -> torch.Tensor:
        """The dense features; raises when they were not computed (an objective that forgot :attr:`Need.DENSE`)."""
        if self.dense is None:
            raise RuntimeError("this objective needs the dense features (Need.DENSE) and the batch has none")
        return self.dense


class Objective(ABC):
    """One term of a pre-training loss: ``weight * loss(batch)``, recorded under ``term``.

    A subclass declares its registry ``name``, the ``term`` its value is recorded as in the step's
    metrics, and what it ``needs``; it is built from the run's settings and the online network
    (heads included) and may keep state of its own (a key encoder, a queue).

    Args:
        config: the pre-training settings.
        online: the network being trained, with its projection heads.
    """

    name: ClassVar[str]
    term: ClassVar[str]
    needs: ClassVar[frozenset[Need]] = frozenset()

    def __init__(self, config: PretrainConfig, online: ContrastiveUNet) -> None:
        self.config = config
        self.online = online
        self.weight = 1.0

    @abstractmethod
    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The term's unweighted value (a scalar tensor) and any further metrics it reports."""
