"""Squid access-log ingestion: parsing, tailing with checkpoints, and domain/user-agent helpers."""
