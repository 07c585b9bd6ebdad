"""flowreports models."""
