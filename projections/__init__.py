"""Read models that follow the Ledger's event log exactly once (tracking in the same transaction)."""
