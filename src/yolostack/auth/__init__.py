"""Who is calling: API key lookup, scopes, plans and rate limits."""
