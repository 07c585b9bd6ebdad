"""proxylogs models."""
