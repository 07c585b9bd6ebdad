"""Parsers for Squid access-log lines (native ``squid``, ``common`` and ``combined`` logformats) into LogRecord."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import unquote

from vpnmonitor.addresses import canonical_ip_or_none

__all__ = [
    "FORMATS",
    "LogRecord",
    "ParseError",
    "Summary",
    "blocked",
    "is_blocked",
    "parse_combined",
    "parse_common",
    "parse_line",
    "parse_lines",
    "parse_squid",
    "split_destination",
    "status_text",
]


class ParseError(ValueError):
    """A log line that does not match the expected format; ``reason`` is short and stable enough to group by."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _LogRecordBase(NamedTuple):
    timestamp: datetime
    elapsed_ms: int | None
    client_ip: str
    result_code: str
    http_status: int
    bytes: int
    method: str
    url: str
    destination: str | None
    destination_host: str | None
    destination_port: int | None
    destination_is_ip: bool
    user: str | None
    hierarchy: str
    peer: str | None
    mime_type: str | None
    user_agent: str | None = None
    referer: str | None = None


class LogRecord(_LogRecordBase):
    """One access-log entry.

    Immutable and slotted; a NamedTuple because building one is ~6x cheaper than a frozen dataclass,
    which matters at 100k+ lines/s.  Fields absent from a format (elapsed_ms, peer, mime_type in CLF;
    user_agent/referer outside ``combined``) are None.  ``destination_port`` is the explicit port or
    the scheme's default (80/443/21), None when unknown.
    """

    __slots__ = ()

    @property
    def blocked(self) -> bool:
        return is_blocked(self)


# Skips NamedTuple's generated Python-level __new__ on the hot path; the field tuple must be complete.
_new_record = tuple.__new__

# ---------------------------------------------------------------------------------------------------------------
# Small cached helpers: client IPs, destinations and timestamps repeat heavily in real logs.

_canonical_ip = canonical_ip_or_none


def _is_ip(host: str) -> bool:
    # Cheap pre-check so ordinary hostnames never reach ipaddress.
    if ":" in host or (host and host[-1].isdigit()):
        return _canonical_ip(host) is not None
    return False


_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}


@lru_cache(maxsize=65536)
def split_destination(authority: str, default_port: int | None = None) -> tuple[str, str, int | None, bool]:
    """Split ``host``, ``host:port`` or ``[v6]:port`` into (destination, host, port, is_ip).

    ``destination`` is the lowercased authority without userinfo, as host or host:port (explicit port only);
    ``port`` falls back to ``default_port``.  An unusable port leaves port as ``default_port``.
    """
    authority = authority.rpartition("@")[2]
    port_text = ""
    if authority.startswith("["):
        end = authority.find("]")
        if end == -1:
            host = authority[1:]
        else:
            host = authority[1:end]
            rest = authority[end + 1:]
            if rest.startswith(":"):
                port_text = rest[1:]
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        # No colon, or a bare IPv6 literal without brackets.
        host = authority
    host = host.lower().rstrip(".") if host.endswith(".") else host.lower()
    is_ip = _is_ip(host)
    port = default_port
    if port_text and port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    if ":" in host and is_ip:
        shown_host = f"[{host}]"
    else:
        shown_host = host
    destination = f"{shown_host}:{port_text}" if port_text else shown_host
    return destination, host, port, is_ip


_NO_DESTINATION: tuple[None, None, None, bool] = (None, None, None, False)


def _destination(method: str, url: str) -> tuple[str | None, str | None, int | None, bool]:
    if method == "CONNECT":
        return split_destination(url, 443) if url != "-" else _NO_DESTINATION
    scheme_end = url.find("://")
    if scheme_end <= 0:
        # "error:invalid-request", "-", relative URLs from broken clients: no destination to report.
        return _NO_DESTINATION
    start = scheme_end + 3
    end = url.find("/", start)
    authority = url[start:] if end == -1 else url[start:end]
    if "?" in authority or "#" in authority:
        authority = authority.split("?", 1)[0].split("#", 1)[0]
    if not authority:
        return _NO_DESTINATION
    scheme = url[:scheme_end]
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        default_port = _DEFAULT_PORTS.get(scheme.lower())
    return split_destination(authority, default_port)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


