"""The training defaults are written three times (``lrc`` configs, the API's options, the CLI's
options): each must say what the configs say, so that one recipe does not depend on the door used."""

from __future__ import annotations

import enum
import inspect
from dataclasses import fields
from typing import Any

import pytest

from app.api.schemas import FinetuneOptions, PretrainOptions
from lrc.cli import model_commands
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.pretrain import PretrainConfig

# Options with another name than the config field (option -> field).
RENAMED = {"dims": "spatial_dims", "superpixel_scale": "superpixels"}
# CLI parameters that are no training setting.
NOT_CONFIG = {"images", "out", "more", "train", "init", "device", "quiet", "as_json"}


def _plain(value: Any) -> Any:
    """Comparable form: enums as values, tuples as lists, super-pixel settings as their scale."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return getattr(value, "scale", value)


def _config_defaults(config: type) -> dict[str, Any]:
    made = config()
    return {f.name: _plain(getattr(made, f.name)) for f in fields(config)}


@pytest.mark.parametrize(("options", "config"), [(PretrainOptions, PretrainConfig), (FinetuneOptions, FinetuneConfig)])
def test_api_options_default_to_the_config(options: Any, config: type):
    expected = _config_defaults(config)
    checked = []
    for name, field in options.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if name == "features" and default is None:  # none: the config's
            continue
        assert _plain(default) == expected[RENAMED.get(name, name)], f"{options.__name__}.{name}"
        checked.append(name)
    assert len(checked) >= 10  # the loop did compare


@pytest.mark.parametrize(("command", "config"), [("pretrain", PretrainConfig), ("finetune", FinetuneConfig)])
def test_cli_options_default_to_the_config(command: str, config: type):
    expected = _config_defaults(config)
    parameters = inspect.signature(getattr(model_commands, command)).parameters
    checked = []
    for name, parameter in parameters.items():
        if name in NOT_CONFIG:
            continue
        default = parameter.default
        if name == "method":
            assert _plain(default) == expected["method"]
        elif name == "reinit" and default is None:  # none: no stage
            assert expected["reinit"] == []
        else:
            assert _plain(default) == expected[RENAMED.get(name, name)], f"lrc {command} --{name}"
        checked.append(name)
    assert len(checked) >= 10
