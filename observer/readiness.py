"""``Readiness``: the named conditions that must hold before Observer reports ready.

A domain object: Track A and the runtime set its conditions, the exporter
reads it for ``/readyz``, ``/api/summary`` and ``observer_system_ready``.
"""

from __future__ import annotations

from typing import Any


class Readiness:
    """Named conditions that must all hold before Observer reports ready.

    ``token`` (a valid access token) and ``first_sweep`` (one complete Track A
    sweep) are required by default; each starts unmet with its reason.
    """

    REQUIRED = ("token", "first_sweep")

    def __init__(self, required: tuple[str, ...] = REQUIRED) -> None:
        self._conditions: dict[str, tuple[bool, str]] = {
            name: (False, "not reached yet") for name in required
        }

    def set(self, condition: str, ok: bool, reason: str = "") -> None:
        self._conditions[condition] = (ok, reason or ("ok" if ok else "not met"))

    @property
    def ready(self) -> bool:
        return all(ok for ok, _ in self._conditions.values())

    def report(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "conditions": {
                name: {"ok": ok, "reason": reason}
                for name, (ok, reason) in sorted(self._conditions.items())
            },
        }
