"""HTTP API for finance staff and auditors (FastAPI): `koa serve`, api.app.create_app. Thin routers
over the same Ledger methods as the command line; see the README's "HTTP API"."""
