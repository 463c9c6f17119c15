"""Serving the portal on a socket bound to 127.0.0.1 (portal layer).

uvicorn without its access log (request lines would carry the one-time token of the first
visit) and at warning level. SIGINT and SIGTERM stop it gracefully, and `serve` then returns
(uvicorn would raise the signal again, killing the process before the command could close
the repository and write its audit entry). A job still running is waited for: a backup
killed half-way leaves its lock behind; a second Ctrl-C abandons it.
"""
from __future__ import annotations

import contextlib
import errno
import signal
import socket
import sys
from typing import Iterator

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

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            old = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(create_app(state), log_level="warning", access_log=False, lifespan="off",
                            server_header=False, date_header=False)
    Server(config).run(sockets=[sock])
    running = state.jobs.active()
    if running:
        print(f"vdedup portal: waiting for {', '.join(j.title for j in running)} to finish "
              "(Ctrl-C again abandons it)", file=sys.stderr)
        state.jobs.wait()
