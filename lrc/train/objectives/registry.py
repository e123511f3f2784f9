"""The objectives by name, and the ones a pre-training configuration composes.

A new objective is a module with an :class:`~lrc.train.objectives.base.Objective` subclass and a
line in :data:`OBJECTIVES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from lrc.train.objectives.base import Need, Objective
from lrc.train.objectives.decorrelation import DecorrelationObjective
from lrc.train.objectives.local import LocalContrastObjective
from lrc.train.objectives.moco import MoCoObjective
from lrc.train.objectives.restoration import RestorationObjective
from lrc.train.objectives.supervised import SupervisedObjective

if TYPE_CHECKING:
    from lrc.nets.unet import ContrastiveUNet
    from lrc.train.pretrain_config import PretrainConfig

OBJECTIVES: dict[str, type[Objective]] = {
    kind.name: kind
    for kind in (
        MoCoObjective,
        LocalContrastObjective,
        DecorrelationObjective,
        RestorationObjective,
        SupervisedObjective,
    )
}


class UnknownObjective(ValueError):
    """A name that is not in :data:`OBJECTIVES`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown pre-training objective {name!r}; known: {', '.join(OBJECTIVES)}")
        self.name = name


def objective_type(name: str) -> type[Objective]:
    """The objective registered as ``name``.

    Raises:
        UnknownObjective: no objective has that name.
    """
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise UnknownObjective(name) from None


def configured(config: PretrainConfig) -> list[str]:
    """The objectives ``config`` asks for, in the order their terms are summed.

    A method names its objectives joined by ``+`` (``moco+lrc``). Its self-supervised ones come
    first, in the method's order, then the optional penalties whose weight is above 0
    (``decorrelation``, ``restoration``), then the supervised one (a forward pass of its own).

    Raises:
        UnknownObjective: a part of the method names no objective.
    """
    parts = config.method.split("+")
    for part in parts:
        objective_type(part)
    names = [part for part in parts if part != "supervised"]
    if config.decorrelation_weight > 0:
        names.append("decorrelation")
    if config.restore_weight > 0:
        names.append("restoration")
    if "supervised" in parts:
        names.append("supervised")
    return names


def needs_of(names: Iterable[str]) -> frozenset[Need]:
    """Everything the named objectives need."""
    return frozenset().union(*(objective_type(name).needs for name in names))


def build(names: Sequence[str], config: PretrainConfig, online: ContrastiveUNet) -> list[Objective]:
    """The named objectives on ``online``, in order.

    Raises:
        UnknownObjective: a name is not registered.
    """
    kinds = [objective_type(name) for name in names]  # every name checked before any is built
    return [kind(config, online) for kind in kinds]
