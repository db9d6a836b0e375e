"""The user's strategy file, loaded once into frozen, validated models.

A bad file is refused with one message that names the file, the line, the field and what
was expected (raised as ConfigError: the CLI prints it and exits 2).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Optional

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import strategies
from strategies.base import Params

from .errors import ConfigError
from .exchange_ids import EXCHANGES, is_exchange
from .exchange_ids import timeframes as exchange_timeframes
from .timeframes import timeframe_seconds
from .yamlfile import (Frozen, LocatedError, boolean_problems, format_problems, kind_of, pydantic_problems,
                       read_yaml)

# Risk settings Hermes may tune when the user declares bounds for them.
RISK_TUNABLES = ("stake_fraction", "stop_loss", "take_profit")


MAX_GRID = 100_000  # values between a tunable's min and max


class Bounds(Frozen):
    """Where Hermes may move one variable: min <= value <= max, in multiples of step."""

    min: float
    max: float
    step: float = Field(gt=0)

    @field_validator("min", "max", "step", mode="before")
    @classmethod
    def _not_a_switch(cls, value: Any) -> Any:
        # YAML reads yes/no/true as booleans, which pydantic would take as 1 and 0
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {str(value).lower()}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Bounds":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        # Hermes walks this grid value by value: keep it to a size it can enumerate
        if (self.max - self.min) / self.step > MAX_GRID:
            raise ValueError(f"(max - min) / step is {(self.max - self.min) / self.step:.3g} values; "
                             f"expected at most {MAX_GRID:,} (a larger step or a narrower range)")
        return self

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


class Risk(Frozen):
    stake_fraction: float = Field(
        0.95, gt=0, le=1, description="share of equity committed to a position"
    )
    stop_loss: Optional[float] = Field(
        None, gt=0, lt=1, description="exit when price falls this fraction below entry; null: off"
    )
    take_profit: Optional[float] = Field(
        None, gt=0, le=100, description="exit when price rises this fraction above entry; null: off"
    )
    fee: float = Field(0.001, ge=0, lt=0.1, description="fee per fill, fraction of notional")
    slippage: float = Field(
        0.0005, ge=0, lt=0.1, description="adverse price move on market fills, fraction of price"
    )


class StrategyConfig(Frozen):
    """The effective strategy: what trades, where, how, and what Hermes may change."""

    name: str = Field(min_length=1, max_length=80)
    exchange: str
    symbol: str
    timeframe: str
    # below a millionth of a quote unit nothing can be traded (and 1e-320 is a denormal)
    capital: float = Field(10_000.0, ge=1e-6, le=1e12, description="starting quote balance (backtest, paper)")
    strategy: str
    params: SerializeAsAny[Params]
    risk: Risk = Risk()
    tunable: dict[str, Bounds] = {}

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str, info: ValidationInfo) -> str:
        # escape sequences or bidi overrides could rewrite what a terminal or report shows
        if any(unicodedata.category(ch) == "Cc" or 0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069
               for ch in value):
            raise ValueError("contains control or bidi characters; expected a plain one-line label")
        if info.context and info.context.get("checked_name") == value:
            return value  # a variant's copy of a checked config: the environment scan was 80% of a sweep's copy
        from .logs import Scrubber, secret_env_values

        # the name is shown and stored everywhere, unmasked in the version's settings
        if Scrubber(secret_env_values()).text(value) != value:
            raise ValueError("contains a credential (a key, token or webhook URL); expected a plain label")
        return value

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if not is_exchange(value):
            raise ValueError(f"unknown exchange {value!r}: expected a ccxt exchange id like 'binance'")
        return value

    @field_validator("symbol")
    @classmethod
    def _symbol_shape(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?", value):
            raise ValueError(f"symbol {value!r} is not a market: expected BASE/QUOTE like 'BTC/USDT'")
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe_shape(cls, value: str) -> str:
        timeframe_seconds(value)  # ValueError says what is expected
        return value

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in strategies.REGISTRY:
            known = ", ".join(sorted(strategies.REGISTRY))
            raise ValueError(f"unknown strategy {value!r}; expected one of: {known}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "StrategyConfig":
        offered = exchange_timeframes(self.exchange)
        if offered and self.timeframe not in offered:
            raise LocatedError(
                "timeframe",
                f"{self.exchange} has no {self.timeframe!r} candles; expected one of: "
                + ", ".join(offered),
            )
        expected = strategies.get(self.strategy).params
        if type(self.params) is not expected:
            raise LocatedError("params", f"expected parameters of {self.strategy}")
        for key, bounds in self.tunable.items():
            value = self.value_of(key)  # raises for names that are neither param nor risk
            if value is not None and not bounds.contains(value):
                raise LocatedError(
                    self.path_of(key),
                    f"{value} is outside its tunable bounds [{bounds.min:g}, {bounds.max:g}] "
                    f"(tunable.{key})",
                )
        return self

    # -- the variables Hermes may change --------------------------------------------------
    def path_of(self, key: str) -> str:
        if key in type(self.params).model_fields:
            return f"params.{key}"
        if key in RISK_TUNABLES:
            return f"risk.{key}"
        known = list(type(self.params).model_fields) + list(RISK_TUNABLES)
        raise LocatedError(f"tunable.{key}", f"not a variable of {self.strategy}; expected one of: {', '.join(known)}")

    def value_of(self, key: str) -> Any:
        section, name = self.path_of(key).split(".")
        return getattr(self.params if section == "params" else self.risk, name)

    def with_value(self, key: str, value: Any) -> "StrategyConfig":
        """A validated copy with one variable changed (the unit of a Hermes experiment)."""
        return self.with_values({key: value})

    def with_values(self, changes: dict[str, Any]) -> "StrategyConfig":
        """A validated copy with these variables changed together (validated once, so the
        order of the changes does not matter)."""
        data = self.to_dict()
        for key, value in changes.items():
            try:
                section, name = self.path_of(key).split(".")
            except LocatedError as exc:
                raise ConfigError(f"<variant>: {exc.loc}: {exc}") from None
            data[section][name] = value
        return parse_strategy_config(data, source="<variant>", checked_name=self.name)

    # -- identity ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @functools.cached_property
    def version(self) -> str:
        """Content hash of the effective strategy: same settings, same version."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def strategy_def(self) -> strategies.Strategy:
        return strategies.get(self.strategy)