@lru_cache(maxsize=4096)
def _parse_clf_time(text: str) -> datetime:
    # dd/Mon/YYYY:HH:MM:SS +zzzz, as Squid's %tl writes it (local time with offset).
    if len(text) != 26 or text[2] != "/" or text[6] != "/" or text[11] != ":" or text[20] != " ":
        raise ParseError("bad CLF timestamp")
    try:
        month = _MONTHS[text[3:6]]
        sign = text[21]
        if sign not in "+-":
            raise ParseError("bad CLF timezone")
        offset = timedelta(hours=int(text[22:24]), minutes=int(text[24:26]))
        tz = timezone(offset if sign == "+" else -offset)
        local = datetime(int(text[7:11]), month, int(text[0:2]),
                         int(text[12:14]), int(text[15:17]), int(text[18:20]), tzinfo=tz)
    except (KeyError, ValueError) as exc:
        raise ParseError("bad CLF timestamp") from exc
    return local.astimezone(UTC)


# A client logged by name (Squid's log_fqdn on, format code %>A): DNS labels of letters, digits, '-' and '_'.
# The last label holds a letter: all digits would be a malformed IPv4 address.
_CLIENT_HOST = re.compile(r"^(?=.{1,253}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
                          r"(?:[A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]*)\.?$")


def _client(text: str) -> str:
    """The client address in canonical form, or a client host name as given.

    A link-local client logged with its zone ("fe80::1%eth0") is kept without it: the zone names the proxy's own
    interface, not the client, and dropping the line would lose a real request."""
    ip = _canonical_ip(text.partition("%")[0] if "%" in text else text)
    if ip is None:
        if not _CLIENT_HOST.match(text):
            raise ParseError("bad client address")
        ip = text
    if len(_IPS) >= _MEMO_LIMIT:
        _IPS.clear()
    _IPS[text] = ip
    return ip


def canonical_client(text: str) -> str:
    """A client as entries store it: the canonical address, or a host name as given; ParseError otherwise."""
    return _client(text)


def _dash(text: str) -> str | None:
    return None if text == "-" or not text else text


# ---------------------------------------------------------------------------------------------------------------
# Native format:  %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt

def parse_squid(line: str) -> LogRecord:
    """Parse one line of Squid's native ``squid`` logformat."""
    # Deliberately inlined: this is the hot path, and each helper call costs as much as a field's work.
    fields = line.split()
    count = len(fields)
    if count != 10:
        if count < 10:
            raise ParseError("too few fields" if count else "empty line")
        # %[un does not escape spaces, so a user name may span several fields; everything else cannot.
        user_text = " ".join(fields[7:count - 2])
    else:
        user_text = fields[7]
    ts_text, elapsed_text, client_text, code_status, size_text, method, url = fields[:7]

    seconds_text, _, frac = ts_text.partition(".")
    base = _SECONDS.get(seconds_text)
    try:
        if base is None:
            base = _epoch_base(seconds_text)
        if len(frac) == 3:
            micro = int(frac) * 1000
        else:
            micro = int((frac + "000000")[:6]) if frac else 0
        # datetime(...) with positional fields is ~4x cheaper than base.replace(microsecond=...).
        timestamp = datetime(*base, micro, UTC)
    except (ValueError, OverflowError):
        raise ParseError("bad timestamp") from None

    client = _IPS.get(client_text)
    if client is None:
        client = _client(client_text)

    code, _, status_text_ = code_status.rpartition("/")
    if code not in _CODES:
        _check_code(code, "bad result code/status")
    hierarchy, slash, peer = fields[count - 2].partition("/")
    if not slash:
        raise ParseError("bad hierarchy/peer")
    if hierarchy not in _CODES:
        _check_code(hierarchy, "bad hierarchy/peer")
    try:
        elapsed = int(elapsed_text)
        status = int(status_text_)
        size = int(size_text)
    except ValueError:
        raise ParseError(_which_int_is_bad(elapsed_text, status_text_, size_text)) from None
    if elapsed < 0 or status < 0 or size < 0:
        raise ParseError(_which_int_is_bad(elapsed_text, status_text_, size_text))

    if method == "CONNECT":
        destination, host, port, dest_is_ip = split_destination(url, 443) if url != "-" else _NO_DESTINATION
    else:
        destination, host, port, dest_is_ip = _destination(method, url)
    mime = fields[count - 1]
    return _new_record(LogRecord, (
        timestamp, elapsed, client, code, status, size, method, url,
        destination, host, port, dest_is_ip,
        None if user_text == "-" else user_text, hierarchy, None if peer == "-" or not peer else peer,
        None if mime == "-" else mime, None, None,
    ))


