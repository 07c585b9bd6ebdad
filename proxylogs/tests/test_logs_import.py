"""Storage and import: derived columns, the hourly rollup, checkpoints, the command and the tail task."""

import datetime as dt
import io
import os

import pytest
from django.core.management import call_command
from django.db.models import Count, Q, Sum

from proxylogs import services
from proxylogs.ingest.parse import parse_squid
from proxylogs.models import LogImport, LogSource, ProxyLogEntry, ProxyLogHour
from proxylogs.tests import logs_dataset

pytestmark = pytest.mark.django_db

LINES = [
    "1795335350.143      2 127.0.0.1 TCP_MISS/200 626 GET http://127.0.0.1:18080/ - HIER_DIRECT/127.0.0.1 text/html",
    "1795335350.161      8 2001:db8::5 TCP_MISS/404 604 GET http://files.example.co.uk/a.zip bob HIER_DIRECT/192.0.2.8 "
    "text/plain",
    "1795335350.173      1 10.0.0.5 TCP_DENIED/403 3423 GET http://www.blocked.example/ - HIER_NONE/- text/html",
    "1795338950.199      0 10.0.0.5 TCP_DENIED/403 3393 CONNECT [2001:db8::dead]:443 - HIER_NONE/- text/html",
    "1795338950.250      0 10.0.0.6 TCP_DENIED/407 3900 GET http://intranet.example/ - HIER_NONE/- text/html",
]


def write(path, lines, *, mode="a", newline=True):
    with open(path, mode) as log:
        log.write("\n".join(lines) + ("\n" if newline else ""))


def rollup_matches_entries():
    hours = {row.hour: (row.total, row.blocked, row.ip_blocked, row.bytes) for row in ProxyLogHour.objects.all()}
    assert sum(total for total, *_ in hours.values()) == ProxyLogEntry.objects.filter(pk__gt=0).count()
    raw = ProxyLogEntry.objects.aggregate(n_blocked=Count("id", filter=Q(blocked=True)),
                                          n_ip=Count("id", filter=Q(blocked=True, destination_is_ip=True)),
                                          n_bytes=Sum("bytes"))
    assert sum(b for _, b, _, _ in hours.values()) == raw["n_blocked"]
    assert sum(i for _, _, i, _ in hours.values()) == raw["n_ip"]
    assert sum(n for *_, n in hours.values()) == (raw["n_bytes"] or 0)
    return hours


def test_an_import_keeps_milliseconds_ipv6_connect_targets_user_hierarchy_and_mime_type(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES)
    result = services.import_source(services.source_for_path(log))
    assert (result.imported, result.rejected) == (5, 0)
    first = ProxyLogEntry.objects.get(url="http://127.0.0.1:18080/")
    assert first.timestamp == dt.datetime(2026, 11, 22, 8, 15, 50, 143000, tzinfo=dt.UTC)
    assert (first.elapsed_ms, first.destination, first.destination_port, first.destination_is_ip) == (
        2, "127.0.0.1:18080", 18080, True)
    second = ProxyLogEntry.objects.get(client_ip="2001:db8::5")
    assert (second.user, second.hierarchy, second.peer, second.mime_type) == ("bob", "HIER_DIRECT", "192.0.2.8",
                                                                               "text/plain")
    assert (second.domain, second.file_extension, second.client_network) == ("example.co.uk", "zip", "2001:db8::")
    tunnel = ProxyLogEntry.objects.get(method="CONNECT")
    assert (tunnel.destination, tunnel.destination_host, tunnel.blocked) == ("[2001:db8::dead]:443", "2001:db8::dead",
                                                                            True)
    assert ProxyLogEntry.objects.get(http_status=407).blocked is False


def test_the_rollup_stays_exact_through_inserts_prunes_and_clears(tmp_path):
    logs_dataset.build()
    hours = rollup_matches_entries()
    assert len(hours) == 4 and ProxyLogEntry.objects.count() == 9
    services.clear_old_logs(None)
    rollup_matches_entries()
    assert ProxyLogEntry.objects.count() == 8
    assert services.delete_entries(ProxyLogEntry.objects.filter(http_status=404)) == 1
    rollup_matches_entries()
    assert ProxyLogEntry.objects.count() == 7
    services.clear_logs(None)
    assert ProxyLogEntry.objects.count() == 0 and not ProxyLogHour.objects.exists()


