"""OCO order lists of the local exchange, as Binance's spot `orderList/oco` runs them: a
LIMIT_MAKER leg and a STOP_LOSS leg for the same quantity, one of them above the price and
one below. The quantity is locked once for both (Binance spot locks the coins under the list,
which is why a separate take-profit order cannot rest beside a stop). As soon as one leg
fills, even in part, the other EXPIREs; cancelling either leg, or the list, cancels both.

A mixin of `matching.Engine`, which calls `_claim_lock` before a leg fills, `_end_siblings`
after, and `_cancel_siblings` when a leg is cancelled. Callers hold the exchange's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.localexchange.apierrors import DUPLICATE_ORDER, ApiError


@dataclass
class OrderList:
    order_list_id: int
    list_client_order_id: str
    symbol: str
    order_ids: tuple[int, int]  # (the leg above the price, the leg below)
    time: int
    status: str = "EXECUTING"  # EXECUTING | ALL_DONE (Binance's listOrderStatus)


class OrderLists:
    """OCO placement, lookup and cancellation over the engine's orders."""

    lists: list[OrderList]

    def place_oco(self, *, side: str, quantity: Decimal, list_client_order_id: str,
                  above: dict, below: dict) -> tuple[OrderList, list]:
        """Both legs, or neither (ApiError). `above` / `below`: type, price or stop_price,
        client_order_id. Returns the list and its legs (above first)."""
        self.sync()
        if any(o.status == "EXECUTING" and o.list_client_order_id == list_client_order_id for o in self.lists):
            raise ApiError(-2010, DUPLICATE_ORDER)
        current = self.candles.current_price(self.clock.now_ms())
        limit_leg, stop_leg = (above, below) if side == "SELL" else (below, above)
        if limit_leg["type"] != "LIMIT_MAKER" or stop_leg["type"] != "STOP_LOSS":
            # the two kinds this exchange matches; Binance's -limit and TAKE_PROFIT kinds are not modeled
            raise ApiError(-1116, "Invalid orderType.")
        if current is not None and not (below["level"] < current < above["level"]):
            raise ApiError(-2010, "The relationship of the prices for the orders is not correct.")
        # the stop leg carries the one lock (and is validated with it: balance, filters);
        # the limit leg rests without a lock of its own and claims it when it fills
        stop, _ = self.place(side=side, type="STOP_LOSS", quantity=quantity, quote_order_qty=None, price=None,
                             time_in_force=None, client_order_id=stop_leg["client_order_id"],
                             stop_price=stop_leg["level"], fate=stop_leg.get("fate"))
        try:
            limit, _ = self.place(side=side, type="LIMIT_MAKER", quantity=quantity, quote_order_qty=None,
                                  price=limit_leg["level"], time_in_force="GTC",
                                  client_order_id=limit_leg["client_order_id"], lock=False)
        except ApiError:
            self._withdraw(stop)  # neither leg exists when one is refused
            raise
        order_list = OrderList(len(self.lists) + 1, list_client_order_id, self.spec.id,
                               (limit.order_id, stop.order_id) if side == "SELL" else (stop.order_id, limit.order_id),
                               self.clock.now_ms())
        self.lists.append(order_list)
        stop.order_list_id = limit.order_list_id = order_list.order_list_id
        return order_list, [self.find(order_id=i) for i in order_list.order_ids]

    def find_list(self, order_list_id: int | None = None, list_client_order_id: str | None = None) -> OrderList | None:
        if order_list_id is not None:
            return self.lists[order_list_id - 1] if 1 <= order_list_id <= len(self.lists) else None
        return next((o for o in reversed(self.lists) if o.list_client_order_id == list_client_order_id), None)

    def legs(self, order_list: OrderList) -> list:
        return [self.find(order_id=i) for i in order_list.order_ids]

    def list_status(self, order_list: OrderList) -> str:
        """EXECUTING while a leg is open (a limit leg partly filled still is), else ALL_DONE."""
        if order_list.status == "EXECUTING" and not any(o.is_open for o in self.legs(order_list)):
            order_list.status = "ALL_DONE"
        return order_list.status

    def cancel_list(self, order_list: OrderList) -> list:
        """Cancel every open leg (ApiError -2011 when none is open). Returns the legs."""
        legs = self.legs(order_list)
        if not any(o.is_open for o in legs):
            raise ApiError(-2011, "Order list does not exist.")
        for leg in legs:
            if leg.is_open:
                self.cancel(leg, siblings=False)
        return legs

    # -- the engine's hooks ----------------------------------------------------------------

    def _siblings(self, order) -> list:
        if order.order_list_id < 0:
            return []
        return [o for o in self.legs(self.lists[order.order_list_id - 1]) if o is not order]

    def _claim_lock(self, order) -> None:
        """The leg about to fill takes the list's one lock from its sibling."""
        for other in self._siblings(order):
            order.locked += other.locked
            other.locked = Decimal(0)

    def _end_siblings(self, order, when: int) -> None:
        """One leg filled (in part or whole): the other expires, as on Binance."""
        for other in self._siblings(order):
            if other.is_open:
                other.status, other.parts, other.update_time = "EXPIRED", [], when

    def _cancel_siblings(self, order) -> None:
        for other in self._siblings(order):
            if other.is_open:
                self.cancel(other, siblings=False)

    def _withdraw(self, order) -> None:
        """Undo a placement whose list was refused: as if it never was (its id is reused)."""
        self._release(order)
        self.orders.remove(order)
        self._next_order_id -= 1
