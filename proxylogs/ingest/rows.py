"""Native Squid lines straight to the import's row tuples: parse_squid and entry_row fused for the common line.

The import spends most of its Python time on a handful of fields per line, and most of those repeat: the same
URLs (every CONNECT host:443), the same clients, result codes and minutes. This loop keeps the derived columns of
a URL (destination, registrable domain, file extension, WAF category) and of a client (address, host, network)
in dictionaries, and builds the row without a LogRecord in between.

It only takes the plain shape of a line: ten fields, a millisecond timestamp, a client, result code and
hierarchy it has seen before, numbers in range and values that fit their columns. Any other line goes through
parse_squid and entry_row, which decide its row, its rejection reason or its blank count, so the result of a
batch is the same line for line as parse_lines followed by entry_row (proxylogs/tests/test_ingest_rows.py
compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proxylogs.ingest.domains import file_extension, registrable_domain
from proxylogs.ingest.parse import (
    _IPS,
    _NO_DESTINATION,
    ParseError,
    Summary,
    _client,
    _destination,
    blocked,
    parse_or_count,
    parse_squid,
    split_destination,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_CACHE_SIZE = 65536
# URLs of plain requests rarely repeat for long (query strings), CONNECT targets do: the URL dictionaries stay small
# enough (under 10 MiB each) not to weigh on the import's memory, which does not grow with the file.
_URL_CACHE_SIZE = 16384
_CACHED_URL_LENGTH = 256


class SquidRows:
    """Turns batches of native-format lines into row tuples (the import's COLUMNS order), remembering across batches.

    ``entry_row`` and ``client_columns`` are the import's own derivations (proxylogs.services), used for every
    line the fast path does not take and for each new client.
    """

    def __init__(self, *, source_id, waf, entry_row, client_columns):
        self.source_id = source_id
        self.waf = waf
        self.entry_row = entry_row
        self.client_columns = client_columns
        self._clients = {}
        self._urls = {}
        self._connects = {}
        self._minutes = {}
        # Result codes and hierarchies that parse_squid accepted and that fit their 64-character column.
        self._codes = set()
        self.fallbacks = 0
        """Lines handed to parse_squid and entry_row so far."""

    def _url_columns(self, method, url):
        """(destination, host, port, is_ip, domain, file_extension, waf_category), cut as entry_row cuts them."""
        if method == "CONNECT":
            destination, host, port, is_ip = split_destination(url, 443) if url != "-" else _NO_DESTINATION
        else:
            destination, host, port, is_ip = _destination(method, url)
        domain = registrable_domain(host)
        if destination is not None and len(destination) > 255:
            destination, host, domain = destination[:300], host[:255], domain and domain[:255]
        waf = self.waf
        return (destination, host, port, is_ip, domain, file_extension(url),
                waf.tag(url) if waf is not None else None)

    def _slow(self, number, line, rows, summary, samples):
        """The reference path for one line: parse_squid, then entry_row."""
        self.fallbacks += 1
        record = parse_or_count(parse_squid, number, line, summary)
        if record is None:
            return
        summary.parsed += 1
        row = self.entry_row(record, source_id=self.source_id, waf=self.waf)
        if row is None:
            samples.append([number, "value out of range"])
            return
        rows.append(row)
        codes = self._codes
        if len(codes) < 1024:
            for code in (record.result_code, record.hierarchy):
                if len(code) <= 64:
                    codes.add(code)

    def rows(self, lines, start, summary: Summary, samples):
        """Row tuples of the good lines; bad lines go to ``summary`` and out-of-range ones to ``samples``."""
        rows = []
        append = rows.append
        clients, urls, connects, minutes, codes = self._clients, self._urls, self._connects, self._minutes, self._codes
        source_id = self.source_id
        slow = self._slow
        last_seconds, head, second = None, None, 0
        number = start - 1
        for number, line in enumerate(lines, start):  # noqa: B007 - the last number counts the lines
            fields = line.split()
            if len(fields) != 10:
                slow(number, line, rows, summary, samples)
                continue
            ts_text, elapsed_text, client_text, code_status, size_text, method, url, user, hier_peer, mime = fields

            seconds_text, _, frac = ts_text.partition(".")
            if seconds_text != last_seconds:
                if len(frac) != 3 or not (seconds_text.isascii() and seconds_text.isdigit()):
                    slow(number, line, rows, summary, samples)
                    continue
                minute, second = divmod(int(seconds_text), 60)
                head = minutes.get(minute)
                if head is None:
                    try:
                        moment = _EPOCH + timedelta(minutes=minute)
                    except OverflowError:
                        slow(number, line, rows, summary, samples)
                        continue
                    if len(minutes) >= 4096:
                        minutes.clear()
                    head = minutes[minute] = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
                last_seconds = seconds_text
            elif len(frac) != 3:
                slow(number, line, rows, summary, samples)
                continue

            client = clients.get(client_text)
            if client is None:
                try:
                    address = _IPS.get(client_text) or _client(client_text)
                except ParseError:
                    slow(number, line, rows, summary, samples)
                    continue
                if len(clients) >= _CACHE_SIZE:
                    clients.clear()
                client = clients[client_text] = self.client_columns(address)

            code, _, status_text = code_status.rpartition("/")
            hierarchy, slash, peer = hier_peer.partition("/")
            if (code not in codes or hierarchy not in codes or not slash or len(method) > 32
                    or len(user) > 255 or len(peer) > 255 or len(mime) > 255):
                slow(number, line, rows, summary, samples)
                continue
            try:
                timestamp = datetime(*head, second, int(frac) * 1000, UTC)
                elapsed = int(elapsed_text)
                status = int(status_text)
                size = int(size_text)
            except ValueError:
                slow(number, line, rows, summary, samples)
                continue
            if not (0 <= elapsed <= _INT32 and 0 <= status <= 999 and 0 <= size <= _INT64):
                slow(number, line, rows, summary, samples)
                continue

            if method == "CONNECT":
                derived = connects.get(url)
                if derived is None:
                    derived = self._url_columns(method, url)
                    if len(url) <= _CACHED_URL_LENGTH:
                        if len(connects) >= _URL_CACHE_SIZE:
                            connects.clear()
                        connects[url] = derived
            else:
                derived = urls.get(url)
                if derived is None:
                    derived = self._url_columns(method, url)
                    if len(url) <= _CACHED_URL_LENGTH:
                        if len(urls) >= _URL_CACHE_SIZE:
                            urls.clear()
                        urls[url] = derived
            destination, host, port, is_ip, domain, extension, waf_category = derived
            summary.parsed += 1
            append((
                timestamp, elapsed, *client, None if user == "-" else user, method, url, destination, host, port,
                is_ip, domain, extension, status, code, size, hierarchy, None if peer == "-" or not peer else peer,
                None if mime == "-" else mime, None, None, None,
                blocked(status, code), waf_category, source_id,
            ))
        summary.lines += number - start + 1
        return rows
