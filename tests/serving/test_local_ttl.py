"""A local endpoint with a ttl: its server exits by itself at the deadline (so it holds when the client is gone),
``extend`` moves the deadline, and bad ttls are refused before a server starts."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

import sagefinetune as sft
from sagefinetune.endpoint import deploy_local
from sagefinetune.serving.local import write_deadline
from sagefinetune.serving.server import read_deadline, watch_deadline


class FakeServer:
    should_exit = False


def test_the_server_stops_itself_at_its_deadline_and_at_a_moved_one(tmp_path):
    path = tmp_path / "deadline.json"
    expires = write_deadline(path, 0.4)
    assert abs(read_deadline(str(path)) - expires.timestamp()) < 1e-6
    server = FakeServer()
    thread = watch_deadline(str(path), server, poll=0.05)
    time.sleep(0.2)
    write_deadline(path, 1.0)  # what LocalEndpoint.extend does
    time.sleep(0.5)
    assert not server.should_exit and thread.is_alive()
    thread.join(timeout=5)
    assert server.should_exit and not thread.is_alive()


def test_no_deadline_file_means_no_deadline(tmp_path):
    server = FakeServer()
    assert read_deadline(str(tmp_path / "missing.json")) is None
    thread = watch_deadline(str(tmp_path / "missing.json"), server, poll=0.05)
    time.sleep(0.3)
    assert thread.is_alive() and not server.should_exit


@pytest.mark.parametrize("options, message", [
    ({"ttl": 0}, "ttl=0 must be a duration longer than 0"),
    ({"ttl": "later"}, "ttl='later' is not a duration"),
    ({"autoscale": (1, 2)}, "autoscale is not an option of a local endpoint"),
    ({"ttl": "1h", "scheduler_role": "x"}, "scheduler_role is not an option of a local endpoint"),
])
def test_bad_local_ttls_fail_before_a_server_starts(tmp_path, options, message):
    with pytest.raises(sft.ConfigError, match=message):
        deploy_local(tmp_path / "no-model", **options)


@pytest.mark.slow
def test_a_local_endpoint_with_a_ttl_ends_by_itself(trained_run):
    ep = deploy_local(trained_run.model_dir, ttl=120)
    try:
        assert ep.expires_at is not None and ep.expires_at > datetime.now(timezone.utc) + timedelta(seconds=60)
        assert ep.predict("The striker scored twice.")[0]["label"] == "sports"
        moved = ep.extend(ttl=2)
        assert moved == ep.expires_at and moved < datetime.now(timezone.utc) + timedelta(seconds=3)
        ep.server._process.wait(timeout=30)  # the server exits by itself; nothing here stops it
        assert not ep.running and ep.server._process.returncode == 0
        assert "ttl is over: shutting down" in ep.log_path.read_text()
        with pytest.raises(sft.ConfigError, match="expired at .* UTC \\(its ttl\\)"):
            ep.predict("still there?")
        with pytest.raises(sft.ConfigError, match="expired"):
            ep.extend(ttl="1h")
    finally:
        ep.delete()
