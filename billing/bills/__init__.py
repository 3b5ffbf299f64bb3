"""Bills: creating and issuing them, reading them, importing them from CSV, their PDF and their signed pay links."""
