"""Pytest configuration for proxylogs tests: registers the ``integration`` marker."""


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: needs real external programs (e.g. Squid); may be skipped")
