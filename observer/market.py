"""KRX market hours (pure): regular session 09:00–15:30 KST on business days.

Business days are Monday to Friday minus holidays. Holidays come from the
broker's ``chk-holiday`` answer (``opnd_yn``, YYYYMMDD → open), fetched at most
once a day by Track A; days it has not answered for fall back to the weekday rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

KST = dt.timezone(dt.timedelta(hours=9), "KST")
OPEN = dt.time(9, 0)
CLOSE = dt.time(15, 30)


def kst(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=KST)


def kst_day(ts: float) -> str:
    """The Korean calendar day of ``ts`` as YYYYMMDD."""
    return kst(ts).strftime("%Y%m%d")


class MarketCalendar:
    """Is the KRX regular session open at a given Unix time, and when does it next open."""

    def __init__(self, open_days: Mapping[str, bool] | None = None) -> None:
        self._open_days: dict[str, bool] = dict(open_days or {})

    def update(self, open_days: Mapping[str, bool]) -> None:
        """Merge a ``chk-holiday`` answer (YYYYMMDD → open that day)."""
        self._open_days.update(open_days)

    def known(self, day: str) -> bool:
        return day in self._open_days

    def is_business_day(self, day: dt.date) -> bool:
        answer = self._open_days.get(day.strftime("%Y%m%d"))
        return answer if answer is not None else day.weekday() < 5

    def is_open(self, ts: float) -> bool:
        moment = kst(ts)
        if not self.is_business_day(moment.date()):
            return False
        return OPEN <= moment.time() < CLOSE

    def next_open(self, ts: float) -> float:
        """The next session start at or after ``ts`` (``ts`` itself while open)."""
        if self.is_open(ts):
            return ts
        moment = kst(ts)
        day = moment.date()
        if moment.time() >= OPEN:
            day += dt.timedelta(days=1)
        for _ in range(30):  # KRX never closes for a month
            if self.is_business_day(day):
                return dt.datetime.combine(day, OPEN, tzinfo=KST).timestamp()
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, OPEN, tzinfo=KST).timestamp()
