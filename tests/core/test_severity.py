"""Gap severity thresholds: low < medium_after <= medium < high_after <= high."""

from __future__ import annotations

from observer.config import GapSettings
from observer.records import Severity
from observer.severity import severity_for


def test_boundaries_belong_to_the_higher_level() -> None:
    gaps = GapSettings(medium_after_seconds=60.0, high_after_seconds=300.0)
    assert severity_for(0.0, gaps) is Severity.LOW
    assert severity_for(59.999, gaps) is Severity.LOW
    assert severity_for(60.0, gaps) is Severity.MEDIUM
    assert severity_for(299.9, gaps) is Severity.MEDIUM
    assert severity_for(300.0, gaps) is Severity.HIGH
    assert severity_for(86400.0, gaps) is Severity.HIGH
