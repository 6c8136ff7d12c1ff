"""HTTP API for finance staff and auditors (FastAPI). Not built yet: the commands exist on the
command line (ledger/cli*.py) and as services of ledger.application.Ledger, which the API will expose."""