_SECONDS: dict[str, tuple[int, int, int, int, int, int]] = {}
_CODES: set[str] = set()
_IPS: dict[str, str] = {}
_MEMO_LIMIT = 65536


_MINUTES: dict[int, tuple[int, int, int, int, int]] = {}


def _epoch_base(seconds_text: str) -> tuple[int, int, int, int, int, int]:
    if not (seconds_text.isascii() and seconds_text.isdigit()):
        raise ValueError(seconds_text)
    if len(_SECONDS) >= _MEMO_LIMIT:
        _SECONDS.clear()
    # A busy log repeats each second; a sparse one (or a file spanning months) still repeats each minute, and
    # date arithmetic costs several times a dictionary lookup and a tuple.
    minute, second = divmod(int(seconds_text), 60)
    head = _MINUTES.get(minute)
    if head is None:
        if len(_MINUTES) >= 4096:  # lines come in time order: old minutes do not come back
            _MINUTES.clear()
        moment = _EPOCH + timedelta(minutes=minute)
        head = _MINUTES[minute] = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
    base = _SECONDS[seconds_text] = (*head, second)
    return base


def _check_code(code: str, reason: str) -> None:
    if not (code and code.isascii() and code.replace("_", "").isalnum()):
        raise ParseError(reason)
    if len(_CODES) < 1024:
        _CODES.add(code)


def _which_int_is_bad(elapsed: str, status: str, size: str) -> str:
    for text, what in ((elapsed, "elapsed time"), (status, "http status"), (size, "byte count")):
        if not (text.isascii() and text.isdigit()):
            return f"bad {what}"
    return "bad number"


# ---------------------------------------------------------------------------------------------------------------
# CLF family, as Squid defines them:
#   common   %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh
#   combined %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh
# %ru is %-encoded (no spaces), but Squid 5.7 writes header values raw: spaces and even '"' appear unescaped, so the
# quoted tail of a combined line is split on '" "' rather than matched as two well-formed quoted strings.
# The request line is not always HTTP: a connection closed before any request logs "- error:... NONE/0.0".

_CLF_HEAD_RE = re.compile(r'(\S+) (\S+) (.*?) \[([^\]]*)\] "(\S+) (\S+) [^"\s]*" (\d+) (\d+|-) ')


def _clf_record(groups: tuple[str, ...], code_hier: str, referer: str | None, user_agent: str | None) -> LogRecord:
    client_text, _ident, user_text, time_text, method, url, status_text_, size_text = groups
    code, colon, hierarchy = code_hier.partition(":")
    if not colon or not hierarchy:
        raise ParseError("bad squid code:hierarchy")
    if code not in _CODES:
        _check_code(code, "bad result code")
    destination, host, port, dest_is_ip = _destination(method, url)
    return LogRecord(
        _parse_clf_time(time_text), None, _IPS.get(client_text) or _client(client_text), code, int(status_text_),
        0 if size_text == "-" else int(size_text), method, url,
        destination, host, port, dest_is_ip,
        _dash(user_text), hierarchy, None, None, user_agent, referer,
    )


def parse_common(line: str) -> LogRecord:
    """Parse one line of Squid's ``common`` logformat (CLF plus %Ss:%Sh; second resolution)."""
    match = _CLF_HEAD_RE.match(line)
    if match is None:
        raise ParseError("not a common-format line")
    code_hier = line[match.end():].strip()
    if not code_hier or " " in code_hier:
        raise ParseError("bad squid code:hierarchy")
    return _clf_record(match.groups(), code_hier, None, None)


