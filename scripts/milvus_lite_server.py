"""Start the milvus-lite server with the HTTP/2 keepalive policy real Milvus has.

pymilvus clients send keepalive pings every 10 s, also between calls. milvus-lite builds its
gRPC server with gRPC's default policy (a ping without data at most every 5 minutes, two
strikes), so under load a client that is idle between calls gets GOAWAY "too_many_pings"
and every later call fails with "server unavailable". Real Milvus accepts those pings; this
wrapper gives milvus-lite's server the same acceptance and then runs its own command line:
    python scripts/milvus_lite_server.py server --data-dir D --host 127.0.0.1 --port P
"""
import sys

import grpc

_KEEPALIVE = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_ping_strikes", 0),
]
_server = grpc.server


def _server_with_keepalive(*args, **kwargs):
    kwargs["options"] = list(kwargs.get("options") or []) + _KEEPALIVE
    return _server(*args, **kwargs)


grpc.server = _server_with_keepalive

from milvus_lite.cmdline import main  # noqa: E402  (after the patch, which it must see)

if __name__ == "__main__":
    sys.exit(main())
