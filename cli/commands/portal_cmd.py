"""`portal`: the web portal over this repository, on 127.0.0.1 (CLI layer).

The repository is opened here, with the password from VDEDUP_PASSWORD, VDEDUP_PASSWORD_FILE
or a prompt, once; the password goes no further. The portal itself is the package
vdedup_portal (the `portal` extra).
"""
from __future__ import annotations

import importlib.util
import sys
import webbrowser

import typer

from vdedup.errors import MissingDependency

from ..app import app
from ..context import open_repository, repo_location
from ..output import info


@app.command()
def portal(
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    open_browser: bool = typer.Option(False, "--open", help="Also open the link in a web browser."),
) -> None:
    """Open the web portal (AI Assets -> Vector Databases) on 127.0.0.1, with a one-time link."""
    missing = [m for m in ("starlette", "jinja2", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(f"the portal needs {missing[0]!r}: pip install 'vdedup[portal]'")
    from vdedup_portal.server import bind, serve
    from vdedup_portal.state import PortalState

    sock = bind(port)
    try:
        repo = open_repository()
        try:
            state = PortalState(repo, repo_location(), sock.getsockname()[1])
            info(f"vdedup portal: repository {state.location}, serving on {state.origin} (Ctrl-C to stop)")
            info("open this link (it works once; the browser then keeps a session cookie):")
            sys.stdout.write(state.link + "\n")
            sys.stdout.flush()
            if open_browser:
                webbrowser.open(state.link)
            serve(state, sock)
        finally:
            repo.close()
    finally:
        sock.close()
