"""The API's training options and the ``lrc finetune`` / ``lrc pretrain`` options are the configs' declaration:
the same names, defaults and bounds, nothing more; a setting for experiments is offered by neither."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from app.api.options import FinetuneOptions, PretrainOptions
from lrc.cli import app
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.pretrain_config import PretrainConfig
from lrc.train.setting import Setting, check_offered, from_options, library_only, offered

SURFACES = [(FinetuneOptions, FinetuneConfig, "finetune"), (PretrainOptions, PretrainConfig, "pretrain")]
OWN = {"finetune": {"train", "out", "init"}, "pretrain": {"images", "out", "more"}}  # no training setting
SHARED = {"device", "quiet", "as_json"}
RESEARCH = {  # the research found no gain in these (docs/research/REPORT.md): the library and bench/ keep them
    FinetuneConfig: {"anchor_weight", "shrink", "perturb", "reinit", "transfer", "warmup_steps"},
    PretrainConfig: {"decorrelation_weight", "local_negatives", "negative_margin", "momentum", "superpixels"},
}
JSON_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def _command(name: str) -> Any:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _declared(config: type, surface: str) -> dict[str, tuple[dataclasses.Field[Any], Setting]]:
    return {field.name: (field, declared) for field, declared, _ in offered(config, surface)}  # type: ignore[arg-type]


@pytest.mark.parametrize(("options", "config", "_"), SURFACES)
def test_api_options_are_the_declared_ones_in_order_with_defaults_and_bounds(options: Any, config: type, _: str):
    declared = _declared(config, "api")
    schema = options.model_json_schema()
    assert list(schema["properties"]) == list(declared)
    assert schema["additionalProperties"] is False
    for name, (field, setting) in declared.items():
        prop = schema["properties"][name]
        assert prop.get("description") == setting.description, name
        expected = None if setting.none_default else field.default
        default = prop["default"]
        assert (tuple(default) if isinstance(default, list) else default) == expected, name
        checked = prop["anyOf"][0] if "anyOf" in prop else prop  # the number or list of an optional one
        checked = checked["items"] if setting.length else checked  # a list's bounds are its items'
        for key, json_key in JSON_BOUNDS.items():
            assert checked.get(json_key) == getattr(setting, key), (name, key)
        assert checked.get("multipleOf") == setting.multiple_of, name
    assert len(declared) >= 10


@pytest.mark.parametrize(("_", "config", "command"), SURFACES)
def test_cli_options_are_the_declared_ones_with_flags_defaults_and_help(_: Any, config: type, command: str):
    declared = _declared(config, "cli")
    params = {p.name: p for p in _command(command).params}
    assert set(params) == set(declared) | OWN[command] | SHARED
    for name, (field, setting) in declared.items():
        param = params[name]
        assert param.opts[0] == (setting.flag or "--" + name.replace("_", "-"))
        assert param.help == setting.cli
        default = param.default.value if hasattr(param.default, "value") else param.default
        assert (tuple(default) if isinstance(default, list) else default) == field.default, name
    assert len(declared) >= 10


@pytest.mark.parametrize("config", [FinetuneConfig, PretrainConfig])
def test_settings_the_research_found_no_gain_in_are_offered_by_neither(config: type):
    assert RESEARCH[config] <= set(library_only(config, "api")) & set(library_only(config, "cli"))
    made = config()
    for name in RESEARCH[config]:  # still the library's: bench/ runs them
        assert hasattr(made, name)


@pytest.mark.parametrize(
    ("options", "name", "value"),
    [
        (FinetuneOptions, "anchor_weight", 1.0),
        (FinetuneOptions, "reinit", ["down_4"]),
        (PretrainOptions, "momentum", 0.99),
    ],
)
def test_the_api_refuses_a_setting_for_experiments_by_name(options: Any, name: str, value: Any):
    with pytest.raises(ValidationError, match=f"{name}: a setting for experiments, not offered by the API"):
        options.model_validate({name: value})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        options.model_validate({"no_such_setting": 1})


def _beyond(setting: Setting) -> tuple[float, str] | None:
    """A value just outside the setting's bound and the bound as the messages print it."""
    size = setting.multiple_of or 1  # a step that keeps a multiple a multiple
    for key, step in (("le", size), ("lt", 0), ("ge", -size), ("gt", 0)):
        bound = getattr(setting, key)
        if bound is not None:
            text = str(int(bound)) if float(bound).is_integer() else f"{bound:g}"
            return bound + step, text
    return None


BOUNDED = [
    (options, config, command, name, *beyond)
    for options, config, command in SURFACES
    for name, (field, setting) in _declared(config, "cli").items()
    if (beyond := _beyond(setting)) is not None
    and not setting.length
    and (command, name) != ("pretrain", "view_size")  # lrc pretrain cuts a view larger than the canvas to it
]


@pytest.mark.parametrize(("options", "config", "command", "name", "value", "bound"), BOUNDED)
def test_a_value_out_of_range_is_refused_by_both_with_the_bound(
    options: Any, config: type, command: str, name: str, value: float, bound: str, tmp_path
):
    declared = _declared(config, "cli")[name][1]
    number = int(value) if isinstance(declared.ge or declared.le or declared.gt or declared.lt, int) else value
    if name in options.model_fields:
        with pytest.raises(ValidationError, match=rf"{name}\n.*(than|to) {bound}"):
            options.model_validate({name: number})
    own = ["--train", "m.json"] if command == "finetune" else ["--images", "scan.nii.gz"]
    flag = declared.flag or "--" + name.replace("_", "-")
    result = CliRunner().invoke(app, [command, *own, "--out", str(tmp_path / "m"), flag, str(number)])
    assert result.exit_code == 2, result.output
    assert f"{name} must be" in result.output
    assert bound in result.output
    assert not (tmp_path / "m").exists()


def test_from_options_fills_defaults_and_refuses_unknown_names():
    config = from_options(FinetuneConfig, {"features": [8, 8, 16, 16, 32, 8], "tile": None, "steps": 3})
    assert (config.features, config.tile, config.steps, config.patch) == ((8, 8, 16, 16, 32, 8), None, 3, 128)
    assert from_options(FinetuneConfig, {"anchor_weight": 1.0}).anchor_weight == 1.0  # a queued job's, still run
    with pytest.raises(ValueError, match="FinetuneConfig has no setting bogus"):
        from_options(FinetuneConfig, {"bogus": 1})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"patch": 40}, "patch must be a multiple of 16, got 40"),
        ({"spatial_dims": 4}, "spatial_dims must be one of 2, 3, got 4"),
        ({"tile": "tiles"}, "tile must be one of slice, patch, got 'tiles'"),
        ({"features": (8, 8, 16, 16, 32, 2000)}, "features must be <= 1024, got 2000"),
        ({"validation_fraction": 1.0}, "validation_fraction must be < 1, got 1.0"),
    ],
)
def test_check_offered_names_the_setting_and_its_bound(values: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        check_offered(FinetuneConfig, "api", values)
    check_offered(FinetuneConfig, "api", {"tile": 96, "patch": 64, "spatial_dims": 3})  # within: no error
