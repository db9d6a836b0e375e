"""What a real account adds to the adapter's market orders: a stop-market order, or an OCO
list of a stop and a take-profit, resting on the exchange (the position's protection) and the value of a fee charged in a third currency
(BNB). A mixin of `trader.exchange.ExchangeAdapter`, whose `_call` translates every error."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any


class AccountOrders:
    """Stop orders and fee values; the adapter supplies client, symbol, _call and the rest."""

    def supports_stop_orders(self) -> bool:
        """Whether a stop-market sell can rest on this exchange for this market (ccxt's `has`,
        and the market's own list of order types where the exchange gives one, as Binance does)."""
        if not self.client.has.get("createStopLossOrder"):
            return False
        types = ((self.client.markets or {}).get(self.symbol) or {}).get("info", {}).get("orderTypes")
        return types is None or "STOP_LOSS" in types or "STOP_MARKET" in types

    def supports_oco(self) -> bool:
        """Whether a stop-loss and a take-profit can rest together as one OCO order list: on
        Binance spot a resting order locks its coins, so a second order for the same coins
        cannot rest beside the stop. Binance's orderList/oco endpoint (ccxt has no unified
        call), and the market allows OCO lists and LIMIT_MAKER orders."""
        if not hasattr(self.client, "privatePostOrderListOco") or not self.supports_stop_orders():
            return False
        info = ((self.client.markets or {}).get(self.symbol) or {}).get("info", {})
        return bool(info.get("ocoAllowed")) and "LIMIT_MAKER" in (info.get("orderTypes") or ())

    def create_oco_sell(self, amount: float, stop_price: float, limit_price: float, *, list_id: str,
                        stop_id: str, limit_id: str) -> tuple[Any, Any]:
        """One OCO list selling `amount`: a LIMIT_MAKER leg at `limit_price` (the take-profit)
        and a STOP_LOSS leg at `stop_price`, each under its own client id. Returns the legs as
        the adapter's ExchangeOrders, (stop, limit)."""
        self._require_credentials()
        self.market_rules()
        client = self.client
        request = {
            "symbol": client.market(self.symbol)["id"], "side": "SELL", "listClientOrderId": list_id,
            "quantity": client.amount_to_precision(self.symbol, amount), "newOrderRespType": "FULL",
            "aboveType": "LIMIT_MAKER", "abovePrice": client.price_to_precision(self.symbol, limit_price),
            "aboveClientOrderId": limit_id,
            "belowType": "STOP_LOSS", "belowStopPrice": client.price_to_precision(self.symbol, stop_price),
            "belowClientOrderId": stop_id,
        }
        answer = self._call("create oco order", lambda: client.privatePostOrderListOco(request),
                            on_order=True, placing=True)
        reports = {r.get("clientOrderId"): r for r in (answer or {}).get("orderReports") or [] if isinstance(r, dict)}
        if stop_id not in reports or limit_id not in reports:
            raise self._unknown(f"create oco order: the legs are not in the answer: {self._scrub(str(answer)[:200])}")
        market = client.market(self.symbol)
        return tuple(self._order(client.parse_order(reports[cid], market), cid) for cid in (stop_id, limit_id))

    def round_price(self, price: float) -> float:
        """To the market's price step, to the nearest (a stop level a fraction of a tick off is
        the same level)."""
        step = Decimal(repr(self.market_rules().price_step))
        return float((Decimal(repr(float(price))) / step).to_integral_value() * step)

    def create_stop_order(self, side: str, amount: float, stop_price: float, client_order_id: str) -> Any:
        """A stop-market order resting on the exchange (ccxt's unified stopLossPrice), as the
        adapter's ExchangeOrder."""
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', not {side!r}")
        self._require_credentials()
        self.market_rules()
        order = self._call(
            "create stop order",
            lambda: self.client.create_order(self.symbol, "market", side, amount, None,
                                             {"clientOrderId": client_order_id, "stopLossPrice": stop_price}),
            on_order=True,
            placing=True,
        )
        if not isinstance(order, dict) or not order.get("id"):
            raise self._unknown(f"create stop order: no order id in the answer: {self._scrub(str(order)[:200])}")
        return self._order(order, client_order_id)

    def _fee_value(self, cost: float, currency: str) -> float | None:
        """A fee charged in a third currency (BNB), in the quote currency at that currency's
        price now; None for base and quote fees, or when the exchange lists no such market."""
        rules = self._rules
        if not cost or rules is None or currency in (rules.base, rules.quote):
            return None
        symbol = f"{currency}/{rules.quote}"
        if symbol not in (self.client.markets or {}):
            return None
        when, price = self._fee_prices.get(currency, (0.0, 0.0))
        if time.monotonic() - when > 60.0:  # a fresh price per minute is plenty for a fee
            ticker = self._call("fetch fee currency price", lambda: self.client.fetch_ticker(symbol))
            price = float(ticker.get("last") or ticker.get("close") or 0.0)
            self._fee_prices[currency] = (time.monotonic(), price)
        return cost * price if price > 0 else None

