"""Alerts: the :class:`Alerter` role, a log alerter (the default) and a webhook alerter.

Slipway alerts when drift is detected, a blocking expectation or a gate fails, an alias moves
(promotion) and a run fails. An alert never fails what raised it: a webhook that is down is
retried, logged and given up on.

Stack YAML::

    alerter: {type: log}
    alerter: {type: webhook, url_env: SLIPWAY_ALERT_WEBHOOK, timeout_seconds: 5, retries: 2}

The webhook's URL comes only from the environment variable named by ``url_env`` (a Slack
incoming-webhook URL is a secret): it is never shown, logged or stored.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from resources.redact import redact
from resources.settings import LogAlerterSettings, WebhookAlerterSettings

KINDS = ("drift", "check_failed", "promotion", "run_failed")
_EMOJI = {
    "drift": ":chart_with_upwards_trend:",
    "check_failed": ":x:",
    "promotion": ":trophy:",
    "run_failed": ":rotating_light:",
}
_COLOUR = {"drift": "#e8a33d", "check_failed": "#d0342c", "promotion": "#2eb67d", "run_failed": "#d0342c"}
LOGGER = logging.getLogger("slipway.alerts")


@dataclass(frozen=True)
class Alert:
    """What happened, to whom, and where to look."""

    kind: str  # one of KINDS
    title: str
    text: str
    asset: str | None = None
    link: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """The alert as one log line."""
        extra = "".join(f"; {k}: {v}" for k, v in self.fields.items())
        link = f" ({self.link})" if self.link else ""
        return redact(f"alert {self.kind}: {self.title}: {self.text}{extra}{link}")

    def payload(self) -> dict[str, Any]:
        """A Slack-compatible JSON body (``text`` plus an attachment), with the alert's data under ``slipway``."""
        text = f"{_EMOJI.get(self.kind, '')} *{self.title}*\n{self.text}".strip()
        if self.link:
            text += f"\n<{self.link}|details>"
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
        body = json.dumps(alert.payload()).encode()
        attempts = self.retries + 1
        deadline = time.monotonic() + self.deadline_seconds
        for attempt in range(1, attempts + 1):
            timeout = min(self.timeout_seconds, max(deadline - time.monotonic(), 0.1))
            problem, retry = self._post(url, body, timeout)
            if problem is None:
                return True
            said = f"webhook alert ({alert.kind}) to ${self.url_env} failed, attempt {attempt}/{attempts}: {problem}"
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            if not retry or attempt == attempts:
                log.warning(said + "; given up (the pipeline goes on)")
                return False
            if time.monotonic() + wait >= deadline:
                log.warning(said + f"; given up at its {self.deadline_seconds:g} s deadline (the pipeline goes on)")
                return False
            log.warning(said + "; retrying")
            time.sleep(wait)
        return False

    def _post(self, url: str, body: bytes, timeout: float) -> tuple[str | None, bool]:
        """(None, _) when delivered, else (what went wrong, never any part of the URL; whether to retry).

        A redirect is not followed: it would carry the body, and any credentials, to another address.
        """
        import base64
        import socket
        from urllib.parse import urlsplit, urlunsplit

        malformed = f"${self.url_env} is not an http(s) URL", False
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
            return None, False
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}", exc.code >= 500 or exc.code == 429
        except (urllib.error.URLError, OSError) as exc:
            # Said by the kind of failure only: an OS error's text can quote the address.
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                return "timed out", True
            if isinstance(reason, OSError):
                return f"{type(reason).__name__}: {reason.strerror or 'network error'}", True
            return f"{type(exc).__name__}", True
        except Exception as exc:  # anything else, by its type alone
            return f"{type(exc).__name__}", False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then raised as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)
