"""Pytest settings shared by the monitoring tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: runs real external programs (e.g. an OpenVPN server)")
