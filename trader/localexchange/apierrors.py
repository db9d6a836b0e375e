"""Binance's error answers, with the HTTP status and code the real API uses.

ccxt decides which exception to raise from the code and the exact message (see the
`exceptions` map in ccxt's binance.py), so both are copied verbatim from Binance.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: HTTP status and Binance's {"code": ..., "msg": ...} body."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, legal: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def filter_failure(name: str) -> ApiError:
    return ApiError(-1013, f"Filter failure: {name}")


INVALID_SYMBOL = (-1121, "Invalid symbol.")
INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
ORDER_NOT_FOUND = (-2013, "Order does not exist.")
UNKNOWN_ORDER = (-2011, "Unknown order sent.")
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
BAD_API_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")
API_KEY_FORMAT = (-2014, "API-key format invalid.")
TIMESTAMP_AHEAD = (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
TIMESTAMP_OUTSIDE = (-1021, "Timestamp for this request is outside of the recvWindow.")
MARKET_CLOSED = (-1013, "Market is closed.")
