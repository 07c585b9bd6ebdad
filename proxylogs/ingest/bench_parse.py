"""Generate realistic Squid access-log lines and report parse throughput per format (run: python -m ...bench_parse)."""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from proxylogs.ingest.parse import Summary, parse_lines

_HOSTS = [
    "www.example.com", "cdn.example.net", "api.github.com", "update.microsoft.com", "deb.debian.org",
    "fonts.gstatic.com", "www.bbc.co.uk", "s3.eu-west-1.amazonaws.com", "login.blocked.example",
    "tracker.ads.example", "files.example.org", "video.example.tv",
]
_PATHS = ["/", "/index.html", "/static/app.js", "/img/logo.png", "/api/v1/items?page=2", "/dl/setup.exe",
          "/pool/main/s/squid/squid_5.7-2_amd64.deb", "/favicon.ico", "/styles/site.css", "/video/seg-0042.ts"]
_MIME = ["text/html", "application/javascript", "image/png", "application/json", "application/octet-stream",
         "text/css", "video/mp2t", "-"]
_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "curl/7.88.1", "Debian APT-HTTP/1.3 (2.6.1)", "python-requests/2.32.3",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
_CLIENTS = [f"10.8.0.{i}" for i in range(2, 60)] + [f"fd00:8::{i:x}" for i in range(2, 20)]
_USERS = ["-"] * 6 + ["alice", "bob"]


def _pick_request(rng: random.Random) -> tuple[str, str, str, str, int, int]:
    """(method, url, result code, hierarchy, status, bytes)."""
    host = rng.choice(_HOSTS)
    roll = rng.random()
    if "blocked" in host or "ads" in host:
        return "GET", f"http://{host}{rng.choice(_PATHS)}", "TCP_DENIED", "HIER_NONE", 403, 3400 + rng.randrange(50)
    if roll < 0.45:
        port = rng.choice(["443", "443", "443", "8443"])
        dest = rng.choice([f"{host}:{port}", f"93.184.{rng.randrange(256)}.{rng.randrange(256)}:443",
                           "[2001:db8::1]:443"])
        return "CONNECT", dest, "TCP_TUNNEL", "HIER_DIRECT", 200, rng.randrange(500, 2_000_000)
    if roll < 0.5:
        return "GET", f"http://{host}/", "TCP_DENIED", "HIER_NONE", 407, 3900
    status = rng.choice([200, 200, 200, 200, 304, 404, 301])
    code = rng.choice(["TCP_MISS", "TCP_MISS", "TCP_REFRESH_MODIFIED", "TCP_HIT", "TCP_MEM_HIT"])
    method = rng.choice(["GET", "GET", "GET", "POST", "HEAD"])
    return method, f"http://{host}{rng.choice(_PATHS)}", code, "HIER_DIRECT", status, rng.randrange(200, 500_000)


def generate(count: int, seed: int = 7) -> dict[str, list[str]]:
    """The same ``count`` requests rendered as native, common and combined lines."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    local = timezone(timedelta(hours=1))
    out: dict[str, list[str]] = {"squid": [], "common": [], "combined": []}
    ms = 0
    for _ in range(count):
        ms += rng.randrange(0, 40)
        when = start + timedelta(milliseconds=ms)
        client = rng.choice(_CLIENTS)
        user = rng.choice(_USERS)
        method, url, code, hier, status, size = _pick_request(rng)
        peer = "-" if hier == "HIER_NONE" else f"93.184.216.{rng.randrange(1, 255)}"
        mime = "-" if method == "CONNECT" else rng.choice(_MIME)
        epoch = when.timestamp()
        out["squid"].append(
            f"{int(epoch)}.{when.microsecond // 1000:03d} {rng.randrange(0, 90000):6d} {client} {code}/{status:03d} "
            f"{size} {method} {url} {user} {hier}/{peer} {mime}"
        )
        clf_time = when.astimezone(local).strftime("%d/%b/%Y:%H:%M:%S %z")
        head = f'{client} - {user} [{clf_time}] "{method} {url} HTTP/1.1" {status} {size}'
        out["common"].append(f"{head} {code}:{hier}")
        referer = "-" if method == "CONNECT" else "http://www.example.com/"
        agent = rng.choice(_UAS)  # Squid 5.7 writes header values raw
        out["combined"].append(f'{head} "{referer}" "{agent}" {code}:{hier}')
    return out


def bench(lines: list[str], fmt: str, rounds: int = 3) -> tuple[float, Summary]:
    """Best lines/s over ``rounds`` full passes of parse_lines."""
    best = 0.0
    summary = Summary()
    for _ in range(rounds):
        summary = Summary()
        began = time.perf_counter()
        for _ in parse_lines(lines, fmt, summary):
            pass
        elapsed = time.perf_counter() - began
        best = max(best, len(lines) / elapsed)
    return best, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--write", type=Path, help="also write the native-format lines to this file")
    args = parser.parse_args()
    generated = generate(args.lines)
    if args.write:
        for fmt, lines in generated.items():
            target = args.write if fmt == "squid" else args.write.with_name(f"{args.write.stem}.{fmt}.log")
            target.write_text("\n".join(lines) + "\n")
    for fmt, lines in generated.items():
        rate, summary = bench(lines, fmt)
        print(f"{fmt:9s} {len(lines):>8,d} lines  {rate:>10,.0f} lines/s  rejected={summary.rejected}")


if __name__ == "__main__":
    main()