def parse_combined(line: str) -> LogRecord:
    """Parse one line of Squid's ``combined`` logformat; Referer and User-Agent are kept as logged (see _user_agent)."""
    match = _CLF_HEAD_RE.match(line)
    if match is None:
        raise ParseError("not a combined-format line")
    quoted, _, code_hier = line[match.end():].rstrip().rpartition(" ")
    if len(quoted) < 5 or quoted[0] != '"' or quoted[-1] != '"':
        raise ParseError("missing referer/user-agent")
    # A Referer is a URL, in which clients %-encode quotes and spaces, so the first '" "' is the separator.
    referer, separator, agent = quoted[1:-1].partition('" "')
    if not separator:
        raise ParseError("missing referer/user-agent")
    return _clf_record(match.groups(), code_hier, _dash(referer), _user_agent(agent))


@lru_cache(maxsize=8192)
def _user_agent(text: str) -> str | None:
    if text == "-" or not text:
        return None
    if "%20" in text and " " not in text:
        # Written with Squid's "pass-through URL encoding" (other versions or %#{User-Agent}>h): decode it.  A raw
        # agent always has spaces, so a stray "%" in one is left alone.
        return unquote(text)
    return text


FORMATS: dict[str, Callable[[str], LogRecord]] = {
    "squid": parse_squid,
    "native": parse_squid,
    "common": parse_common,
    "combined": parse_combined,
}


def _parser_for(fmt: str) -> Callable[[str], LogRecord]:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {sorted(FORMATS)}") from None


def parse_line(line: str, fmt: str = "squid") -> LogRecord:
    """Parse one line (trailing newline allowed) in the given format; raises ParseError on a bad line."""
    return _parser_for(fmt)(line.rstrip("\r\n"))


@dataclass
class Summary:
    """Running counts for parse_lines; ``errors`` keeps the first ``max_errors`` (line_number, reason) pairs."""

    lines: int = 0
    parsed: int = 0
    rejected: int = 0
    blank: int = 0
    max_errors: int = 10
    errors: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line_number: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < self.max_errors:
            self.errors.append((line_number, reason))


def parse_lines(
    lines: Iterable[str], fmt: str = "squid", summary: Summary | None = None, start: int = 1
) -> Iterator[tuple[int, LogRecord]]:
    """Yield (line_number, record) for each good line; bad lines are counted in ``summary``, never raised.

    Blank lines are skipped and counted separately.  ``start`` is the number of the first line, so callers
    resuming a file mid-way can keep numbering consistent.
    """
    parser = _parser_for(fmt)
    if summary is None:
        summary = Summary()
    number = start - 1
    parsed = 0
    try:
        for number, line in enumerate(lines, start):
            record = parse_or_count(parser, number, line, summary)
            if record is not None:
                parsed += 1
                yield number, record
    finally:
        summary.lines += number - start + 1
        summary.parsed += parsed


def parse_or_count(parser, number: int, line: str, summary: Summary) -> LogRecord | None:
    """The record of one line, or None once the line is counted in ``summary`` as blank or rejected."""
    try:
        return parser(line)
    except ParseError as exc:
        if line.isspace() or not line:
            summary.blank += 1
        else:
            summary.reject(number, exc.reason)
        return None


# ---------------------------------------------------------------------------------------------------------------

def status_text(code: int, method: str | None = None) -> str:
    """``"403 Forbidden"`` style text; CONNECT 200 is ``"200 Connection established"``, 0 is ``"0 No response"``."""
    if code == 200 and method == "CONNECT":
        return "200 Connection established"
    if code == 0:
        return "0 No response"
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def is_blocked(record: LogRecord) -> bool:
    """True when the proxy refused the request (see blocked())."""
    return blocked(record.http_status, record.result_code)


def blocked(http_status: int, result_code: str) -> bool:
    """True when the proxy refused a request: HTTP 403, or a result code with DENIED/BLOCKED.

    A 407 is never blocked: TCP_DENIED/407 is Squid asking the client for proxy credentials, and a browser
    normally retries with them straight away, so counting it would report every authenticated session as blocked.
    """
    if http_status == 407:
        return False
    return http_status == 403 or "DENIED" in result_code or "BLOCKED" in result_code
