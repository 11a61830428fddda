"""A webhook that accepts the connection and never answers (issue 20, item 9): said and bounded.

A real socket on 127.0.0.1 that accepts connections and reads nothing back; the terminal is the
``slipway.progress`` log.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from resources.alerts import Alert, WebhookAlerter

ALERT = Alert("promotion", "shop.clf: v1 promoted to champion", "gates passed", asset="shop/clf")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def terminal() -> Iterator[list[str]]:
    logger = logging.getLogger("slipway.progress")
    handler = Lines()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def silent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """$HOOK: an endpoint that accepts each connection and never answers; yields the connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("HOOK", f"http://127.0.0.1:{server.getsockname()[1]}/services/T000/SECRET")
    yield accepted
    server.close()
    for connection in accepted:
        connection.close()


def test_a_webhook_that_never_answers_is_said_tried_once_and_not_waited_for_again(silent, terminal):
    log = logging.getLogger("test.weak_answers")
    alerter = WebhookAlerter(url_env="HOOK", timeout_seconds=1.5, retries=2, backoff_seconds=0.01)
    assert alerter.send(ALERT, log) is False
    # One POST, never retried: the old code sent three and waited 3 x the timeout.
    assert len(silent) == 1
    assert terminal[0] == (
        "webhook alert (promotion) to $HOOK: waiting for an answer (attempt 1 of 3 gives up within 1.5 s)"
    )
    assert terminal[1] == (
        "webhook alert (promotion) to $HOOK failed, attempt 1/3: timed out: no answer within 1.5 s; not retried "
        "(it may have arrived: a retry could post it twice); the alert is in the log; given up (the pipeline goes on)"
    )
    # The next alert of this process is logged only, at once, and says why.
    assert alerter.send(Alert("run_failed", "run 1234abcd failed (shop/clf)", "boom"), log) is False
    assert len(silent) == 1  # not even a connection: nothing to wait for
    assert terminal[2].startswith(
        "webhook alert (run_failed) to $HOOK: only logged: the webhook did not answer an alert"
    )
    assert not any("SECRET" in line or "T000" in line for line in terminal)
