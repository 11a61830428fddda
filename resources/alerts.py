"""Alerts: the :class:`Alerter` role, a log alerter (the default) and a webhook alerter.

Slipway alerts when drift is detected, a blocking expectation or a gate fails, a new version
takes the promotion alias (promotion) or becomes challenger (challenger), and a run fails or is
interrupted (Ctrl-C). Each alert links to where to look: MLflow (the run, the report) and Dagster
(the run that raised it, or the asset when no run did: a sensor's drift evaluation). An alert
never fails what raised it: a webhook that is down is retried, logged and given up on.

Stack YAML::

    alerter: {type: log}
    alerter: {type: webhook, url_env: SLIPWAY_ALERT_WEBHOOK, timeout_seconds: 5, retries: 2}

The webhook's URL comes only from the environment variable named by ``url_env`` (a Slack
incoming-webhook URL is a secret): it is never shown, logged or stored.

A webhook never keeps a run waiting in silence: an attempt still waiting after a second is said
on the terminal (the ``slipway.progress`` log), and so is each retry and giving up. A POST that
was sent and got no answer in ``timeout_seconds`` is not retried (it may have arrived: a retry
could post it twice), and a webhook that did not answer is not tried again by this process for
a minute: the alerts meanwhile are logged only, and say so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from resources.links import dagster_asset, dagster_run
from resources.redact import redact
from resources.settings import LogAlerterSettings, WebhookAlerterSettings

KINDS = ("drift", "check_failed", "promotion", "challenger", "run_failed", "run_interrupted", "serving")
_EMOJI = {
    "drift": ":chart_with_upwards_trend:",
    "check_failed": ":x:",
    "promotion": ":trophy:",
    "challenger": ":hourglass_flowing_sand:",
    "run_failed": ":rotating_light:",
    "run_interrupted": ":octagonal_sign:",
    "serving": ":satellite:",
}
_COLOUR = {
    "drift": "#e8a33d",
    "check_failed": "#d0342c",
    "promotion": "#2eb67d",
    "challenger": "#888888",
    "run_failed": "#d0342c",
    "run_interrupted": "#e8a33d",
    "serving": "#d0342c",
}
LOGGER = logging.getLogger("slipway.alerts")
PROGRESS = logging.getLogger("slipway.progress")  # the terminal of `slipway run`
# An attempt still waiting after this long is said on the terminal.
WAITING_NOTICE_SECONDS = 1.0
# A webhook that did not answer (no HTTP answer at all) is not tried again by this process for
# this long: each alert would wait as long again. Alerts meanwhile are logged, and say so.
DOWN_MEMORY_SECONDS = 60.0
_down: dict[str, float] = {}  # a hash of the webhook's variable and URL -> when it did not answer


@dataclass(frozen=True)
class Alert:
    """What happened, to whom, and where to look.

    ``link`` is the MLflow page (``link_label`` names it); ``run_id`` the Dagster run that raised
    the alert, linked with the Dagster UI's address (:mod:`resources.links`); an alert raised
    outside a run (a sensor's) links the Dagster page of its ``asset`` instead.
    """

    kind: str  # one of KINDS
    title: str
    text: str
    asset: str | None = None
    link: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None
    link_label: str = "MLflow run"

    def links(self) -> dict[str, str]:
        """Where to look, by label: the MLflow page, then the Dagster run (or asset)."""
        found = {self.link_label: self.link} if self.link else {}
        if self.run_id:
            found["Dagster run"] = dagster_run(self.run_id)
        elif self.asset:
            found["Dagster asset"] = dagster_asset(self.asset)
        return found

    def line(self) -> str:
        """The alert as one log line."""
        extra = "".join(f"; {k}: {v}" for k, v in self.fields.items())
        links = "; ".join(f"{label}: {url}" for label, url in self.links().items())
        return redact(f"alert {self.kind}: {self.title}: {self.text}{extra}" + (f" ({links})" if links else ""))

    def payload(self) -> dict[str, Any]:
        """A Slack-compatible JSON body (``text`` plus an attachment), with the alert's data under ``slipway``."""
        text = f"{_EMOJI.get(self.kind, '')} *{self.title}*\n{self.text}".strip()
        links = self.links()
        if links:
            text += "\n" + " · ".join(f"<{url}|{label}>" for label, url in links.items())
        return {
            "text": redact(text),
            "attachments": [
                {
                    "color": _COLOUR.get(self.kind, "#888888"),
                    "fields": [{"title": k, "value": redact(str(v)), "short": True} for k, v in self.fields.items()],
                }
            ],
            "slipway": {
                "kind": self.kind,
                "title": redact(self.title),
                "text": redact(self.text),
                "asset": self.asset,
                "link": self.link,
                "links": links,
                "run_id": self.run_id,
                "fields": {k: redact(str(v)) for k, v in self.fields.items()},
            },
        }


class Alerter(dg.ConfigurableResource, ABC):
    """Sends alerts; :meth:`send` never raises."""

    def send(self, alert: Alert, log: Any = None) -> bool:
        """Deliver ``alert`` (and log it to ``log``, a logger or Dagster's ``context.log``); True when delivered."""
        try:
            return self._send(alert, log or LOGGER)
        except Exception as exc:  # an alert must never fail what raised it
            (log or LOGGER).warning(redact(f"alert {alert.kind} not sent: {type(exc).__name__}: {exc}"))
            return False

    @abstractmethod
    def _send(self, alert: Alert, log: Any) -> bool: ...


class LogAlerter(Alerter, LogAlerterSettings):
    """Alerts as warning lines in the log (the Dagster run or sensor log, or the terminal)."""

    def _send(self, alert: Alert, log: Any) -> bool:
        log.warning(alert.line())
        return True


class WebhookAlerter(Alerter, WebhookAlerterSettings):
    """Alerts as a JSON POST (Slack-compatible) to the URL in an environment variable, also logged."""

    def _send(self, alert: Alert, log: Any) -> bool:
        log.warning(alert.line())
        url = os.environ.get(self.url_env, "").strip()
        if not url:
            log.warning(f"webhook alerter: ${self.url_env} is not set; the alert was only logged")
            return False

        def say(line: str) -> None:  # in the run's log, and on the terminal
            log.warning(line)
            if log is not PROGRESS:
                PROGRESS.warning(line)

        key = hashlib.sha256(f"{self.url_env}\0{url}".encode()).hexdigest()
        name = f"webhook alert ({alert.kind}) to ${self.url_env}"
        since = _down.get(key)
        if since is not None and time.monotonic() - since < DOWN_MEMORY_SECONDS:
            say(
                f"{name}: only logged: the webhook did not answer an alert {time.monotonic() - since:.0f} s ago "
                f"(tried again {DOWN_MEMORY_SECONDS:.0f} s after that); given up (the pipeline goes on)"
            )
            return False
        body = json.dumps(alert.payload()).encode()
        attempts = self.retries + 1
        deadline = time.monotonic() + self.deadline_seconds
        for attempt in range(1, attempts + 1):
            timeout = min(self.timeout_seconds, max(deadline - time.monotonic(), 0.1))
            waiting = f"{name}: waiting for an answer (attempt {attempt} of {attempts} gives up within {timeout:.3g} s)"
            problem, retry, unanswered = self._attempt(url, body, timeout, waiting)
            if problem is None:
                _down.pop(key, None)
                return True
            said = f"{name} failed, attempt {attempt}/{attempts}: {problem}"
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            if not retry and unanswered:
                stop = (
                    "not retried (it may have arrived: a retry could post it twice); the alert is in the log; given up"
                )
            elif not retry or attempt == attempts:
                stop = "given up"
            elif time.monotonic() + wait >= deadline:
                stop = f"given up at its {self.deadline_seconds:g} s deadline"
            else:
                say(said + "; retrying")
                time.sleep(wait)
                continue
            if unanswered:
                _down[key] = time.monotonic()
            say(f"{said}; {stop} (the pipeline goes on)")
            return False
        return False

    def _attempt(self, url: str, body: bytes, timeout: float, waiting: str) -> tuple[str | None, bool, bool]:
        """:meth:`_post`, saying ``waiting`` on the terminal if no answer came within a second."""
        notice = threading.Timer(WAITING_NOTICE_SECONDS, PROGRESS.warning, args=(waiting,))
        notice.daemon = True
        notice.start()
        try:
            return self._post(url, body, timeout)
        finally:
            notice.cancel()

    def _post(self, url: str, body: bytes, timeout: float) -> tuple[str | None, bool, bool]:
        """(None, ...) when delivered, else (what went wrong; whether to retry; whether no HTTP answer came).

        What went wrong never shows any part of the URL. A redirect is not followed: it would carry
        the body, and any credentials, to another address.
        """
        import base64
        import socket
        from urllib.parse import urlsplit, urlunsplit

        malformed = f"${self.url_env} is not an http(s) URL", False, False
        try:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
                return malformed
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
            headers = {"Content-Type": "application/json"}
            target = url
            if parts.username is not None:  # user:password@host is basic auth, which urllib does not read from a URL
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                target = urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))
                token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            request = urllib.request.Request(target, data=body, method="POST", headers=headers)
        except ValueError:
            return malformed
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                response.read()
            return None, False, False
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}", exc.code >= 500 or exc.code == 429, False
        except urllib.error.URLError as exc:  # connecting or sending: nothing arrived, worth another try
            # Said by the kind of failure only: an OS error's text can quote the address.
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                return "timed out", True, True
            if isinstance(reason, OSError):
                return f"{type(reason).__name__}: {reason.strerror or 'network error'}", True, True
            return f"{type(exc).__name__}", True, True
        except TimeoutError:  # sent, and no answer in time (urllib raises it unwrapped)
            return f"timed out: no answer within {timeout:.3g} s", False, True
        except OSError as exc:  # the connection dropped before an answer
            return f"{type(exc).__name__}: {exc.strerror or 'network error'}", True, True
        except Exception as exc:  # anything else, by its type alone
            return f"{type(exc).__name__}", False, False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then raised as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)
