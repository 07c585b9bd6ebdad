"""Pytest settings shared by the monitoring tests."""

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # Tests using the openvpn_lab_fixture get the OpenVPN logs attached to their failure report.
    lab = getattr(item, "openvpn_lab", None)
    if lab is not None and report.failed:
        report.sections.append(("OpenVPN logs", lab.logs()))
    return report
