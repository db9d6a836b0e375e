"""How the local exchange charges its fees, by the rules of real exchanges:

* `quote`: every fee in the quote currency (a buy pays notional + fee, a sell receives
  notional - fee), as many exchanges do and as the backtester models it;
* `base`: Binance's default: the fee of a buy is taken from the base asset received (buy
  1 BTC, hold 0.999), a sell's from the quote received;
* `third`: in a third currency (BNB on Binance, with its 25% discount) valued at that
  currency's price, while the account holds enough of it; otherwise as `base`, as Binance
  falls back when the BNB balance runs out.

Fees are rounded to 8 decimals, half up, as Binance's commission fields are.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

QUANTUM = Decimal("0.00000001")


class FeeMode(StrEnum):
    QUOTE = "quote"
    BASE = "base"
    THIRD = "third"


@dataclass(frozen=True)
class FeeModel:
    mode: FeeMode = FeeMode.QUOTE
    rate: Decimal = Decimal("0.001")
    asset: str = "BNB"  # the third currency
    asset_price: Decimal = Decimal("300")  # its price in the quote currency
    discount: Decimal = Decimal("0.25")  # paying in the third currency costs this much less

    def charge(self, buying: bool, qty: Decimal, notional: Decimal, base: str, quote: str,
               third_free: Decimal) -> tuple[Decimal, str]:
        """(commission, commission asset) of one trade; `third_free`: the third currency held."""
        if self.mode == FeeMode.THIRD:
            fee = _round(notional * self.rate * (1 - self.discount) / self.asset_price)
            if fee <= third_free:
                return fee, self.asset
        if self.mode != FeeMode.QUOTE and buying:
            return _round(qty * self.rate), base
        return _round(notional * self.rate), quote

    def quote_cost(self, notional: Decimal) -> Decimal:
        """What a buy must lock in the quote currency beyond its notional."""
        return _round(notional * self.rate) if self.mode == FeeMode.QUOTE else Decimal(0)


def _round(value: Decimal) -> Decimal:
    return value.quantize(QUANTUM, rounding=ROUND_HALF_UP)
