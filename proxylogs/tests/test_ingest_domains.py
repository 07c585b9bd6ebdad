"""Tests for proxylogs.ingest.domains: registrable domains, file extensions, user-agent categories."""

from __future__ import annotations

import pytest

from proxylogs.ingest.domains import (
    USER_AGENT_CATEGORIES,
    USER_AGENT_RULES,
    file_extension,
    registrable_domain,
    user_agent_category,
)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.com", "example.com"),
        ("a.b.c.example.com", "example.com"),
        ("WWW.Example.COM.", "example.com"),
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("news.bbc.co.uk:443", "bbc.co.uk"),
        ("s3.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"),
        ("alice.github.io", "alice.github.io"),
        ("x.alice.github.io", "alice.github.io"),
        ("example.com", "example.com"),
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.3.4:443", "1.2.3.4"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:DB8::1]:443", "2001:db8::1"),
        ("localhost", "localhost"),
        ("com", "com"),
        ("co.uk", "co.uk"),
        ("printer.lan", "printer.lan"),
        ("www.blocked.example", "blocked.example"),
        ("", None),
        (None, None),
    ],
)
def test_registrable_domain(host: str | None, expected: str | None) -> None:
    assert registrable_domain(host) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:18080/nothere.zip", "zip"),
        ("http://a.example/dl/Setup.EXE", "exe"),
        ("http://a.example/pool/squid_5.7-2_amd64.deb", "deb"),
        ("http://a.example/archive.tar.gz", "gz"),
        ("http://a.example/page.php?file=evil.exe", "php"),
        ("http://a.example/page?file=evil.exe", None),
        ("http://a.example/doc.pdf#page=2", "pdf"),
        ("http://a.example/x.jsp;jsessionid=1", "jsp"),
        ("http://a.example/", None),
        ("http://a.example", None),
        ("http://a.example/v1.2/items", None),
        ("http://a.example/.env", None),
        ("http://a.example/file.", None),
        ("http://a.example/file.thisistoolong", None),
        ("http://a.example/file.tar%2Egz", None),
        ("www.example.com:443", None),
        ("error:invalid-request", None),
        ("/local/path.txt", "txt"),
        ("", None),
        (None, None),
    ],
)
def test_file_extension(url: str | None, expected: str | None) -> None:
    assert file_extension(url) == expected


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
         "Safari/537.36"), "browser"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "browser"),
        (("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/18.1 Mobile/15E148 Safari/604.1"), "browser"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36 Edg/131.0",
         "browser"),
        ("Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
         "browser"),
        (("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A; wv) AppleWebKit/537.36 Version/4.0 Chrome/131.0 "
         "Mobile Safari/537.36"), "mobile_app"),
        ("Instagram 309.0.0.40.113 Android (34/14; 420dpi; 1080x2400; Google; Pixel 8)", "mobile_app"),
        ("okhttp/4.12.0", "mobile_app"),
        ("MyApp/3.2 CFNetwork/1498.700.2 Darwin/23.6.0", "mobile_app"),
        ("Dalvik/2.1.0 (Linux; U; Android 13; SM-G991B Build/TP1A.220624.014)", "mobile_app"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0) Chrome/116 Safari/537.36",
         "bot"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "bot"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "bot"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0 Safari/537.36", "bot"),
        ("curl/8.5.0", "cli"),
        ("Wget/1.21.3", "cli"),
        ("python-requests/2.32.3", "cli"),
        ("Python-urllib/3.12", "cli"),
        ("Go-http-client/1.1", "cli"),
        ("Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.4894", "cli"),
        ("git/2.39.5", "cli"),
        ("Debian APT-HTTP/1.3 (2.6.1)", "os_update"),
        ("Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.50", "os_update"),
        ("Microsoft-Delivery-Optimization/10.0", "os_update"),
        ("Microsoft-CryptoAPI/10.0", "os_update"),
        ("libdnf (Fedora Linux 41; generic; Linux.x86_64)", "os_update"),
        ("softwareupdated (unknown version) CFNetwork/1410.0.3 Darwin/22.6.0", "os_update"),
        ("SomethingElse/1.0", "other"),
        ("-", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_user_agent_category(agent: str | None, expected: str) -> None:
    assert user_agent_category(agent) == expected


def test_rule_table_is_well_formed() -> None:
    categories = [category for category, _ in USER_AGENT_RULES]
    assert len(categories) == len(set(categories))
    assert set(categories) | {"other"} == set(USER_AGENT_CATEGORIES)
    for _, tokens in USER_AGENT_RULES:
        assert all(token == token.lower() and token for token in tokens)
