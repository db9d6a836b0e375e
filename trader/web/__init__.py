"""The dashboard on $PORT: pages, REST API, the resumable event stream and the controls,
served with /health and /status by one uvicorn server (trader.web.server). The daemon's
start-up point calls `serve`; nothing here changes the trading state but the controls,
through the functions the command line uses."""

from __future__ import annotations

from .app import Site, build_app
from .server import WebServer

__all__ = ["Site", "WebServer", "build_app", "serve"]


def serve(site: Site, port: int, host: str = "0.0.0.0") -> WebServer:
    """Start serving the dashboard, /health and /status on host:port; returns the server."""
    return WebServer(build_app(site), host=host, port=port).start()
