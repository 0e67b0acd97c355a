"""Domain-free kit: database, errors, response dialects, ids, crypto, pagination."""
