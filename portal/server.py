"""Serving the portal on a socket bound to 127.0.0.1 (portal layer).

uvicorn without its access log (request lines would carry the one-time token of the first
visit) and at warning level; SIGINT and SIGTERM stop it gracefully.
"""
from __future__ import annotations

import errno
import socket

from vdedup.errors import UsageError

from .app import create_app
from .state import PortalState

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port (0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {HOST} is in use: choose another with --port") from None
        raise UsageError(f"cannot listen on {HOST}:{port}: {e.strerror}") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def serve(state: PortalState, sock: socket.socket) -> None:
    import uvicorn
    config = uvicorn.Config(create_app(state), log_level="warning", access_log=False, lifespan="off",
                            server_header=False, date_header=False)
    uvicorn.Server(config).run(sockets=[sock])
