"""The simulator's KRX calendar: Korean time, business days, holidays, session hours (pure).

Regular session 09:00–15:30 KST on business days (``kis-protocol.md`` "Market
hours"); ``always_open`` makes every calendar day a business day with a
00:00–24:00 session, for demos and tests. The holiday list is the simulator's
own approximation of the KRX closing days; ``chk-holiday`` answers from it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from observer.market import KST

OPEN_SECONDS = 9 * 3600  # 09:00
CLOSE_SECONDS = 15 * 3600 + 30 * 60  # 15:30
DAY_SECONDS = 86400

_HOLIDAYS_TEXT = """
2025-01-01 2025-01-27 2025-01-28 2025-01-29 2025-01-30 2025-03-03 2025-05-01 2025-05-05
2025-05-06 2025-06-03 2025-06-06 2025-08-15 2025-10-03 2025-10-06 2025-10-07 2025-10-08
2025-10-09 2025-12-25 2025-12-31
2026-01-01 2026-02-16 2026-02-17 2026-02-18 2026-03-02 2026-05-01 2026-05-05 2026-05-25
2026-06-03 2026-08-17 2026-09-24 2026-09-25 2026-10-05 2026-10-09 2026-12-25 2026-12-31
2027-01-01 2027-02-08 2027-02-09 2027-03-01 2027-05-05 2027-05-13 2027-08-16 2027-09-14
2027-09-15 2027-09-16 2027-10-04 2027-10-11 2027-12-27 2027-12-31
"""
HOLIDAYS: frozenset[date] = frozenset(date.fromisoformat(text) for text in _HOLIDAYS_TEXT.split())


def kst(ts: float) -> datetime:
    """Unix seconds as an aware Korean-time datetime."""
    return datetime.fromtimestamp(ts, tz=KST)


def kst_date(ts: float) -> date:
    return kst(ts).date()


def hhmmss(ts: float) -> str:
    return kst(ts).strftime("%H%M%S")


# The days the calendar answers for (``chk-holiday`` rows run HOLIDAY_ROWS days past
# the first): far inside ``date``'s own range, so no day arithmetic can overflow.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)


def yyyymmdd(day: date) -> str:
    # Not strftime: glibc writes year 1 as "1", not "0001".
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def parse_business_date(text: str) -> date | None:
    """``YYYYMMDD`` between FIRST_DAY and LAST_DAY, or None (malformed, absent or out of range)."""
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        return None
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def midnight(day: date) -> float:
    """Unix seconds of 00:00 KST on ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=KST).timestamp()


def parse_kst(text: str) -> float:
    """``YYYY-MM-DD HH:MM:SS`` (or with ``T``) in Korean time → Unix seconds."""
    return datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=KST).timestamp()


def format_kst(ts: float) -> str:
    """Unix seconds → ``YYYY-MM-DD HH:MM:SS`` Korean time (``access_token_token_expired``)."""
    return kst(ts).strftime("%Y-%m-%d %H:%M:%S")


class Calendar:
    """Business days and session bounds, regular (KRX) or ``always_open``."""

    def __init__(self, *, always_open: bool) -> None:
        self.always_open = always_open

    def is_business_day(self, day: date) -> bool:
        if self.always_open:
            return True
        return day.weekday() < 5 and day not in HOLIDAYS

    def session(self, day: date) -> tuple[float, float]:
        """Unix seconds (start, end) of the trading session on ``day`` (a business day)."""
        base = midnight(day)
        if self.always_open:
            return base, base + DAY_SECONDS
        return base + OPEN_SECONDS, base + CLOSE_SECONDS

    def next_business_day(self, day: date) -> date:
        candidate = day + timedelta(days=1)
        while not self.is_business_day(candidate):
            candidate += timedelta(days=1)
        return candidate

    def is_open(self, ts: float) -> bool:
        day = kst_date(ts)
        if not self.is_business_day(day):
            return False
        start, end = self.session(day)
        return start <= ts < end

    def holiday_rows(self, first: date, count: int) -> list[dict[str, str]]:
        """``chk-holiday`` (CTCA0903R) ``output`` rows from ``first`` on, one per day."""
        rows = []
        for offset in range(count):
            day = first + timedelta(days=offset)
            flag = "Y" if self.is_business_day(day) else "N"
            rows.append(
                {
                    "bass_dt": yyyymmdd(day),
                    "wday_dvsn_cd": f"{(day.isoweekday() % 7) + 1:02d}",  # 01 Sunday … 07 Saturday
                    "bzdy_yn": flag,
                    "tr_day_yn": flag,
                    "opnd_yn": flag,
                    "sttl_day_yn": flag,
                }
            )
        return rows
