"""Settlement ledger gateway: everything that talks to the chain or the SQL mirror."""
