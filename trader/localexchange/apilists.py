"""Binance's OCO order-list endpoints over the local exchange (a mixin of api.BinanceApi):
POST /api/v3/orderList/oco (the current form, legs named above and below the price),
GET /api/v3/orderList, DELETE /api/v3/orderList and GET /api/v3/openOrderList. ccxt has
no unified call for them; its implicit methods (privatePostOrderListOco, ...) send these."""

from __future__ import annotations

from trader.localexchange.apierrors import ApiError, illegal, mandatory
from trader.localexchange.apijson import CLIENT_ORDER_ID, integer_param, order_fields
from trader.localexchange.faults import OrderFate
from trader.localexchange.orderlists import OrderList

_LEG_TYPES = ("LIMIT_MAKER", "STOP_LOSS")


class OrderListApi:
    """The handlers; the host class supplies engine, clock, spec, _symbol and _decimal."""

    def list_routes(self, route) -> dict:
        return {
            ("POST", "/api/v3/orderList/oco"): route(self._new_oco, True, 1),
            ("GET", "/api/v3/orderList"): route(self._get_order_list, True, 4),
            ("DELETE", "/api/v3/orderList"): route(self._cancel_order_list, True, 1),
            ("GET", "/api/v3/openOrderList"): route(self._open_order_lists, True, 6),
        }

    def _new_oco(self, p: dict[str, str], fate: OrderFate | None = None) -> dict:
        self._symbol(p, required=True)
        if not self.spec.oco:
            raise ApiError(-1013, "OCO orders are not supported for this symbol.")
        side = p.get("side") or ""
        if side not in ("BUY", "SELL"):
            raise mandatory("side") if not side else ApiError(-1117, "Invalid side.")
        quantity = self._decimal(p, "quantity")
        if quantity is None:
            raise mandatory("quantity")
        legs = {}
        for leg in ("above", "below"):
            kind = p.get(f"{leg}Type") or ""
            if not kind:
                raise mandatory(f"{leg}Type")
            if kind not in _LEG_TYPES:
                raise ApiError(-1116, "Invalid orderType.")
            level_name = f"{leg}Price" if kind == "LIMIT_MAKER" else f"{leg}StopPrice"
            level = self._decimal(p, level_name)
            if level is None:
                raise mandatory(level_name)
            client_id = p.get(f"{leg}ClientOrderId") or f"local-{leg}-{self.engine.next_order_id}"
            if not CLIENT_ORDER_ID.match(client_id):
                raise illegal(f"{leg}ClientOrderId", CLIENT_ORDER_ID.pattern)
            legs[leg] = {"type": kind, "level": level, "client_order_id": client_id,
                         "fate": fate if kind == "STOP_LOSS" else None}
        list_id = p.get("listClientOrderId") or f"local-list-{len(self.engine.lists) + 1}"
        if not CLIENT_ORDER_ID.match(list_id):
            raise illegal("listClientOrderId", CLIENT_ORDER_ID.pattern)
        if p.get("newOrderRespType", "FULL") not in ("ACK", "RESULT", "FULL"):
            raise ApiError(-1100, "Illegal characters found in parameter 'newOrderRespType'; legal range is 'ACK, RESULT, FULL'.")
        order_list, orders = self.engine.place_oco(side=side, quantity=quantity, list_client_order_id=list_id,
                                                   above=legs["above"], below=legs["below"])
        return self._list_json(order_list, orders)

    def _find_list(self, p: dict[str, str], client_key: str) -> OrderList:
        list_id = integer_param(p, "orderListId", default=None)
        client_id = p.get(client_key) or None
        if list_id is None and client_id is None:
            raise ApiError(-1102, f"Param 'orderListId' or '{client_key}' must be sent, but both were empty/null!")
        found = self.engine.find_list(order_list_id=list_id, list_client_order_id=client_id)
        if found is None:
            raise ApiError(-2011 if client_key == "listClientOrderId" else -2013, "Order list does not exist.")
        return found

    def _get_order_list(self, p: dict[str, str]) -> dict:
        return self._list_json(self._find_list(p, "origClientOrderId"))

    def _cancel_order_list(self, p: dict[str, str]) -> dict:
        self._symbol(p, required=True)
        order_list = self._find_list(p, "listClientOrderId")
        return self._list_json(order_list, self.engine.cancel_list(order_list))

    def _open_order_lists(self, p: dict[str, str]) -> list:
        return [self._list_json(o) for o in self.engine.lists if self.engine.list_status(o) == "EXECUTING"]

    def _list_json(self, order_list: OrderList, reports: list | None = None) -> dict:
        status = self.engine.list_status(order_list)
        legs = self.engine.legs(order_list)
        body = {
            "orderListId": order_list.order_list_id, "contingencyType": "OCO",
            "listStatusType": "EXEC_STARTED" if status == "EXECUTING" else "ALL_DONE",
            "listOrderStatus": status, "listClientOrderId": order_list.list_client_order_id,
            "transactionTime": order_list.time, "symbol": order_list.symbol,
            "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id} for o in legs],
        }
        if reports is not None:
            body["orderReports"] = [
                {"symbol": o.symbol, "orderId": o.order_id, "orderListId": o.order_list_id,
                 "clientOrderId": o.client_order_id, "transactTime": self.clock.now_ms(), **order_fields(o),
                 "workingTime": o.time, "selfTradePreventionMode": "EXPIRE_MAKER"}
                for o in reports
            ]
        return body
