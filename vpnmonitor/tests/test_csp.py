"""Content-Security-Policy: sent on every page, and admin, the browsable API, Swagger UI and the dashboard
render under it in Debian's Chromium without a single violation."""

import os
import shutil

import pytest
from django.db import connections

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "csp-Secret-pw-1"
# Recorded by the page itself: every violation the browser reports, enforced or not.
LISTEN = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
    e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + e.sourceFile + ':' + e.lineNumber));
"""


@pytest.mark.django_db
def test_every_page_carries_a_self_only_policy_with_a_fresh_nonce(client):
    sign_in = client.get("/accounts/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in sign_in.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script on the page, so no nonce either
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    nonces = []
    for _ in range(2):
        docs = client.get("/api/docs/")
        script_src = dict(part.strip().split(" ", 1) for part in docs["Content-Security-Policy"].split(";"))["script-src"]
        assert script_src.startswith("'self' 'nonce-")
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
        nonce = script_src.split("'nonce-")[1].split("'")[0]
        assert f'<script nonce="{nonce}">' in docs.content.decode()
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_admin_browsable_api_swagger_and_dashboard_render_without_a_csp_violation(
        live_server, tmp_path, monkeypatch, django_user_model):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium is not installed (scripts/install-test-programs installs it when run as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_user_model.objects.create_superuser("csp-root", password=PASSWORD)
    base = live_server.url
    pages = [
        ("/admin/", "#site-name"),
        ("/admin/monitoring/vpnserver/add/", "#vpnserver_form"),
        ("/admin/vpnmonitor/auditevent/", "#changelist"),
        ("/api/v1/clients", ".response-info"),
        ("/api/docs/", ".swagger-ui .info .title"),
        ("/", "h1"),
    ]
    seen, problems = {}, []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            context.add_init_script(LISTEN)
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(20_000)
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{base}/admin/login/?next=/admin/")
            page.fill("#id_username", "csp-root")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/admin/")
            for path, selector in pages:
                response = page.goto(base + path)
                assert "default-src 'self'" in response.headers["content-security-policy"], path
                page.wait_for_selector(selector, state="visible")
                page.wait_for_load_state("networkidle")
                seen[path] = page.evaluate("window.__violations")
            rendering_problems = list(problems)
            # The browsable API's sign-out works without an inline handler (the last page is a 401 then).
            page.goto(f"{base}/api/v1/clients")
            page.click(".navbar .dropdown-toggle")
            page.click("#logout-button")
            page.wait_for_load_state("networkidle")
            assert page.goto(f"{base}/api/v1/clients").status == 401
        finally:
            context.close()
            connections.close_all()
    assert seen == {path: [] for path, _ in pages}
    assert rendering_problems == []
