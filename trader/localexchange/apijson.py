"""The JSON shapes and parameter parsing of the local exchange's Binance API (api.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from trader.localexchange.apierrors import illegal, mandatory
from trader.localexchange.market import fmt
from trader.localexchange.matching import Order, Trade

_INTEGER = re.compile(r"^-?[0-9]{1,20}$")
CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def order_fields(order: Order) -> dict:
    return {
        "price": fmt(order.price), "origQty": fmt(order.orig_qty), "executedQty": fmt(order.executed_qty),
        "origQuoteOrderQty": fmt(0), "cummulativeQuoteQty": fmt(order.cumulative_quote_qty),
        "status": order.status, "timeInForce": order.time_in_force or "GTC", "type": order.type, "side": order.side,
        "stopPrice": fmt(order.stop_price),
    }


def order_json(order: Order) -> dict:
    return {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": order.order_list_id, "clientOrderId": order.client_order_id,
        **order_fields(order), "icebergQty": fmt(0), "time": order.time,
        "updateTime": order.update_time, "isWorking": True, "workingTime": order.time,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def trade_json(t: Trade, order_list_id: int) -> dict:
    return {
        "symbol": t.symbol, "id": t.trade_id, "orderId": t.order_id, "orderListId": order_list_id,
        "price": fmt(t.price), "qty": fmt(t.qty), "quoteQty": fmt(t.quote_qty),
        "commission": fmt(t.commission), "commissionAsset": t.commission_asset, "time": t.time,
        "isBuyer": t.side == "BUY", "isMaker": t.is_maker, "isBestMatch": True,
    }


def integer_param(p: dict[str, str], name: str, *, required: bool = False, default: int | None = 0) -> int | None:
    text = p.get(name)
    if text is None or text == "":
        if required:
            raise mandatory(name)
        return default
    if not _INTEGER.match(text):
        raise illegal(name, "^[0-9]{1,20}$")
    return int(text)


def without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None:  # plain dicts are case-sensitive; http.server's headers are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value
