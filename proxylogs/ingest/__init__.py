"""Squid access-log ingestion: parsing, and domain/user-agent helpers (tailing is vpnmonitor.tailing)."""
