"""Pure domain model of koa-ledger: money, catalogue, rates, fiscal rules, aggregates. No I/O."""
