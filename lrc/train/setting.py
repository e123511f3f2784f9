"""What the product offers of a training config: each offered field's bounds and words, declared once.

A config field (:class:`lrc.train.finetune_config.FinetuneConfig`, :class:`lrc.train.pretrain.PretrainConfig`)
declared with :func:`setting` carries a :class:`Setting` in its metadata: the bounds and choices the product
enforces, and its words on each surface. The API's option models (``app.api.options``) and the options
of ``lrc finetune`` / ``lrc pretrain`` (:mod:`lrc.cli.config_options`) are derived from it. A field
declared without it is a library setting for experiments (``bench/``): its name, type and default are
the dataclass's, and no product surface offers it.

Torch-free: the API and the CLI import it before any work.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Surface = Literal["api", "cli"]
Config = TypeVar("Config")


@dataclass(frozen=True)
class Setting:
    """How the product offers one config field.

    Args:
        api: whether the API's options hold it. description: its words there (``None``: none).
        cli: the help of its ``lrc`` option (``None``: not on the command line). flag: the option's
            name where it is not the field's (``--dims`` for ``spatial_dims``).
        ge, gt, le, lt, multiple_of: bounds both surfaces enforce (of each item, for a tuple of
            ``length`` items); the config's own checks (rules between fields) apply on top.
        choices: the values offered (of the field's ``str`` part when it also takes a number).
        length: a variable-length tuple's number of items on the API, where it is a list.
        none_default: the API's default is ``None``, which stands for the config's default.
    """

    api: bool = False
    description: str | None = None
    cli: str | None = None
    flag: str | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    multiple_of: int | None = None
    choices: tuple[Any, ...] | None = None
    length: int | None = None
    none_default: bool = False

    def offered_by(self, surface: Surface) -> bool:
        """Whether ``surface`` (``api`` or ``cli``) offers it."""
        return self.api if surface == "api" else self.cli is not None

    @property
    def bounds(self) -> dict[str, float]:
        """The bounds that are set, by their pydantic names (``ge``, ``gt``, ``le``, ``lt``, ``multiple_of``)."""
        named = {"ge": self.ge, "gt": self.gt, "le": self.le, "lt": self.lt, "multiple_of": self.multiple_of}
        return {key: bound for key, bound in named.items() if bound is not None}

    def check(self, name: str, value: Any) -> None:
        """Refuse a value outside the bounds or choices, naming ``name`` and the bound.

        Raises:
            ValueError: ``value`` (or one of its items) is out of range or not offered.
        """
        if value is None:
            return
        if self.choices is not None and (isinstance(value, str) or not self.takes_text):
            if value not in self.choices:
                raise ValueError(f"{name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
            return
        for item in value if isinstance(value, tuple | list) else (value,):
            for key, bound in self.bounds.items():
                if not _within(key, bound, item):
                    raise ValueError(f"{name} must be {_WORDS[key]} {_number(bound)}, got {item}")

    @property
    def takes_text(self) -> bool:
        """Choices of text: a number given instead (``tile``'s side) is for the config to check."""
        return all(isinstance(choice, str) for choice in self.choices or ())


_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "multiple_of": "a multiple of"}


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _within(key: str, bound: float, value: float) -> bool:
    if key == "ge":
        return value >= bound
    if key == "gt":
        return value > bound
    if key == "le":
        return value <= bound
    if key == "lt":
        return value < bound
    return value % bound == 0


def setting(default: Any, **offer: Any) -> Any:
    """A dataclass field with ``default`` that the product offers as ``Setting(**offer)`` says."""
    if isinstance(default, list | dict | set):
        raise TypeError("a setting's default must be immutable (a tuple, not a list)")
    return dataclasses.field(default=default, metadata={"setting": Setting(**offer)})


def offered(config: type, surface: Surface) -> Iterator[tuple[dataclasses.Field[Any], Setting, Any]]:
    """The fields of ``config`` that ``surface`` offers, in declaration order: field, setting, resolved type."""
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        declared = field.metadata.get("setting")
        if isinstance(declared, Setting) and declared.offered_by(surface):
            yield field, declared, hints[field.name]


def library_only(config: type, surface: Surface) -> list[str]:
    """The fields of ``config`` that ``surface`` does not offer (experiments: the library and ``bench/``)."""
    shown = {field.name for field, _, _ in offered(config, surface)}
    return [field.name for field in dataclasses.fields(config) if field.name not in shown]


def from_options(config: type[Config], options: Mapping[str, Any], **fixed: Any) -> Config:
    """The config that product options give (JSON values: lists become tuples; ``None`` is the default).

    Any field of ``config`` is taken, offered or not, so that a queued job runs with every setting
    its payload holds; ``fixed`` adds fields the request holds apart (``method``).

    Raises:
        ValueError: a name that is no field of ``config``, or the config's own checks.
    """
    names = {field.name for field in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"{config.__name__} has no setting {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if v is not None}
    return config(**values, **fixed)


def check_offered(config: type, surface: Surface, values: Mapping[str, Any]) -> None:
    """Each value of an offered setting within its declared bounds and choices.

    Raises:
        ValueError: the first that is not, naming it and the bound.
    """
    for field, declared, _ in offered(config, surface):
        if field.name in values:
            declared.check(field.name, values[field.name])
