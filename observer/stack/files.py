"""Every generated file of the stack, by relative path under ``compose/``.

A registry of renderers, each returning ``{relative path: text}``: the stack's
own (compose, Grafana provisioning), the dashboards and the rules packages';
``prometheus.yml`` is built last because it lists the rule files the others
wrote. ``observer generate`` writes the result, adapted by a stack configuration
(``observer.stack.config``) when one is given; the native runner and the
end-to-end tests use the ``e2e`` profile of the same builders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import dashboards
import rules
from observer.errors import ObserverError
from observer.stack import adapt, compose, grafana, layout, prometheus
from observer.stack.config import StackConfig
from rules.render import render_rule_files
from rules.runbook import render_runbook

RUNBOOK_PATH = "runbook.md"

Profile = Literal["default", "e2e"]
Renderer = Callable[[], dict[str, str]]


class GenerateError(ObserverError):
    """Two renderers claim one path, or a path would leave the output folder."""


def _rules(profile: Profile, webhook_url: str | None) -> dict[str, str]:
    if webhook_url is None:
        return rules.render_files(profile)
    return rules.render_files(profile, webhook_url=webhook_url)


def _configured(config: StackConfig, out_dir: Path | None) -> list[Renderer]:
    """The default profile's renderers, adapted by ``config``."""
    params = adapt.rule_params(config)
    profile = adapt.prometheus_profile(config)
    compose_params = adapt.compose_params(config, out_dir)
    return [
        lambda: render_rule_files(params),
        lambda: {RUNBOOK_PATH: render_runbook(params)},
        lambda: compose.render_files(compose_params),
        lambda: adapt.cluster_targets(config),
        lambda: grafana.render_files(profile),
        lambda: dashboards.render_files(adapt.dashboard_params(config)),
    ]


def render_files(
    profile: Profile = "default",
    *,
    webhook_url: str | None = None,
    config: StackConfig | None = None,
    out_dir: Path | None = None,
) -> dict[str, str]:
    """Every file of ``profile``, sorted by path; GenerateError on a path clash.

    The default profile follows ``config`` (None: the defaults) and writes the compose
    build context as seen from ``out_dir`` (None: the committed ``compose/``); the e2e
    profile is the built-in stack with alerts sent to ``webhook_url``. ConfigError when
    the configuration names an unknown alert or an impossible value.
    """
    if profile == "default":
        config = config or StackConfig()
        found = _configured(config, out_dir)
        prometheus_profile = adapt.prometheus_profile(config)
    else:
        found = [lambda: _rules(profile, webhook_url)]
        prometheus_profile = prometheus.E2E
    files: dict[str, str] = {}
    for render in found:
        for path, text in render().items():
            _check_path(path)
            if path in files:
                raise GenerateError(f"two renderers write {path}")
            files[path] = text
    files[layout.PROMETHEUS_CONFIG] = prometheus.render(prometheus_profile, files)
    return dict(sorted(files.items()))


def _check_path(path: str) -> None:
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise GenerateError(f"a generated path must stay inside the output folder: {path!r}")


def write_files(files: dict[str, str], out_dir: Path) -> list[Path]:
    """Write ``files`` under ``out_dir`` (creating folders); returns the paths written.

    Each file is written whole to a temporary sibling and renamed, so a reader
    never sees half a file. Files already under ``out_dir`` that are not in
    ``files`` are left alone.
    """
    written: list[Path] = []
    for relative, text in files.items():
        _check_path(relative)
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)
        written.append(target)
    return written


def read_files(directory: Path) -> dict[str, str]:
    """Every regular file under ``directory`` as ``{relative posix path: text}``."""
    return {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