def test_a_half_written_last_line_waits_for_its_newline_and_is_imported_once(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES[:2])
    write(log, [LINES[2][:40]], newline=False)
    source = services.source_for_path(log)
    assert services.import_source(source).imported == 2
    assert services.import_source(source).imported == 0
    write(log, [LINES[2][40:]])
    assert services.import_source(source).imported == 1
    assert services.import_source(source).imported == 0
    assert ProxyLogEntry.objects.count() == 3
    assert ProxyLogEntry.objects.filter(url="http://www.blocked.example/").count() == 1
    source.refresh_from_db()
    assert (source.lines_imported, source.checkpoint["offset"], source.checkpoint["line"]) == (
        3, os.path.getsize(log), 3)


def test_rotation_imports_the_old_files_tail_then_the_new_file(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES[:2])
    source = services.source_for_path(log)
    services.import_source(source)
    write(log, LINES[2:3])  # written just before logrotate renames the file
    os.rename(log, tmp_path / "access.log.0")
    write(log, LINES[3:], mode="w")
    result = services.import_source(source)
    assert result.imported == 3 and "rotated" in result.events
    assert ProxyLogEntry.objects.count() == 5
    rollup_matches_entries()


def test_truncation_restarts_at_the_beginning(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES)
    source = services.source_for_path(log)
    services.import_source(source)
    write(log, LINES[:1], mode="w")  # copytruncate, then one new line
    result = services.import_source(source)
    assert (result.imported, result.events) == (1, ["truncated"])
    assert ProxyLogEntry.objects.count() == 6


def test_bad_lines_are_counted_with_their_line_numbers_and_do_not_stop_the_import(tmp_path):
    log = tmp_path / "access.log"
    write(log, [LINES[0], "garbage", "", LINES[1], "1795335350.1 x 10.0.0.1 TCP_MISS/200", "nul\x00line", LINES[2]])
    source = services.source_for_path(log)
    result = services.import_source(source)
    assert (result.imported, result.rejected) == (3, 3)
    assert [number for number, _ in result.rejected_samples] == [2, 5, 6]
    run = LogImport.objects.get()
    assert (run.lines_imported, run.lines_rejected, run.status) == (3, 3, "success")
    source.refresh_from_db()
    assert (source.lines_imported, source.lines_rejected) == (3, 3)


def test_an_import_stops_when_another_moved_the_checkpoint(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES)
    source = services.source_for_path(log)
    LogSource.objects.filter(pk=source.pk).update(checkpoint={"device": 1, "inode": 1, "offset": 10, "head": ""})
    with pytest.raises(services.ImportConflict):
        services.import_source(source)
    assert ProxyLogEntry.objects.count() == 0
    assert LogImport.objects.get().status == "failed"


def test_the_command_prints_a_summary_and_a_second_run_imports_nothing(tmp_path):
    log = tmp_path / "access.log"
    write(log, [LINES[0], "garbage", *LINES[1:]])
    out = io.StringIO()
    call_command("import_proxy_log", str(log), "--no-progress", stdout=out)
    assert "imported 5 lines, rejected 1" in out.getvalue()
    assert "first rejected lines: 2 (too few fields)" in out.getvalue()
    assert "lines/s" in out.getvalue()
    out = io.StringIO()
    call_command("import_proxy_log", str(log), "--no-progress", stdout=out)
    assert "imported 0 lines, rejected 0" in out.getvalue()
    assert ProxyLogEntry.objects.count() == 5
    source = LogSource.objects.get()
    assert (source.path, source.enabled, source.format) == (str(log), False, "squid")


def test_the_command_refuses_a_format_that_contradicts_the_source(tmp_path):
    from django.core.management.base import CommandError

    log = tmp_path / "access.log"
    write(log, LINES)
    call_command("import_proxy_log", str(log), "--no-progress", stdout=io.StringIO())
    with pytest.raises(CommandError, match="already configured as format 'squid'"):
        call_command("import_proxy_log", str(log), "--format", "combined", stdout=io.StringIO())


