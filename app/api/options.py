"""The training options of ``POST /v1/finetunes`` and ``/v1/pretrains``, derived from the library's configs.

Each field a config declares as offered by the API (:mod:`lrc.train.setting`) becomes an option with
the config's name, type and default, the declared bounds and choices, and the declared description.
"""

from __future__ import annotations

import types
import typing
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic.fields import FieldInfo

from lrc.train.finetune_config import FinetuneConfig
from lrc.train.pretrain_config import PretrainConfig
from lrc.train.setting import Setting, from_options, library_only, offered


class TrainingOptions(BaseModel):
    """The options of one config (``config``): unknown names and the library's own settings are refused."""

    model_config = ConfigDict(extra="forbid")
    config: ClassVar[type]

    @model_validator(mode="before")
    @classmethod
    def _offered(cls, data: Any) -> Any:
        """A setting the library keeps for experiments is refused by name (422), with where it is."""
        if isinstance(data, dict):
            kept = [name for name in library_only(cls.config, "api") if name in data]
            if kept:
                where = f"{cls.config.__module__}.{cls.config.__name__}"
                raise ValueError(
                    f"{', '.join(kept)}: a setting for experiments, not offered by the API (the library's {where} "
                    "and bench/ keep it; docs/research/REPORT.md)"
                )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TrainingOptions:
        """The training's own checks (the rules between fields), so that bad options never make a job."""
        from_options(self.config, self.model_dump(exclude_none=True))  # its ValueError: a 422 with its message
        return self


def options_model(config: type, doc: str) -> type[TrainingOptions]:
    """The pydantic model of ``config``'s API options, named after it (``FinetuneConfig``: ``FinetuneOptions``)."""
    fields: dict[str, Any] = {
        field.name: (_annotation(declared, hint), _field(field.default, declared))
        for field, declared, hint in offered(config, "api")
    }
    name = config.__name__.removesuffix("Config") + "Options"
    model = create_model(name, __base__=TrainingOptions, __doc__=doc, __module__=__name__, **fields)
    model.config = config
    return model


def _annotation(declared: Setting, hint: Any) -> Any:
    """The API's type: choices as a ``Literal``, a tuple of ``length`` items as a list of bounded items."""
    if declared.length is not None:  # tuple[int, ...]: a list of bounded items on the wire
        (item, _) = typing.get_args(hint)
        listed: Any = list[Annotated[item, _bounded(declared)]]  # type: ignore[valid-type]
        return listed | None if declared.none_default else listed
    if declared.choices is not None:
        choice = Literal.__getitem__(declared.choices)
        parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if declared.takes_text:  # the text part of the type is the choices (``tile``: or a number)
            return typing.Union[tuple(choice if part is str else part for part in parts)]  # noqa: UP007
        return choice
    return hint


def _field(default: Any, declared: Setting) -> FieldInfo:
    if declared.length is not None:
        listed = None if declared.none_default else list(default)
        length = declared.length
        described = Field(default=listed, description=declared.description, min_length=length, max_length=length)
        return typing.cast(FieldInfo, described)
    return FieldInfo.merge_field_infos(_bounded(declared), Field(default=default, description=declared.description))


def _bounded(declared: Setting) -> FieldInfo:
    bounds = declared
    return Field(ge=bounds.ge, gt=bounds.gt, le=bounds.le, lt=bounds.lt, multiple_of=bounds.multiple_of)


if TYPE_CHECKING:  # mypy cannot see fields made at run time: to it these are the base class
    FinetuneOptions = TrainingOptions
    PretrainOptions = TrainingOptions
else:
    FinetuneOptions = options_model(FinetuneConfig, "Fine-tuning settings (see ``lrc.train.finetune.FinetuneConfig``).")
    PretrainOptions = options_model(
        PretrainConfig, "Pre-training settings (see ``lrc.train.pretrain.PretrainConfig``)."
    )
