"""A last line without a newline: a one-shot import takes it once the file stopped growing, tails wait for it."""

import io
import os
import threading
import time

import pytest
from django.core.management import call_command
from django.db.models import Sum

from proxylogs import services
from proxylogs.models import LogSource, ProxyLogEntry
from proxylogs.tests.test_logs_import import LINES, write
from vpnmonitor.testing.real import real_fixture

pytestmark = pytest.mark.django_db
NO_NEWLINE_NOTE = "the last line had no newline; imported as it is, since the file stopped growing"


def age(path, seconds=60):
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_the_command_imports_every_line_of_a_real_log_that_ends_without_a_newline():
    path = real_fixture("squid/squid_to_json/access.log")
    assert not path.read_bytes().endswith(b"\n")
    out = io.StringIO()

    call_command("import_proxy_log", str(path), "--no-progress", stdout=out)

    assert "imported 3 lines, rejected 0" in out.getvalue()
    assert NO_NEWLINE_NOTE in out.getvalue()
    assert ProxyLogEntry.objects.count() == 3
    assert ProxyLogEntry.objects.aggregate(total=Sum("bytes"))["total"] == 11_559
    last = ProxyLogEntry.objects.order_by("timestamp").last()
    assert (last.client_ip, last.mime_type, last.peer) == ("192.168.5.65", "text/html", "178.63.73.246")
    source = LogSource.objects.get()
    assert (source.checkpoint["offset"], source.checkpoint["line"]) == (os.path.getsize(path), 3)


def test_the_tail_holds_a_partial_last_line_that_a_one_shot_import_takes_once_the_file_stopped_growing(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES[:2])
    write(log, [LINES[2]], newline=False)
    age(log)
    LogSource.objects.create(name="main", path=str(log))

    assert services.tail_enabled_sources() == {"main": {"imported": 2, "rejected": 0}}
    assert services.tail_enabled_sources() == {"main": {"imported": 0, "rejected": 0}}

    out = io.StringIO()
    call_command("import_proxy_log", str(log), "--no-progress", stdout=out)
    assert "imported 1 lines, rejected 0" in out.getvalue() and NO_NEWLINE_NOTE in out.getvalue()
    assert ProxyLogEntry.objects.filter(url="http://www.blocked.example/").count() == 1
    # Nothing is read twice afterwards, whoever reads next.
    assert services.tail_enabled_sources() == {"main": {"imported": 0, "rejected": 0}}
    assert ProxyLogEntry.objects.count() == 3


def test_a_file_that_still_grows_keeps_its_partial_line_until_the_newline_arrives(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES[:2])
    write(log, [LINES[2][:40]], newline=False)
    # The writer finishes the line while the import waits to see whether the file has settled.
    finisher = threading.Timer(0.5, write, args=(log, [LINES[2][40:]]))
    finisher.start()
    out = io.StringIO()
    try:
        call_command("import_proxy_log", str(log), "--no-progress", stdout=out)
    finally:
        finisher.join()

    # The half line was not taken as it was: the import read the line whole once the writer had finished it.
    assert "imported 3 lines, rejected 0" in out.getvalue() and NO_NEWLINE_NOTE not in out.getvalue()
    blocked = ProxyLogEntry.objects.get(url="http://www.blocked.example/")
    assert (blocked.bytes, blocked.http_status) == (3423, 403)


def test_a_fresh_file_unchanged_over_the_settle_time_counts_as_finished(tmp_path):
    log = tmp_path / "access.log"
    write(log, LINES[:1])
    write(log, [LINES[1]], newline=False)

    assert services.log_is_finished(log, settle_seconds=0.3) is True
    write(log, [""])  # now it ends with a newline: nothing is left to finish
    assert services.log_is_finished(log, settle_seconds=0.3) is False
