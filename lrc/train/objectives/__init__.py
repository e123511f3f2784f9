"""Pre-training objectives: one module per loss term, composed by name.

An objective (:class:`~lrc.train.objectives.base.Objective`) declares its name, the metric its
value is recorded as, what it needs from a batch (:class:`~lrc.train.objectives.base.Need`) and how
much it weighs; :class:`~lrc.train.pretrainer.Pretrainer` draws the views once for all of them
(:func:`~lrc.train.objectives.views.draw_views`), runs the online network once, and sums the
weighted terms of the objectives the configuration names (:func:`~lrc.train.objectives.registry.configured`).
"""

from lrc.train.objectives.base import Batch, Need, Objective, Views
from lrc.train.objectives.registry import OBJECTIVES, UnknownObjective, build, configured, needs_of, objective_type
from lrc.train.objectives.views import draw_views

__all__ = [
    "OBJECTIVES",
    "Batch",
    "Need",
    "Objective",
    "UnknownObjective",
    "Views",
    "build",
    "configured",
    "draw_views",
    "needs_of",
    "objective_type",
]
