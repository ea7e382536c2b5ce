"""Gap severity by length: the one rule Track A and Track B gap detection share.

``low`` below ``gaps.medium_after_seconds``; ``medium`` from it up to (not
including) ``gaps.high_after_seconds``; ``high`` from there on. With the
defaults (60 s, 300 s): a 59.9 s gap is low, 60 s is medium, 300 s is high.
"""

from __future__ import annotations

from observer.config import GapSettings
from observer.records import Severity


def severity_for(duration_seconds: float, gaps: GapSettings) -> Severity:
    """The severity of a gap lasting ``duration_seconds`` under ``gaps`` thresholds."""
    if duration_seconds >= gaps.high_after_seconds:
        return Severity.HIGH
    if duration_seconds >= gaps.medium_after_seconds:
        return Severity.MEDIUM
    return Severity.LOW
