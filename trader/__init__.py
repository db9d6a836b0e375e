"""The trading daemon: settings, market data, backtester, engine, brokers, ledger, CLI."""

__version__ = "0.1.0"
