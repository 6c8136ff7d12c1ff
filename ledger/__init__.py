"""Write side of koa-ledger: settings, the event-sourced application, commands, CLI."""
