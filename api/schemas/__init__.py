"""Request (create) and response (read) bodies, one module per resource; amounts as strings of euros."""
