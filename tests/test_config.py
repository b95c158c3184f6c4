"""The flat-YAML typed config loader: types, overrides, one-line errors and the saved round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from multiseg.config import (
    config_differences,
    config_from_dict,
    load_config,
    parse_overrides,
    read_yaml_mapping,
    save_config,
)
from multiseg.errors import MultisegError


@dataclass
class Example:
    model: str
    lr: float = 5e-4
    epochs: int = 150
    amp: bool = False
    head_mode: Literal["decoder", "last_conv"] = "decoder"
    datasets: list[str] = field(default_factory=lambda: ["cityscapes"])
    data_root: Path | None = None
    crop: tuple[int, ...] = (512, 1024)
    loss_weights: dict[str, float] = field(default_factory=dict)


def test_yaml_and_overrides(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model: erfnet\nlr: 1\ndatasets: [cityscapes, gtsdb]\ndata_root: /data\n")
    cfg = load_config(Example, cfg_file, ["epochs=3", "amp=true", "head_mode=last_conv", "crop=[64, 128]"])
    assert cfg.model == "erfnet"
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.epochs == 3 and cfg.amp is True and cfg.head_mode == "last_conv"
    assert cfg.datasets == ["cityscapes", "gtsdb"]
    assert cfg.data_root == Path("/data")
    assert cfg.crop == (64, 128)


def test_saved_config_repeats_the_run(tmp_path: Path) -> None:
    cfg = load_config(
        Example, None, ["model=enet", "loss_weights={cityscapes: 1, gtsdb: 0.5}", "data_root=/x"]
    )
    save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(Example, tmp_path / "out" / "config.yaml")
    assert again == cfg
    assert config_differences(cfg, again) == []
    changed = load_config(Example, tmp_path / "out" / "config.yaml", ["lr=0.1"])
    assert config_differences(cfg, changed) == ["lr: 0.0005 -> 0.1"]
    assert not list((tmp_path / "out").glob("*.tmp"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=x", "lrr=1"], "unknown config key 'lrr' in --set (did you mean 'lr'?)"),
        (
            ["model=x", "epochs=ten"],
            "config key 'epochs' in defaults + --set: expected an integer, got 'ten'",
        ),
        (["model=x", "amp=2"], "config key 'amp' in defaults + --set: expected true or false, got 2"),
        (["model=x", "head_mode=both"], "expected one of 'decoder' | 'last_conv', got 'both'"),
        (["model=x", "datasets=cityscapes"], "config key 'datasets' in defaults + --set: expected a list"),
        ([], "missing required config key 'model'"),
        (["model"], "--set expects key=value, got 'model'"),
    ],
)
def test_bad_values_are_one_line_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(MultisegError) as err:
        load_config(Example, None, overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(MultisegError, match="does not exist"):
        read_yaml_mapping(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: erfnet\n  lr: [1\n")
    with pytest.raises(MultisegError, match=r"cannot parse config file .*bad.yaml line \d+"):
        read_yaml_mapping(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(MultisegError, match="must hold a mapping"):
        read_yaml_mapping(listy)
    typo = tmp_path / "typo.yaml"
    typo.write_text("model: erfnet\nepoch: 3\n")
    with pytest.raises(
        MultisegError, match=r"unknown config key 'epoch' in .*typo.yaml \(did you mean 'epochs'\?\)"
    ):
        load_config(Example, typo)


def test_exponent_floats_without_a_dot() -> None:
    # PyYAML reads 5e-4 as a string; a float field must still take it, from a file or --set.
    assert load_config(Example, None, ["model=x", "lr=5e-4"]).lr == 5e-4
    with pytest.raises(MultisegError, match="expected a number, got 'fast'"):
        load_config(Example, None, ["model=x", "lr=fast"])


def test_override_values_are_yaml() -> None:
    assert parse_overrides(["a=0.5", "b=[1, 2]", "c=hello", "d=", "e=null"]) == {
        "a": 0.5,
        "b": [1, 2],
        "c": "hello",
        "d": None,
        "e": None,
    }


def test_validation_in_post_init_is_reported() -> None:
    @dataclass
    class Checked:
        batch_size: int = 6

        def __post_init__(self) -> None:
            if self.batch_size < 1:
                raise ValueError("batch_size must be >= 1")

    with pytest.raises(MultisegError, match="invalid config in cfg: batch_size must be >= 1"):
        config_from_dict(Checked, {"batch_size": 0}, "cfg")
