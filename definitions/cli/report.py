"""Terminal output of ``slipway run``: live progress and the closing summary, 100 columns wide.

The summary is a table (asset, status, time, detail) whose details wrap under their column; a
model's status names the version built or reused and the aliases it holds (``✓ built v5
(challenger)``), and its detail starts with the version that serves when that is another one
(``champion v1``). Below it, a link to the MLflow page of each version this run built, where
the MLflow UI answers, or with how to open one (``slipway dev``) when nothing answers there.
"""

from __future__ import annotations

import http.client
import logging
import sys
import textwrap
import urllib.error
import urllib.request
from typing import TextIO
from urllib.parse import quote, urlsplit

from definitions.cli.outcomes import AssetOutcome
from definitions.cli.runner import RunReport
from resources.redact import redact

WIDTH = 100
_ASSET_WIDTH = 32  # a longer asset name gets a line of its own
_MARK = {"built": "✓", "reused": "=", "failed": "✗", "interrupted": "✗", "blocked": "⊘", "not run": "·"}
# A UI that does not answer this fast is said not to answer (a local one answers in milliseconds).
_PROBE_SECONDS = 1.0
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class _ProgressHandler(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(f"  {redact(record.getMessage())}\n")
        self.stream.flush()


def show_progress(stream: TextIO = sys.stderr) -> None:
    """Print asset progress events (``slipway.progress``) as they happen."""
    logger = logging.getLogger("slipway.progress")
    if not any(isinstance(h, _ProgressHandler) for h in logger.handlers):
        logger.addHandler(_ProgressHandler(stream))
    logger.setLevel(logging.INFO)
    logger.propagate = False


def summary(report: RunReport) -> str:
    """The summary: a row per asset, MLflow links of what was built, alias findings, the tally."""
    header = ("asset", "status", "time", "detail")
    rows = [header, *((o.key, _status(o), _seconds(o), _detail(o)) for o in report.outcomes)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    widths[0] = max(len(r[0]) for r in rows if len(r[0]) <= _ASSET_WIDTH)
    lines = []
    for key, *row in rows:
        if len(key) > widths[0]:  # a longer name has a line of its own, the row's cells below it
            lines.append(key)
            key = ""
        cells = zip([key, *row[:2]], widths, strict=True)
        lines += _hang("  ".join(cell.ljust(width) for cell, width in cells) + "  ", row[2])
    lines += _mlflow_links(report.outcomes)
    for level, message in report.aliases:
        lines += _wrap(f"alias {level}: {message}", "  ")
    counts = {s: sum(o.status == s for o in report.outcomes) for s in _MARK}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    ids = report.dagster_run_ids
    if len(ids) > 3:  # a run per partition: the first and the last
        runs = f" ({len(ids)} dagster runs, {ids[0]} … {ids[-1]})"
    else:
        runs = f" (dagster run{'s' if len(ids) > 1 else ''} {', '.join(ids)})" if ids else ""
    lines += _wrap(f"stack {report.stack}: {tally} in {report.seconds:.1f}s{runs}", "  ")
    return "\n".join(line.rstrip() for line in lines)


def _status(o: AssetOutcome) -> str:
    """``✓ built``, and for a model the version with its aliases: ``✓ built v5 (challenger)``."""
    text = f"{_MARK.get(o.status, '?')} {o.status}"
    if o.model_version:
        text += f" v{o.model_version} ({o.alias or 'no alias'})"
    return text


def _seconds(o: AssetOutcome) -> str:
    return f"{o.seconds:.2f}s" if o.seconds is not None else "-"


def _detail(o: AssetOutcome) -> str:
    """Why it ran and what came of it; a model's detail first names the champion when that is another version."""
    text = f"{o.reason}: {o.detail}" if o.reason and o.status != "reused" else o.detail
    if o.model_version and o.champion != o.model_version:
        serving = f"champion v{o.champion}" if o.champion else "no champion"
        text = f"{serving}; {text}" if text else serving
    return text


def _hang(head: str, text: str) -> list[str]:
    """``head`` then ``text`` wrapped to :data:`WIDTH`, its next lines under its first.

    A word (a path, a URL) is not cut where the column is too narrow for it: the text then goes
    below the row, indented, and only a word wider than the whole line is cut.
    """
    room = WIDTH - len(head)
    wrapped = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) if room >= 24 else None
    if wrapped is not None and all(len(line) <= room for line in wrapped):
        wrapped = wrapped or [""]
        return [head + wrapped[0], *(" " * len(head) + line for line in wrapped[1:])]
    return [head.rstrip(), *_wrap(text, " " * 4, first=" " * 4)]


def _wrap(text: str, indent: str, first: str = "") -> list[str]:
    """``text`` wrapped to :data:`WIDTH`, its first line after ``first`` and the next after ``indent``."""
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    )


