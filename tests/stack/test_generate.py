"""``observer generate`` is deterministic and the committed ``compose/`` is what it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from observer import cli
from observer.stack import files as stack_files
from observer.stack import layout
from tests.stack.conftest import COMMITTED, REPO


def test_committed_compose_folder_is_exactly_what_generate_writes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli.main(["generate", "--out", str(out)]) == 0
    fresh = stack_files.read_files(out)
    committed = stack_files.read_files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "run `make generate` and commit compose/"
    # Outside the source tree the build context is its absolute path; in compose/, "..".
    compose_text = fresh[layout.COMPOSE_FILE]
    assert f"context: {REPO}\n" in compose_text
    fresh[layout.COMPOSE_FILE] = compose_text.replace(f"context: {REPO}\n", "context: ..\n")
    assert stack_files.render_files(out_dir=COMMITTED) == committed
    changed = [path for path in fresh if fresh[path] != committed[path]]
    assert changed == [], f"run `make generate` and commit compose/: {changed} differ"


def test_rendering_twice_gives_identical_files() -> None:
    assert stack_files.render_files() == stack_files.render_files()


def test_generate_prints_every_path_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["generate", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / layout.COMPOSE_FILE) in printed
    assert str(tmp_path / layout.PROMETHEUS_CONFIG) in printed


def test_generate_leaves_no_temporary_files(tmp_path: Path) -> None:
    stack_files.write_files(stack_files.render_files(), tmp_path)
    leftovers = [path for path in tmp_path.rglob(".*.tmp")]
    assert leftovers == []


@pytest.mark.parametrize("path", ["../escape.yml", "/etc/passwd", ""])
def test_paths_outside_the_output_folder_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(stack_files.GenerateError):
        stack_files.write_files({path: "x"}, tmp_path)


def test_prometheus_config_lists_only_rule_files_not_their_tests() -> None:
    from observer.stack import prometheus

    paths = [
        "prometheus/rules/observer.rules.yml",
        "prometheus/rules/observer.rules.test.yml",
        "alertmanager/alertmanager.yml",
    ]
    assert prometheus.rule_paths(paths) == ["rules/observer.rules.yml"]


@pytest.mark.parametrize(
    "document",
    [{}, {"cluster": {"observers": 3}, "victoriametrics": {"enabled": True}}],
    ids=["defaults", "cluster-and-victoriametrics"],
)
def test_libyaml_and_pure_python_emit_the_same_files(
    document: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated YAML goes through libyaml's emitter when PyYAML has it (ten times faster);
    the text must be what the pure-Python emitter writes, byte for byte."""
    import yaml

    from observer import config_yaml
    from observer.stack import adapt
    from observer.stack.config import StackConfig, dump_config

    assert config_yaml._DUMPER is yaml.CSafeDumper  # built with libyaml: else nothing to compare
    config = StackConfig.model_validate(document)
    fast = stack_files.render_files(config=config), dump_config(config, adapt.default_rules())
    monkeypatch.setattr(config_yaml, "_DUMPER", yaml.SafeDumper)
    pure = stack_files.render_files(config=config), dump_config(config, adapt.default_rules())
    assert fast == pure
