"""The alerters against a real HTTP server on 127.0.0.1, started by the test."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from webhook import Hook

from resources.alerts import Alert, LogAlerter, WebhookAlerter

ALERT = Alert(
    "drift",
    "churn/churn_classifier: drift detected",
    "psi 0.41 vs threshold 0.2",
    asset="churn/churn_classifier",
    link="http://127.0.0.1:5000/#/experiments/1/runs/abc",
    fields={"worst feature": "tenure"},
)


@pytest.fixture
def hook():
    made = []

    def make(**kwargs):
        made.append(Hook(**kwargs))
        return made[-1]

    yield make
    for h in made:
        h.close()


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log():
    logger = logging.getLogger("test.alerts")
    handler = Lines()
    logger.addHandler(handler)
    yield logger, handler.lines
    logger.removeHandler(handler)


def test_a_webhook_alert_is_a_slack_compatible_json_post(hook, log, monkeypatch):
    server = hook()
    monkeypatch.setenv("SLIPWAY_ALERT_WEBHOOK", server.url)
    logger, lines = log
    assert WebhookAlerter().send(ALERT, logger) is True
    (body,) = server.bodies
    assert server.headers[0]["Content-Type"] == "application/json"
    assert body["text"].startswith(":chart_with_upwards_trend: *churn/churn_classifier: drift detected*\npsi 0.41")
    assert body["attachments"][0]["fields"] == [{"title": "worst feature", "value": "tenure", "short": True}]
    assert body["slipway"]["kind"] == "drift" and body["slipway"]["asset"] == "churn/churn_classifier"
    assert lines == [ALERT.line()]


def test_a_failing_webhook_is_retried_until_it_answers(hook, log, monkeypatch):
    server = hook(statuses=[500, 503])
    monkeypatch.setenv("HOOK", server.url)
    logger, lines = log
    assert WebhookAlerter(url_env="HOOK", retries=2, backoff_seconds=0.01).send(ALERT, logger) is True
    assert len(server.bodies) == 3
    assert [line for line in lines if "attempt" in line] == [
        "webhook alert (drift) to $HOOK failed, attempt 1/3: HTTP 500; retrying",
        "webhook alert (drift) to $HOOK failed, attempt 2/3: HTTP 503; retrying",
    ]


def test_a_refused_webhook_is_not_retried(hook, log, monkeypatch):
    server = hook(statuses=[404])
    monkeypatch.setenv("HOOK", server.url)
    logger, lines = log
    assert WebhookAlerter(url_env="HOOK", backoff_seconds=0.01).send(ALERT, logger) is False
    assert len(server.bodies) == 1
    assert lines[-1] == "webhook alert (drift) to $HOOK failed, attempt 1/3: HTTP 404; given up (the pipeline goes on)"


def test_an_unreachable_webhook_is_logged_and_never_raises_nor_shows_its_url(log, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HOOK", f"http://bot:s3cret-token@127.0.0.1:{port}/services/T000/B000/XXXX")
    logger, lines = log
    assert WebhookAlerter(url_env="HOOK", retries=1, backoff_seconds=0.01).send(ALERT, logger) is False
    failures = [line for line in lines if "attempt" in line]
    assert len(failures) == 2 and "ConnectionRefusedError" in failures[0]
    assert not any("s3cret" in line or "T000" in line for line in lines)


def test_a_webhook_slower_than_its_timeout_is_given_up_in_bounded_time(hook, log, monkeypatch):
    # The server would answer 200 after 2 s: a send that waited for it would return True. The
    # timeout ends the wait instead (no wall-clock bound here: a busy machine must not fail it).
    server = hook(delay=2.0)
    monkeypatch.setenv("HOOK", server.url)
    logger, lines = log
    assert (
        WebhookAlerter(url_env="HOOK", timeout_seconds=0.3, retries=1, backoff_seconds=0.01).send(ALERT, logger)
        is False
    )
    assert "timed out" in lines[-1] and "given up" in lines[-1]


def test_without_its_variable_the_webhook_alerter_only_logs(log, monkeypatch):
    monkeypatch.delenv("SLIPWAY_ALERT_WEBHOOK", raising=False)
    logger, lines = log
    assert WebhookAlerter().send(ALERT, logger) is False
    assert lines == [ALERT.line(), "webhook alerter: $SLIPWAY_ALERT_WEBHOOK is not set; the alert was only logged"]


def test_the_log_alerter_writes_one_line_without_passwords(log):
    logger, lines = log
    alert = Alert("run_failed", "run 1234abcd failed", "could not reach postgresql://app:hunter2@db/x")
    assert LogAlerter().send(alert, logger) is True
    assert lines == ["alert run_failed: run 1234abcd failed: could not reach postgresql://app:***@db/x"]


def test_credentials_in_the_webhook_url_are_sent_as_basic_auth(hook, log, monkeypatch):
    server = hook()
    monkeypatch.setenv("HOOK", server.url.replace("http://", "http://bot:s3cret@"))
    assert WebhookAlerter(url_env="HOOK").send(ALERT, log[0]) is True
    assert server.headers[0]["Authorization"] == "Basic Ym90OnMzY3JldA=="  # bot:s3cret


def test_a_webhook_url_without_a_scheme_is_never_shown(log, monkeypatch):
    monkeypatch.setenv("HOOK", "hooks.slack.com/services/T000/B000/SECRETTOKEN")
    logger, lines = log
    assert WebhookAlerter(url_env="HOOK", backoff_seconds=0.01).send(ALERT, logger) is False
    assert lines[-1].startswith("webhook alert (drift) to $HOOK failed, attempt 1/3: ")
    assert not any("SECRETTOKEN" in line or "T000" in line for line in lines)


def test_a_webhook_redirect_is_not_followed_with_the_credentials(hook, log, monkeypatch):
    target = hook()
    redirecting = hook(statuses=[302])
    redirecting.location = target.url
    monkeypatch.setenv("HOOK", redirecting.url.replace("http://", "http://bot:s3cret@"))
    assert WebhookAlerter(url_env="HOOK", backoff_seconds=0.01).send(ALERT, log[0]) is False
    assert target.bodies == [] and "HTTP 302" in log[1][-1]


def test_one_alert_never_takes_longer_than_its_deadline(hook, log, monkeypatch):
    server = hook(statuses=[500] * 20)
    monkeypatch.setenv("HOOK", server.url)
    # The alerter's clock, without waiting: each sleep moves it on (a busy machine cannot fail this).
    slept: list[float] = []
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + sum(slept))
    monkeypatch.setattr(time, "sleep", slept.append)
    alerter = WebhookAlerter(url_env="HOOK", retries=10, backoff_seconds=1.0, deadline_seconds=2.0)
    assert alerter.send(ALERT, log[0]) is False
    # Without the deadline: 11 POSTs over 1 + 2 + 4 ... s of backoff. With it: the POSTs at 0 and
    # 1 s; the next wait would end past 2 s, so it is not begun. (The HTTP client sleeps 0 s too.)
    assert [s for s in slept if s] == [1.0] and len(server.bodies) == 2, (slept, len(server.bodies))
    assert "deadline" in log[1][-1], log[1]


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("http://127.0.0.1:9/services/SECRET PATH", ["SECRET", "services"]),
        ("SECRETPATH-not-a-url", ["SECRETPATH"]),
        ("http://user:pw/with/slash@127.0.0.1:9/x", ["pw", "slash"]),
        ("htp://127.0.0.1:9/services/T0/B0/TOKEN", ["TOKEN", "services"]),
    ],
)
def test_a_malformed_webhook_url_is_refused_without_showing_any_of_it(log, monkeypatch, url, secrets):
    monkeypatch.setenv("HOOK", url)
    logger, lines = log
    assert WebhookAlerter(url_env="HOOK", backoff_seconds=0.01).send(ALERT, logger) is False
    failures = [line for line in lines if "attempt" in line]
    assert len(failures) == 1 and failures[0].endswith("given up (the pipeline goes on)"), lines  # not retried
    assert "$HOOK is not an http(s) URL" in failures[0]
    assert not any(secret in line for secret in secrets for line in lines[1:]), lines