def test_the_command_reads_the_combined_format_with_user_agent_and_referer():
    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "squid57_harness_combined.log")
    call_command("import_proxy_log", fixture, "--format", "combined", "--no-progress", stdout=io.StringIO())
    entry = ProxyLogEntry.objects.exclude(referer=None).first()
    assert entry.user_agent == "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
    assert entry.user_agent_category == "browser"
    assert entry.referer.startswith("http://ref.example/page")


def test_the_tail_task_reads_enabled_sources_and_records_a_missing_file(tmp_path):
    from proxylogs.tasks import tail_proxy_logs

    log = tmp_path / "access.log"
    write(log, LINES)
    LogSource.objects.create(name="main", path=str(log))
    LogSource.objects.create(name="gone", path=str(tmp_path / "missing.log"))
    LogSource.objects.create(name="off", path=str(log), enabled=False)
    assert tail_proxy_logs() == {"gone": {"imported": 0, "rejected": 0}, "main": {"imported": 5, "rejected": 0}}
    assert tail_proxy_logs()["main"] == {"imported": 0, "rejected": 0}
    assert ProxyLogEntry.objects.count() == 5
    assert LogSource.objects.get(name="main").last_import_at is not None


def test_last_import_is_when_an_import_last_succeeded(viewer_client, tmp_path):
    from vpnmonitor.timeseries import format_timestamp

    log = tmp_path / "access.log"
    write(log, LINES)
    services.import_source(services.source_for_path(log))
    stats = viewer_client.get("/api/logs/stats").json()["data"]
    assert stats["last_import"] == format_timestamp(LogImport.objects.get().finished_at)
    assert (stats["total_count"], stats["blocked_count"], stats["ip_blocks_count"]) == (5, 2, 1)


def test_the_beat_schedule_tails_every_30_seconds():
    from vpnmonitor.schedule import SCHEDULE

    entry = SCHEDULE["tail-proxy-logs"]
    assert (entry["task"], entry["every_seconds"]) == ("proxylogs.tasks.tail_proxy_logs", 30)
    assert entry["expires"] <= 30


def _parse_threads():
    import threading

    return [thread for thread in threading.enumerate() if thread.name == "proxylogs-parse"]


def test_small_batches_keep_line_numbers_counts_and_the_checkpoint_across_batches(tmp_path):
    log = tmp_path / "access.log"
    lines = [*LINES, "garbage", *LINES, "", "more garbage", *LINES]
    write(log, lines)
    source = services.source_for_path(log)
    result = services.import_source(source, batch_bytes=150)  # about one line per batch
    assert (result.imported, result.rejected, result.blank) == (15, 2, 1)
    assert [number for number, _ in result.rejected_samples] == [6, 13]
    source.refresh_from_db()
    assert (source.lines_imported, source.lines_rejected, source.checkpoint["line"]) == (15, 2, len(lines))
    assert source.checkpoint["offset"] == os.path.getsize(log)
    assert ProxyLogEntry.objects.count() == 15
    rollup_matches_entries()
    assert not _parse_threads()


