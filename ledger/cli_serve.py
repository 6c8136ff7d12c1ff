"""`koa serve`: the HTTP API (api/) under uvicorn, over the same store as the other commands."""

from __future__ import annotations

import socket

import click

from ledger.bootstrap import open_books
from ledger.cli_support import Refused, handles_errors
from ledger.settings import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 32),
    help="server processes; the database decides keys, idempotency claims and the view's position",
)
@handles_errors
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (tokens: KOA_TOKENS_FILE or KOA_OIDC_*; see the README)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from api.app import create_app
    from api.auth import AuthConfigError
    from api.settings import ApiSettings
    from ledger.serve_workers import SocketPerWorker, listening_sockets

    settings, api_settings = Settings(), ApiSettings()
    try:
        app = create_app(settings, api_settings)
    except AuthConfigError as e:
        raise Refused(f"not starting: {e}") from None
    with open_books(settings) as books:  # a store that cannot be reached is one line here, not a traceback
        where = books.where
    click.echo(f"koa-ledger API ({api_settings.env}) on http://{host}:{port} over {where}", err=True)
    options: dict = {"host": host, "port": port, "server_header": False, "timeout_graceful_shutdown": 10}
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Each process builds its own app from the same environment (checked above, once).
    factory = {"factory": True, "workers": workers}
    if not hasattr(socket, "SO_REUSEPORT"):  # Windows: uvicorn's supervisor, one socket shared
        uvicorn.run("api.app:create_app", **factory, **options)
        return
    config = uvicorn.Config("api.app:create_app", **factory, **options)
    try:
        sockets = listening_sockets(host, port, workers, config.backlog)
    except OSError as e:
        raise Refused(f"not starting: cannot listen on {host}:{port}: {e.strerror or e}") from None
    supervisor = SocketPerWorker(config, sockets)
    try:
        supervisor.run()
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise Refused("stopped: a server process failed to start (its reason is logged above)")
