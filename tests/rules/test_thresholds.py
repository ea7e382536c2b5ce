"""Every configurable threshold, at its minimum, its maximum and in between, gives rules
whose generated promtool tests pass: the cases follow the threshold, the healthy ones too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rules.params import RuleOverride, RuleParams
from rules.render import RULES_PATH, TESTS_PATH, render_rule_files
from rules.thresholds import THRESHOLDS, p99_bucket
from tests.stack.conftest import requires

BURN = "TrackAFreshnessBudgetBurn"


def _overrides(pick: str) -> tuple[tuple[str, RuleOverride], ...]:
    found: list[tuple[str, RuleOverride]] = []
    for name, bounds in THRESHOLDS.items():
        if pick == "minimum":
            value = bounds.minimum
        elif pick == "maximum":
            value = bounds.maximum
        else:
            value = (bounds.minimum + min(bounds.maximum, bounds.default * 3 + 1)) / 2
        if name == BURN:  # the warning burn rate stays below the critical one
            found.append((f"{name}:critical", RuleOverride(threshold=max(2.0, value))))
            found.append((f"{name}:warning", RuleOverride(threshold=max(1.0, value / 2.5))))
        else:
            found.append((name, RuleOverride(threshold=value)))
    return tuple(found)


@requires("promtool")
@pytest.mark.parametrize("pick", ["minimum", "maximum", "between"])
@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_promtool_tests_pass_at_every_threshold(pick: str, tmp_path: Path) -> None:
    params = RuleParams(overrides=_overrides(pick))
    files = render_rule_files(params)
    for relative in (RULES_PATH, TESTS_PATH):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(files[relative], encoding="utf-8")
    done = subprocess.run(
        ["promtool", "test", "rules", Path(TESTS_PATH).name],
        cwd=tmp_path / Path(TESTS_PATH).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name, override in params.overrides:
        assert f"> {override.threshold:g}" in files[RULES_PATH] or (
            f"< {override.threshold:g}" in files[RULES_PATH]
            or name.startswith(BURN)
            or name == "UniverseSizeAnomaly"
        ), name


def test_every_threshold_is_in_the_rules_it_names() -> None:
    for name, bounds in THRESHOLDS.items():
        if name == BURN:
            continue
        params = RuleParams(overrides=((name, RuleOverride(threshold=bounds.maximum)),))
        text = render_rule_files(params)[RULES_PATH]
        block = text[text.index(f"alert: {name}\n") :].split("- alert:")[0]
        assert f"{bounds.maximum:g}" in block, name


def test_p99_bucket_picks_the_lowest_bucket_above_the_threshold() -> None:
    assert p99_bucket((0.5, 1.0, 2.0, 5.0), 1.0) == (1.0, 1.99)
    assert p99_bucket((0.5, 1.0, 2.0, 5.0), 1.995)[0] == 2.0
    with pytest.raises(ValueError, match="no bucket"):
        p99_bucket((0.5, 1.0), 1.0)