def test_a_batch_of_several_chunks_commits_once_and_upserts_the_rollups_of_all_its_chunks_once(tmp_path, monkeypatch):
    from proxylogs import dashboard_rollups
    from vpnmonitor import rollups as core

    monkeypatch.setattr(services, "CHUNK_BYTES", 150)  # one line a chunk
    calls = {"transactions": 0, "copies": [], "upserts": []}
    real_commit, real_store_rows, real_apply = (services._commit_without_waiting_for_the_disk, services.store_rows,
                                                core.apply)

    def commit():
        calls["transactions"] += 1
        real_commit()

    def store_rows(rows, counts=None, **encoded):
        calls["copies"].append(len(rows))
        return real_store_rows(rows, counts, **encoded)

    def apply(counts, **kwargs):
        if counts:
            calls["upserts"].append(calls["transactions"])
        return real_apply(counts, **kwargs)

    monkeypatch.setattr(services, "_commit_without_waiting_for_the_disk", commit)
    monkeypatch.setattr(services, "store_rows", store_rows)
    monkeypatch.setattr(core, "apply", apply)
    log = tmp_path / "access.log"
    lines = [*LINES, "garbage", *LINES, *LINES, LINES[0]]
    write(log, lines)
    source = services.source_for_path(log)
    # A batch ends where one more chunk could take it past 400 bytes (lines of 95 to 122 bytes).
    result = services.import_source(source, batch_bytes=400)
    assert (result.imported, result.rejected) == (16, 1)
    assert result.rejected_samples == [[6, "too few fields"]]
    # 16 chunks of a line (the garbage shares the fifth line's) in 6 batches of three, the last one of the last line
    # and then of no rows at the end of the file: each batch is one transaction and one upsert of every rollup,
    # with the counts of all its chunks.
    assert calls["copies"] == [1] * 16 + [0]
    assert calls["transactions"] == 6
    assert calls["upserts"] == [1, 2, 3, 4, 5, 6]
    source.refresh_from_db()
    assert (source.lines_imported, source.lines_rejected, source.checkpoint["line"]) == (16, 1, 17)
    rollup_matches_entries()

    def rollup_rows():
        return {rollup: sorted(rollup.rollup_model.objects.values_list(
            *rollup.key, *[measure.name for measure in rollup.measures]), key=repr)
            for rollup in dashboard_rollups.ROLLUPS}

    counted = rollup_rows()
    assert len(counted[dashboard_rollups.HOST_CLIENTS_SEEN]) == 5
    dashboard_rollups.rebuild()
    assert rollup_rows() == counted