def _mlflow_links(outcomes: list[AssetOutcome]) -> list[str]:
    """A link to each model version this run built, under a line saying whether the MLflow UI answers there.

    The link is the version's page in MLflow's registry: its aliases, its description (linking
    back to the Dagster run) and its source run. The run's own address, which the materialization
    records, names its experiment and view and does not fit the terminal; MLflow's short run
    address (``/#/runs/<id>``) opens it in the GenAI view.
    """
    built = [o for o in outcomes if o.mlflow_run and o.status != "reused" and "/#/" in o.mlflow_run]
    by_base: dict[str, list[tuple[str, str]]] = {}
    runs: dict[str, str] = {}
    for o in built:
        base, _, route = o.mlflow_run.partition("/#/")  # type: ignore[union-attr]
        run_id = route.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        runs.setdefault(base, run_id)
        if o.registered_model and o.model_version:
            page = f"{base}/#/models/{quote(o.registered_model, safe='')}/versions/{o.model_version}"
        else:
            page = f"{base}/#/runs/{run_id}"
        by_base.setdefault(base, []).append((f"{o.key} v{o.model_version}", page))
    lines = []
    for base, links in by_base.items():
        answer = _answer(base, runs[base])
        if answer == "none":
            said = f"mlflow: nothing answers at {base}: `slipway dev` starts the MLflow UI there"
        elif answer == "slow":
            said = f"mlflow: the MLflow UI at {base} did not answer within {_PROBE_SECONDS:g} s"
        elif answer == "other":
            said = (
                f"mlflow: the MLflow UI at {base} does not have these runs (it serves another store); "
                "`slipway dev --mlflow-port PORT` serves this home's on another port"
            )
        else:
            said = f"mlflow: the MLflow UI at {base}"
        lines += _wrap(said, "  ")
        width = max(len(label) for label, _ in links)
        for label, url in links:
            line = f"  {label.ljust(width)}  {url}"
            lines += [line] if len(line) <= WIDTH else [f"  {label}", f"    {url}"]
    return lines


def _answer(base: str, run_id: str) -> str:
    """Whether the MLflow UI at ``base`` on this machine has run ``run_id``: ``has``, ``other``, ``none`` or ``slow``.

    ``none``: nothing answers; ``other``: a server answers without the run (another home's UI
    on that port); ``slow``: no answer in time. Only a local UI is asked (``slipway dev`` serves
    one there): a remote one is a deployment's (``has``), and asking it could wait on DNS or a
    proxy.
    """
    parts = urlsplit(base)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return "has"
    if host not in _LOCAL_HOSTS:
        return "has"
    netloc = f"[{host}]" if ":" in host else host  # without credentials: the link's are redacted
    probe = f"{parts.scheme}://{netloc}{f':{port}' if port else ''}{parts.path}/api/2.0/mlflow/runs/get?run_id={run_id}"
    try:
        # Straight to this machine, never through a proxy the environment names.
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(probe, timeout=_PROBE_SECONDS):
            return "has"
    except urllib.error.HTTPError as exc:
        # MLflow says a run it does not have with 404 (400 from older servers); a login page is not that.
        return "other" if exc.code in (400, 404) else "has"
    except urllib.error.URLError as exc:
        return "slow" if isinstance(exc.reason, TimeoutError) else "none"
    except TimeoutError:  # connected, and no answer in time
        return "slow"
    except (OSError, ValueError, http.client.HTTPException):
        return "none"
