"""Offline helpers for reports: registrable domain (bundled Public Suffix List), file extension, user-agent category."""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from vpnmonitor.addresses import canonical_ip_or_none

__all__ = [
    "USER_AGENT_CATEGORIES",
    "USER_AGENT_RULES",
    "file_extension",
    "registrable_domain",
    "user_agent_category",
]

# The list ships inside the package, so this never touches the network.  ICANN and private sections are both
# used: "alice.github.io" and "bob.github.io" have different owners and should not be grouped.
_PSL = PublicSuffixList()


@lru_cache(maxsize=65536)
def registrable_domain(host: str | None) -> str | None:
    """``"www.bbc.co.uk"`` -> ``"bbc.co.uk"``; IPs, single labels and bare suffixes come back as given (lowercased).

    ``host`` may carry a port (``host:443``) or IPv6 brackets; both are stripped.  None/"" -> None.
    """
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if not host:
        return None
    if ":" in host or host[-1].isdigit():
        address = canonical_ip_or_none(host)
        if address is not None:
            return address
    return _PSL.privatesuffix(host) or host


_MAX_EXTENSION = 10


@lru_cache(maxsize=65536)
def file_extension(url: str | None) -> str | None:
    """Lowercased extension of the URL path's last segment (``"zip"``), ignoring query and fragment; else None.

    CONNECT targets (``host:443``) and paths ending in ``/`` have none; dotfiles (``/.env``) count as having none,
    like os.path.splitext.
    """
    if not url:
        return None
    scheme_end = url.find("://")
    if scheme_end == -1:
        if not url.startswith("/"):
            return None  # CONNECT host:port, error:..., "-"
        path_start = 0
    else:
        path_start = url.find("/", scheme_end + 3)
        if path_start == -1:
            return None
    path = url[path_start:]
    for stop in "?#;":
        path = path.partition(stop)[0]
    segment = path.rpartition("/")[2]
    stem, dot, extension = segment.rpartition(".")
    if not dot or not stem.strip(".") or not extension:
        return None
    extension = extension.lower()
    if len(extension) > _MAX_EXTENSION or not extension.isascii() or not extension.isalnum():
        return None
    return extension


BROWSER = "browser"
MOBILE_APP = "mobile_app"
BOT = "bot"
CLI = "cli"
OS_UPDATE = "os_update"
OTHER = "other"
USER_AGENT_CATEGORIES = (BROWSER, MOBILE_APP, BOT, CLI, OS_UPDATE, OTHER)

# First matching rule wins, so the order matters: crawlers and updaters often claim "Mozilla/5.0 ... Safari",
# and in-app webviews look like mobile browsers.  Tokens are matched case-insensitively as substrings.
USER_AGENT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (BOT, (
        # "bot/", "bot;" ... rather than "bot", which would also catch phone models such as "CUBOT X30".
        "bot/", "bot;", "bot)", "bot-", "robot", "crawler", "spider", "slurp", "facebookexternalhit",
        "bingpreview", "mediapartners-google", "feedfetcher", "headlesschrome", "lighthouse", "pingdom",
    )),
    (OS_UPDATE, (
        "windows-update-agent", "microsoft-delivery-optimization", "microsoft bits", "microsoft-cryptoapi", "apt-http",
        "debian apt", "libdnf", "dnf/", "yum/", "zypper", "pacman/", "packagekit", "softwareupdate",
        "com.apple.appstored", "osupdate", "mobileasset", "snapd", "fwupd", "ubuntu-release-upgrader",
        "unattended-upgrade", "chromeupdater", "googleupdate", "mozilla-update", "microsoftedgeupdate",
    )),
    (CLI, (
        "curl/", "wget/", "python-requests", "python-urllib", "python-httpx", "aiohttp/", "go-http-client",
        "libwww-perl", "lwp::", "httpie/", "aria2/", "powershell", "winhttp", "java/", "apache-httpclient",
        "node-fetch", "axios/", "undici", "reqwest/", "git/", "pip/", "npm/",
        "ansible", "terraform", "docker/", "containerd", "helm/", "kubectl",
    )),
    (MOBILE_APP, (
        "okhttp/", "cfnetwork/", "dalvik/", "alamofire", "fban/", "fbav/", "instagram", "whatsapp", "; wv)",
        "tiktok", "snapchat", "spotify/", "com.google.android", "grpc-java", "grpc-objc",
    )),
    (BROWSER, (
        "firefox/", "chrome/", "chromium/", "safari/", "edg/", "edge/", "opr/", "opera", "vivaldi",
        "samsungbrowser", "yabrowser", "msie ", "trident/",
    )),
)


@lru_cache(maxsize=8192)
def user_agent_category(user_agent: str | None) -> str:
    """One of USER_AGENT_CATEGORIES for a User-Agent header; empty or unknown agents are ``"other"``."""
    if not user_agent or user_agent == "-":
        return OTHER
    lowered = user_agent.lower()
    for category, tokens in USER_AGENT_RULES:
        for token in tokens:
            if token in lowered:
                return category
    return OTHER