# the names onboarding asks with (ccxt's own list, kept in the package: see exchange_ids)
_exchange_timeframes = exchange_timeframes


def _ccxt_exchanges() -> frozenset[str]:
    return EXCHANGES


# -- loading -------------------------------------------------------------------------------


def load_strategy_config(path: str | Path) -> StrategyConfig:
    """Read and validate a strategy YAML file; ConfigError says exactly what is wrong."""
    raw, lines = read_yaml(path, what="the strategy settings (see config/strategy.yaml)")
    return parse_strategy_config(raw, source=str(path), lines=lines)


def parse_strategy_config(
    raw: Any, source: str, lines: dict[tuple[str, ...], int] | None = None, checked_name: str | None = None
) -> StrategyConfig:
    """`checked_name`: a name already validated (a variant keeps its base's), not scanned again."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings (name, exchange, symbol, ...), got {kind_of(raw)}")
    raw = dict(raw)
    # a variant of a checked config (a sweep's) holds no YAML booleans: not scanned again
    scan = boolean_problems if checked_name is None else (lambda *_: [])
    problems: list[tuple[tuple[str, ...], str]] = scan(raw, StrategyConfig)

    strategy_def = None
    name = raw.get("strategy")
    if isinstance(name, str) and name in strategies.REGISTRY:
        strategy_def = strategies.get(name)
    params_raw = raw.get("params", {})
    if strategy_def is not None:
        if params_raw is None:
            params_raw = {}
        if not isinstance(params_raw, (dict, Params)):
            problems.append((("params",), f"expected a mapping of parameters, got {kind_of(params_raw)}"))
            raw["params"] = strategy_def.params()
        elif isinstance(params_raw, Params):
            raw["params"] = params_raw
        elif switches := scan(params_raw, strategy_def.params, ("params",)):
            problems.extend(switches)
            raw["params"] = strategy_def.params()
        else:
            try:
                raw["params"] = strategy_def.params.model_validate(params_raw)
            except ValidationError as exc:
                problems.extend(pydantic_problems(exc, prefix=("params",), model=strategy_def.params))
                raw["params"] = strategy_def.params()
    else:
        raw["params"] = Params()  # the strategy field reports the real problem

    try:
        config = StrategyConfig.model_validate(raw, context={"checked_name": checked_name} if checked_name else None)
    except ValidationError as exc:
        said = {loc for loc, _ in problems}  # a boolean already named is not named again as "less than 1"
        problems.extend(problem for problem in pydantic_problems(exc, prefix=(), model=StrategyConfig)
                        if problem[0] not in said)
        config = None
    if problems:
        raise ConfigError(format_problems(source, "invalid strategy file", problems, lines or {}))
    assert config is not None
    return config