def test_each_batch_commits_asynchronously_with_its_checkpoint_on_postgresql(tmp_path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    log = tmp_path / "access.log"
    write(log, LINES)
    source = services.source_for_path(log)
    with CaptureQueriesContext(connection) as queries:
        result = services.import_source(source, batch_bytes=250)  # two lines per batch
    assert result.imported == 5
    statements = [query["sql"] for query in queries.captured_queries]
    # Each batch sets it for its own transaction only, before the checkpoint is locked and the rows are copied.
    settings = [n for n, sql in enumerate(statements) if sql == "SET LOCAL synchronous_commit = off"]
    locks = [n for n, sql in enumerate(statements) if "FOR UPDATE" in sql]
    assert len(settings) == len(locks) == 3
    assert all(setting + 1 == lock for setting, lock in zip(settings, locks, strict=True))
    source.refresh_from_db()
    assert (source.lines_imported, source.checkpoint["line"]) == (5, 5)


def test_a_failed_batch_keeps_the_batches_before_it_and_a_rerun_imports_the_rest_once(tmp_path, monkeypatch):
    log = tmp_path / "access.log"
    write(log, LINES)
    source = services.source_for_path(log)
    real_store_rows = services.store_rows
    calls = []

    def failing_store_rows(rows, counts=None, **encoded):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return real_store_rows(rows, counts, **encoded)

    monkeypatch.setattr(services, "store_rows", failing_store_rows)
    with pytest.raises(RuntimeError, match="database went away"):
        services.import_source(source, batch_bytes=150)
    assert not _parse_threads()
    stored = ProxyLogEntry.objects.count()
    assert stored == sum(calls[:2])
    assert LogImport.objects.get().status == "failed"
    monkeypatch.setattr(services, "store_rows", real_store_rows)
    source.refresh_from_db()
    result = services.import_source(source, batch_bytes=150)
    assert result.imported == len(LINES) - stored
    assert ProxyLogEntry.objects.count() == len(LINES)
    assert sorted(ProxyLogEntry.objects.values_list("timestamp", flat=True)) == sorted(
        parse_squid(line).timestamp for line in LINES)


def test_an_error_while_parsing_fails_the_import_and_stores_nothing_after_it(tmp_path, monkeypatch):
    log = tmp_path / "access.log"
    write(log, LINES)
    source = services.source_for_path(log)
    real_client_columns = services._client_columns

    # The derived columns of the fifth line's client (10.0.0.6, first seen there) cannot be computed.
    def failing_client_columns(client):
        if client == "10.0.0.6":
            raise LookupError("broken derivation")
        return real_client_columns(client)

    monkeypatch.setattr(services, "_client_columns", failing_client_columns)
    with pytest.raises(LookupError, match="broken derivation"):
        services.import_source(source, batch_bytes=150)
    assert not _parse_threads()
    assert ProxyLogEntry.objects.count() == 4
    source.refresh_from_db()
    assert source.checkpoint["line"] == 4 and "LookupError" in source.last_error


def test_an_ipv4_mapped_client_and_a_long_user_are_stored_as_given(tmp_path):
    log = tmp_path / "access.log"
    write(log, [LINES[0].replace("127.0.0.1 TCP", "::ffff:10.0.0.7 TCP").replace(" - HIER", f" {'u' * 300} HIER")])
    services.import_source(services.source_for_path(log))
    entry = ProxyLogEntry.objects.get()
    assert (entry.client_ip, entry.client_network, entry.user) == ("::ffff:10.0.0.7", "::ffff:10.0.0.0", "u" * 255)


def test_the_waf_tagger_remembers_short_urls_only_and_answers_as_the_pattern_does():
    from proxylogs.models import WafCategory

    tagger = services.WafTagger([WafCategory(name="xss", label="XSS", pattern="<script"),
                                 WafCategory(name="trav", label="Traversal", pattern=r"\.\./")])
    long_url = "http://a.example/" + "x" * 300 + "<SCRIPT>"
    urls = ["http://a.example/?q=<ScRiPt>", "http://a.example/../etc", "http://a.example/ok", long_url]
    first = [tagger.tag(url) for url in urls]
    assert first == ["xss", "trav", None, "xss"]
    assert [tagger.tag(url) for url in urls] == first
    assert long_url not in tagger._memo and len(tagger._memo) == 3


def test_long_values_are_cut_to_their_columns(tmp_path):
    host = "a" * 250 + ".example"
    line = (f"1795335350.143 2 10.0.0.5 {'TCP_MISS' * 10}/200 626 {'M' * 40} http://{host}:8080/x.zip {'u' * 300} "
            f"{'HIER_DIRECT' * 7}/{'p' * 300} {'t' * 300}")
    log = tmp_path / "access.log"
    write(log, [line])
    assert services.import_source(services.source_for_path(log)).imported == 1
    entry = ProxyLogEntry.objects.get()
    assert (entry.destination, entry.destination_host, entry.domain) == (f"{host}:8080", host[:255], host[:255])
    assert (len(entry.user), len(entry.method), len(entry.result_code), len(entry.hierarchy), len(entry.peer),
            len(entry.mime_type)) == (255, 32, 64, 64, 255, 255)
    assert entry.file_extension == "zip"


def test_rollup_hours_are_utc_hours_whatever_the_sessions_time_zone(tmp_path):
    from django.db import connection

    def session_time_zone(name):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET TimeZone TO '{name}'")

    log = tmp_path / "access.log"
    write(log, [LINES[0].replace("1795335350.143", stamp) for stamp in ("1795334399.999", "1795334400.000",
                                                                        "1795337999.500", "-1.0", "0.5")])
    session_time_zone("Asia/Kolkata")  # +05:30: a local hour is not a UTC hour
    assert services.import_source(services.source_for_path(log)).imported == 4  # "-1.0" is a bad timestamp
    early = ProxyLogEntry.objects.filter(timestamp__lt=dt.datetime(1971, 1, 1, tzinfo=dt.UTC))
    assert services.delete_entries(early) == 1  # subtracted in the session's time zone too
    session_time_zone("UTC")  # how Django reads timestamps
    assert sorted(ProxyLogHour.objects.values_list("hour", "total")) == [
        (dt.datetime(2026, 11, 22, 7, tzinfo=dt.UTC), 1),
        (dt.datetime(2026, 11, 22, 8, tzinfo=dt.UTC), 2),
    ]
    rollup_matches_entries()
