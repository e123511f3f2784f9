"""The options of ``lrc finetune`` and ``lrc pretrain``, derived from the training configs.

Each field a config declares as offered on the command line (:mod:`lrc.train.setting`) becomes an
option with the field's name (or its declared flag), type and default and the declared help;
:func:`config_from_cli` checks the declared bounds and choices, then builds the config.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING
from typing import Annotated, Any, TypeVar

import typer

from lrc.train.setting import Setting, check_offered, from_options, offered

Command = TypeVar("Command", bound=Callable[..., Any])
Config = TypeVar("Config")
KEYWORD = inspect.Parameter.KEYWORD_ONLY


def config_options(config: type, before: str) -> Callable[[Command], Command]:
    """Give a command the options of ``config``, placed before its parameter ``before``.

    The command takes them as ``**settings`` and passes them to :func:`config_from_cli`.
    """

    def with_options(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p.replace(kind=KEYWORD) for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        at = [p.name for p in own].index(before)
        derived = [_parameter(f.name, f.default, declared, hint) for f, declared, hint in offered(config, "cli")]
        command.__signature__ = signature.replace(parameters=own[:at] + derived + own[at:])  # type: ignore[attr-defined]
        return command

    return with_options


def config_from_cli(config: type[Config], settings: dict[str, Any], **fixed: Any) -> Config:
    """The config the derived options give: choices as their values, a number given as text as a number.

    Raises:
        ValueError: a value outside its declared bounds or choices, or the config's own checks.
    """
    numbers = {field.name for field, _, hint in offered(config, "cli") if _text_or_number(hint)}
    values = {name: _plain(value, name in numbers) for name, value in settings.items()}
    check_offered(config, "cli", values)
    return from_options(config, values, **fixed)


def _parameter(name: str, default: Any, declared: Setting, hint: Any) -> inspect.Parameter:
    assert declared.cli is not None
    assert default is not MISSING
    option = typer.Option(*([declared.flag] if declared.flag else []), help=declared.cli)
    if declared.choices is not None and hint is str:  # text choices: typer shows and checks them
        choice = enum.StrEnum(name.title().replace("_", ""), {c: c for c in declared.choices})  # type: ignore[misc]
        return inspect.Parameter(name, KEYWORD, default=choice(default), annotation=Annotated[choice, option])
    if _text_or_number(hint):  # typer takes text (``--tile patch`` or ``--tile 96``)
        hint = str | None if types.NoneType in typing.get_args(hint) else str
    return inspect.Parameter(name, KEYWORD, default=default, annotation=Annotated[hint, option])


def _text_or_number(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and {str, int} <= set(typing.get_args(hint))


def _plain(value: Any, number: bool) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if number and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value  # one of the choices, or refused as none of them
    return value
