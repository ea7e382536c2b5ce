"""A finding of the fault matrix, reproduced without timing: a token rejected by many calls.

KIS hands back the *same* token value for 6 h after an issuance (kis-protocol.md,
"Access token"), so after one re-issuance the value of the token is no proof that
a rejection is stale. Five calls that all sent token T before it was refused must
cost one issuance, not five, each behind the issuance guard (60 s in production).
"""

from __future__ import annotations

import asyncio

from observer.config import TokenSettings
from observer.kis.token import AccessToken, TokenManager


class Clock:
    """Manual time: ``sleep`` advances it (the issuance guard) without waiting."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_five_rejections_of_one_token_cost_one_issuance() -> None:
    clock = Clock()
    issued: list[float] = []

    async def issue() -> AccessToken:
        issued.append(clock.now)
        return AccessToken("same-token-for-six-hours", clock.now + 86_400, clock.now)

    manager = TokenManager(
        issue, TokenSettings(min_issue_interval_seconds=60.0), clock=clock, sleep=clock.sleep
    )
    token = await manager.get()
    # Five calls sent ``token``; the server refused each (EGW00123) at about the same time.
    await asyncio.gather(*(manager.invalidate(token) for _ in range(5)))
    assert len(issued) == 2, f"{len(issued) - 1} re-issuances, {clock.now - issued[0]:.0f} s"


async def test_a_late_rejection_of_a_replaced_token_issues_nothing() -> None:
    clock = Clock()
    issued: list[float] = []

    async def issue() -> AccessToken:
        issued.append(clock.now)
        return AccessToken("same-token-for-six-hours", clock.now + 86_400, clock.now)

    manager = TokenManager(
        issue, TokenSettings(min_issue_interval_seconds=60.0), clock=clock, sleep=clock.sleep
    )
    token = await manager.get()
    generation = manager.generation
    await manager.invalidate(token, generation=generation)
    assert len(issued) == 2
    # A call that took the token before the re-issuance hears its refusal only now.
    clock.now += 120
    assert await manager.invalidate(token, generation=generation) == token
    assert len(issued) == 2
    # A refusal of the replacement itself is not stale: it is issued again.
    await manager.invalidate(token, generation=manager.generation)
    assert len(issued) == 3
