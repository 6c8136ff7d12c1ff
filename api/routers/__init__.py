"""One router per resource; api.app includes them. A new resource (budgets, commitments) is a new
module here with its schemas in api.schemas, its roles from api.auth and its POSTs through
api.idempotency."""
