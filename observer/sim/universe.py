"""The simulated instruments: seeded codes, names, prices and activity; listings by day (pure).

Share codes are 6 digits ending in 0 (KRX common shares), 40 % KOSPI and 60 %
KOSDAQ as on the real exchange; base prices lie on the KRX tick grid; trade
rates are heavy-tailed (a few busy names, many quiet ones). Every simulated
calendar day after the first may delist one share and list a new one, drawn
from the seed, so the master files change over days as the real ones do.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from observer.kis.master import Market, MasterRow, isin_for, render_master

_PREFIXES = (
    "한빛",
    "대성",
    "삼진",
    "동원",
    "세아",
    "우리",
    "신영",
    "태평",
    "금호",
    "현대",
    "한국",
    "대한",
    "성우",
    "진흥",
    "미래",
    "청우",
    "보광",
    "제일",
    "동양",
    "유니",
    "에이스",
    "코리아",
    "케이",
    "엘에스",
    "티엠",
    "하나",
    "서울",
    "부산",
    "가온",
    "누리",
    "다온",
    "라온",
    "새롬",
    "아라",
    "온누리",
    "해솔",
)
_INFIXES = ("", "글로벌", "디지털", "그린", "메디", "스마트", "월드", "퍼스트")
_SUFFIXES = (
    "전자",
    "바이오",
    "화학",
    "제약",
    "건설",
    "중공업",
    "물산",
    "소재",
    "테크",
    "시스템",
    "반도체",
    "에너지",
    "푸드",
    "통신",
    "로직스",
    "정밀",
    "산업",
    "홀딩스",
    "엔터",
    "게임즈",
    "머티리얼즈",
    "네트웍스",
    "이노텍",
    "솔루션",
)


def tick_size(price: int) -> int:
    """KRX tick for a share price in won (unified KOSPI/KOSDAQ grid since 2023)."""
    for bound, tick in ((2_000, 1), (5_000, 5), (20_000, 10), (50_000, 50), (200_000, 100)):
        if price < bound:
            return tick
    return 500 if price < 500_000 else 1_000


def snap_down(price: float) -> int:
    """The highest grid price at or below ``price`` (at least 1)."""
    value = max(1, int(price))
    return value - value % tick_size(value)


def snap_up(price: float) -> int:
    value = snap_down(price)
    return value if value >= price else value + tick_size(value)


def tick_up(price: int) -> int:
    return price + tick_size(price)


def tick_down(price: int) -> int:
    return max(1, price - tick_size(price - 1))


@dataclass(frozen=True, slots=True)
class Instrument:
    """A listed share and the constants of its simulated trading."""

    code: str
    name: str
    market: Market
    base_price: int  # won, on the tick grid: the first simulated day's base price
    trades_per_second: float  # mean arrival rate outside bursts
    shares_listed: int
    face_value: int
    eps: int
    bps: int

    @property
    def isin(self) -> str:
        return isin_for(self.code)


def _instrument(rng: random.Random, code: str, name: str) -> Instrument:
    market: Market = "kospi" if rng.random() < 0.4 else "kosdaq"
    price = snap_down(math.exp(rng.uniform(math.log(1_200), math.log(450_000))))
    rate = min(2.0, 0.01 * (1.0 / max(rng.random(), 1e-6)) ** 0.8)
    shares = int(math.exp(rng.uniform(math.log(5e6), math.log(6e8))))
    eps = int(price / rng.uniform(5, 40)) * (1 if rng.random() < 0.85 else -1)
    return Instrument(
        code=code,
        name=name,
        market=market,
        base_price=price,
        trades_per_second=rate,
        shares_listed=shares,
        face_value=rng.choice((100, 500, 1000, 5000)),
        eps=eps,
        bps=int(price / rng.uniform(0.4, 3.0)),
    )


# Well-known KRX shares with their real codes and names, so that the codes people try
# first (005930) quote real prices. Prices are illustrative levels on the tick grid,
# not quotes of any day; the busiest trade 2 times a second (the model's ceiling).
# (code, name, market, base price in won, trades/s, shares listed, face value)
_WELL_KNOWN: tuple[tuple[str, str, Market, int, float, int, int], ...] = (
    ("005930", "삼성전자", "kospi", 71_500, 2.0, 5_969_782_550, 100),
    ("000660", "SK하이닉스", "kospi", 178_000, 2.0, 728_002_365, 5000),
    ("373220", "LG에너지솔루션", "kospi", 405_000, 1.5, 234_000_000, 500),
    ("207940", "삼성바이오로직스", "kospi", 820_000, 1.0, 71_174_000, 2500),
    ("005380", "현대차", "kospi", 235_000, 1.5, 209_416_191, 5000),
    ("000270", "기아", "kospi", 95_000, 1.5, 397_672_632, 5000),
    ("068270", "셀트리온", "kospi", 180_000, 1.5, 216_947_863, 1000),
    ("035420", "NAVER", "kospi", 190_000, 1.5, 158_437_008, 100),
    ("005490", "POSCO홀딩스", "kospi", 380_000, 1.0, 84_571_230, 5000),
    ("051910", "LG화학", "kospi", 350_000, 1.0, 70_592_343, 5000),
    ("006400", "삼성SDI", "kospi", 400_000, 1.0, 68_764_530, 5000),
    ("105560", "KB금융", "kospi", 80_000, 1.0, 393_528_423, 5000),
    ("055550", "신한지주", "kospi", 50_000, 1.0, 509_633_366, 5000),
    ("035720", "카카오", "kospi", 40_000, 1.5, 444_000_000, 100),
    ("012330", "현대모비스", "kospi", 230_000, 1.0, 94_000_000, 5000),
    ("028260", "삼성물산", "kospi", 130_000, 1.0, 186_887_081, 100),
    ("066570", "LG전자", "kospi", 95_000, 1.0, 163_647_814, 5000),
    ("017670", "SK텔레콤", "kospi", 52_000, 1.0, 214_790_053, 100),
    ("015760", "한국전력", "kospi", 20_000, 1.0, 641_964_077, 5000),
    ("003550", "LG", "kospi", 80_000, 1.0, 157_300_000, 5000),
    ("247540", "에코프로비엠", "kosdaq", 250_000, 1.5, 97_801_344, 500),
    ("086520", "에코프로", "kosdaq", 95_000, 1.5, 133_138_340, 100),
    ("196170", "알테오젠", "kosdaq", 300_000, 1.0, 53_000_000, 500),
    ("028300", "HLB", "kosdaq", 70_000, 1.0, 130_000_000, 500),
    ("263750", "펄어비스", "kosdaq", 40_000, 1.0, 64_000_000, 100),
    ("293490", "카카오게임즈", "kosdaq", 22_000, 1.0, 82_000_000, 100),
)
WELL_KNOWN_MIN_SYMBOLS = 500  # smaller universes (most tests) stay wholly seeded


def well_known_shares() -> tuple[Instrument, ...]:
    """The well-known shares every universe of ``WELL_KNOWN_MIN_SYMBOLS`` or more lists."""
    return tuple(
        Instrument(
            code=code,
            name=name,
            market=market,
            base_price=snap_down(price),
            trades_per_second=rate,
            shares_listed=shares,
            face_value=face,
            eps=price // 15,
            bps=int(price / 1.1),
        )
        for code, name, market, price, rate, shares, face in _WELL_KNOWN
    )


class Universe:
    """Every instrument the seed defines, and which are listed on which simulated day.

    A universe of ``WELL_KNOWN_MIN_SYMBOLS`` symbols or more lists the well-known
    shares (``well_known_shares()``: real codes and names, never delisted) and
    seeded ones for the rest; a smaller one is seeded only.
    """

    def __init__(self, *, seed: int, count: int, first_day: date) -> None:
        self.seed = seed
        self.first_day = first_day
        self._rng = random.Random(f"{seed}:universe")
        self._codes_used: set[str] = set()
        self._names_used: set[str] = set()
        self.instruments: dict[str, Instrument] = {}
        self._first_listed: dict[str, date] = {}
        known = well_known_shares() if count >= WELL_KNOWN_MIN_SYMBOLS else ()
        self.well_known = frozenset(item.code for item in known)
        self._codes_used.update(self.well_known)
        self._names_used.update(item.name for item in known)
        for item in known:
            self.instruments[item.code] = item
            self._first_listed[item.code] = first_day
        initial = [*known]
        initial += [self._new_instrument(first_day) for _ in range(count - len(known))]
        self._listed_by_day: dict[date, tuple[str, ...]] = {
            first_day: tuple(sorted(item.code for item in initial))
        }
        self._listed_sets: dict[date, frozenset[str]] = {}
        self.other_rows = self._non_share_rows()

    def _new_code(self) -> str:
        while True:
            code = f"{self._rng.randrange(2, 50_000) * 10:06d}"
            if code not in self._codes_used:
                self._codes_used.add(code)
                return code

    def _new_name(self) -> str:
        while True:
            parts = (
                self._rng.choice(_PREFIXES),
                self._rng.choice(_INFIXES),
                self._rng.choice(_SUFFIXES),
            )
            name = "".join(parts)
            if name not in self._names_used:
                self._names_used.add(name)
                return name

    def _new_instrument(self, day: date) -> Instrument:
        code = self._new_code()
        item = _instrument(random.Random(f"{self.seed}:instrument:{code}"), code, self._new_name())
        self.instruments[code] = item
        self._first_listed[code] = day
        return item

    def liquid_symbol(self, day: date) -> str:
        """A busy listed share to try first: 005930 when listed, else the busiest."""
        listed = self.listed_on(day)
        if "005930" in listed:
            return "005930"
        return max(listed, key=lambda code: (self.instruments[code].trades_per_second, code))

    def first_listed(self, code: str) -> date:
        """The first simulated day on which ``code`` trades."""
        return self._first_listed[code]

    def _non_share_rows(self) -> list[MasterRow]:
        """A few ETF (EF) and REIT (RT) lines: the client must keep only group ST."""
        rows = []
        for index in range(max(2, len(self.instruments) // 50)):
            code = f"{self._rng.randrange(50_000, 99_999) * 10 + 5:06d}"[-6:]
            group, name = ("EF", f"시뮬 ETF {index}") if index % 3 else ("RT", f"시뮬리츠{index}")
            market: Market = "kospi" if index % 2 == 0 else "kosdaq"
            if code not in self._codes_used:
                self._codes_used.add(code)
                rows.append(MasterRow(code, isin_for(code), name, group, market))
        return rows

    def listed_on(self, day: date) -> tuple[str, ...]:
        """Codes of the shares listed on ``day`` (sorted); before the first day: the first day's."""
        if day <= self.first_day:
            return self._listed_by_day[self.first_day]
        latest = max(self._listed_by_day)
        while latest < day:  # replay day by day: the seed decides each day's changes
            latest += timedelta(days=1)
            rng = random.Random(f"{self.seed}:listings:{latest.isoformat()}")
            codes = set(self._listed_by_day[latest - timedelta(days=1)])
            delistable = sorted(codes - self.well_known)
            if rng.random() < 0.3 and len(codes) > 1 and delistable:
                codes.discard(rng.choice(delistable))
            if rng.random() < 0.3:
                codes.add(self._new_instrument(latest).code)
            self._listed_by_day[latest] = tuple(sorted(codes))
        return self._listed_by_day[day]

    def is_listed(self, code: str, day: date) -> bool:
        if day not in self._listed_sets:
            if len(self._listed_sets) > 16:  # only recent days are asked for again
                self._listed_sets.pop(min(self._listed_sets))
            self._listed_sets[day] = frozenset(self.listed_on(day))
        return code in self._listed_sets[day]

    def master_rows(self, day: date, market: Market) -> list[MasterRow]:
        rows = [
            MasterRow(item.code, item.isin, item.name, "ST", item.market)
            for item in (self.instruments[code] for code in self.listed_on(day))
            if item.market == market
        ]
        rows.extend(row for row in self.other_rows if row.market == market)
        return rows

    def master_file(self, day: date, market: Market, base_prices: dict[str, int]) -> bytes:
        """The ``.mst`` bytes of ``market`` for ``day`` (zip them with ``zip_master``)."""
        return render_master(self.master_rows(day, market), market, base_prices=base_prices)
