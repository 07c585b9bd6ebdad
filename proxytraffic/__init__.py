"""Proxy traffic analytics: POST /analytics/ingest and the /analytics charts and breakdowns."""
