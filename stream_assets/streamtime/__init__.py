"""Streamtime public API v2: search routes with only the requested additional data, statistics, and
four shared rate/processing budgets."""
