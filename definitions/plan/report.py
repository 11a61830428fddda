"""How a :class:`definitions.plan.compare.Plan` is shown: a table, Markdown for a pull request, or JSON.

The JSON is a contract for tools (a CI bot, a dashboard). Its shape, version 1::

    {
      "schema_version": 1,
      "base": {"label": "HEAD (1a2b3c4)", "commit": "<sha>"},
      "head": {"label": "working tree", "commit": null},
      "changed": true,
      "summary": {"rebuild": 1, "rebuild_if_data_changes": 2, "added": 0, "removed": 0,
                  "models_retrain": 1, "models_retrain_if_data_changes": 0,
                  "pins": 1, "policies": 1, "stacks": 0, "python": 0, "environment": 0},
      "assets": [{"key": "churn/churn_classifier", "kind": "model",
                  "status": "changed",          # added | removed | changed | stale
                  "why": ["its definition changed"],
                  "where": "definitions/defs/churn/defs.yaml:58",
                  "attributes": [{"path": "params.n_estimators", "before": 100, "after": 200, "diff": []}],
                  "code": []}],               # import paths whose module changed
      "models": [{"key": "churn/churn_classifier", "retrains": "yes"}],   # yes | if_data_changes | new
      "pins": [{"model": "churn/churn_classifier", "alias": "champion", "before": 2, "after": 3}],
      "policies": [{"model": "churn/churn_classifier", "path": "retrain.cooldown", "before": "2m", "after": "6h"}],
      "stacks": [{"stack": "local", "path": "alerter.type", "before": "log", "after": "webhook"}],
      "python": [{"file": "team/assets.py", "change": "changed"}],   # hand-written code under defs/
      "environment": ["uv.lock changed: ..."],
      "notes": ["/opt/stacks is outside the repository /src/repo: not compared"]
    }

``status: stale`` means "rebuilt only if its upstream's data changes" (decided when the
upstream runs); ``before``/``after`` is ``null`` on the side that does not have the attribute.
A version 2 will only be made for a change that breaks readers of version 1; fields may be added
(``policies``, a model's retrain policy settings, was).
"""

from __future__ import annotations

import json
from typing import Any

from definitions.plan.compare import AssetChange, AttributeChange, Plan

SCHEMA_VERSION = 1
_MARK = {"changed": "~", "added": "+", "removed": "-", "stale": "?"}
_STATUS = {
    "changed": "rebuilds",
    "added": "new",
    "removed": "removed",
    "stale": "rebuilds",
}


def _retrains(change: AssetChange) -> str:
    return {"changed": "yes", "added": "new", "stale": "if_data_changes", "removed": "removed"}[change.status]


def summary(p: Plan) -> dict[str, int]:
    """Counts of what the plan does."""
    models = [c for c in p.assets if c.kind == "model"]
    return {
        "rebuild": sum(c.status in ("changed", "added") for c in p.assets),
        "rebuild_if_data_changes": sum(c.status == "stale" for c in p.assets),
        "added": sum(c.status == "added" for c in p.assets),
        "removed": sum(c.status == "removed" for c in p.assets),
        "models_retrain": sum(c.status in ("changed", "added") for c in models),
        "models_retrain_if_data_changes": sum(c.status == "stale" for c in models),
        "pins": len(p.pins),
        "policies": len(p.policies),
        "stacks": len(p.stacks),
        "python": len(p.python),
        "environment": len(p.environment),
    }


def as_json(p: Plan) -> str:
    """The plan as JSON (schema version 1, described in this module's docstring)."""
    body = {
        "schema_version": SCHEMA_VERSION,
        "base": {"label": p.base.label, "commit": p.base.commit},
        "head": {"label": p.head.label, "commit": p.head.commit},
        "changed": p.changed,
        "summary": summary(p),
        "assets": [
            {
                "key": c.key,
                "kind": c.kind,
                "status": c.status,
                "why": c.why,
                "where": c.where,
                "attributes": [
                    {"path": a.path, "before": a.before, "after": a.after, "diff": list(a.lines)} for a in c.attributes
                ],
                "code": c.code,
            }
            for c in p.assets
        ],
        "models": [{"key": c.key, "retrains": _retrains(c)} for c in p.assets if c.kind == "model"],
        "pins": p.pins,
        "policies": p.policies,
        "stacks": p.stacks,
        "python": p.python,
        "environment": p.environment,
        "notes": p.notes,
    }
    return json.dumps(body, indent=2, sort_keys=False, default=str)


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return json.dumps(value) if value == "" or value.strip() != value else value
    return json.dumps(value, sort_keys=True)


def _attribute(a: AttributeChange) -> list[str]:
    if a.lines:
        return [f"{a.path}: edited", *(f"  {line}" for line in a.lines)]
    if a.before is None:
        return [f"{a.path}: + {_value(a.after)}"]
    if a.after is None:
        return [f"{a.path}: - {_value(a.before)}"]
    return [f"{a.path}: {_value(a.before)} → {_value(a.after)}"]


def _headline(p: Plan) -> str:
    counts = summary(p)
    parts = []
    if counts["rebuild"]:
        parts.append(f"{counts['rebuild']} rebuild")
    if counts["rebuild_if_data_changes"]:
        parts.append(f"{counts['rebuild_if_data_changes']} rebuild if upstream data changes")
    if counts["removed"]:
        parts.append(f"{counts['removed']} removed")
    for count, one, many in (
        (counts["models_retrain"], "model retrains", "models retrain"),
        (counts["pins"], "alias pin moves", "alias pins move"),
        (counts["policies"], "retrain policy setting changes", "retrain policy settings change"),
        (counts["stacks"], "stack setting changes", "stack settings change"),
    ):
        if count:
            parts.append(f"{count} {one if count == 1 else many}")
    if counts["python"] or counts["environment"]:
        parts.append("code or environment changes")
    return ", ".join(parts) if parts else "no changes"


def _why(c: AssetChange) -> str:
    if c.status == "stale":
        return f"rebuilds {c.why[0]}"
    return f"{_STATUS[c.status]}: {'; '.join(c.why)}" if c.status == "changed" else _STATUS[c.status]


def _pin(pin: dict[str, Any]) -> str:
    def version(v: Any) -> str:
        return "unpinned" if v is None else f"v{v}"

    if pin["after"] is None and pin["before"] is not None:  # nothing moves it now: say where it stays
        return (
            f"{pin['model']}: {pin['alias']} no longer pinned: stays on v{pin['before']} (unless moved since) "
            "until a promotion moves it"
        )
    return f"{pin['model']}: {pin['alias']} {version(pin['before'])} → {version(pin['after'])}"


def _policy(change: dict[str, Any]) -> str:
    return (
        f"{change['model']}: {change['path']}: {_value(change['before'])} → {_value(change['after'])} "
        "(no rebuild for the change itself; the retrain sensor applies it from its next tick, which retrains "
        "the model if the new policy fires on data it was not trained on)"
    )


def _stack(s: dict[str, Any]) -> str:
    if not s["path"]:
        return f"{s['stack']}: stack file {'added' if s['before'] is None else 'removed'}"
    return f"{s['stack']}: {s['path']}: {_value(s['before'])} → {_value(s['after'])}"


def _python(item: dict[str, str]) -> str:
    return f"{item['file']} {item['change']}: the hand-written assets it defines get a new code version"


def as_table(p: Plan) -> str:
    """The plan for a terminal."""
    lines = [f"slipway plan: {p.base.label} → {p.head.label}: {_headline(p)}"]
    if p.assets:
        width = max(len(c.key) for c in p.assets)
        lines.append("")
        for c in p.assets:
            lines.append(f"  {_MARK[c.status]} {c.key:<{width}}  {c.kind:<7}  {_why(c)}  ({c.where})")
            lines += [f"        {text}" for a in c.attributes for text in _attribute(a)]
    for title, items, show in (
        ("alias pins", p.pins, _pin),
        ("retrain policies", p.policies, _policy),
        ("stacks", p.stacks, _stack),
        ("hand-written code", p.python, _python),
    ):
        if items:
            lines += ["", f"{title}:", *(f"  {show(item)}" for item in items)]  # type: ignore[operator]
    if p.environment:
        lines += ["", "environment:", *(f"  {e}" for e in p.environment)]
    if p.assets:
        lines += ["", "~ rebuilds  + new  - removed  ? rebuilds only if its upstream's data changes (seen as it runs)"]
    lines += [f"note: {n}" for n in p.notes]
    return "\n".join(lines)


def as_markdown(p: Plan) -> str:
    """The plan as a pull-request comment."""
    lines = [f"### slipway plan: {_headline(p)}", "", f"`{p.base.label}` → `{p.head.label}`"]
    if p.assets:
        lines += ["", "| | asset | kind | what happens |", "|---|---|---|---|"]
        for c in p.assets:
            why = _why(c).replace("|", "\\|")
            lines.append(f"| {_MARK[c.status]} | `{c.key}` | {c.kind} | {why} |")
        details = [c for c in p.assets if c.attributes]
        for c in details:
            lines += ["", f"<details><summary><code>{c.key}</code> ({c.where})</summary>", "", "```diff"]
            for a in c.attributes:
                lines += _markdown_attribute(a)
            lines += ["```", "", "</details>"]
    for title, items, show in (
        ("Alias pins", p.pins, _pin),
        ("Retrain policies", p.policies, _policy),
        ("Stacks", p.stacks, _stack),
        ("Hand-written code", p.python, _python),
    ):
        if items:
            lines += ["", f"**{title}**", "", *(f"- {show(item)}" for item in items)]  # type: ignore[operator]
    if p.environment:
        lines += ["", "**Environment**", "", *(f"- {e}" for e in p.environment)]
    if p.assets:
        lines += ["", "_? rebuilds only if its upstream's data changes, which is known when the upstream runs._"]
    return "\n".join(lines)


def _markdown_attribute(a: AttributeChange) -> list[str]:
    if a.lines:
        return [f"  {a.path}:", *(f"{line[:1]} {line[1:]}" for line in a.lines)]
    out = []
    if a.before is not None:
        out.append(f"- {a.path}: {_value(a.before)}")
    if a.after is not None:
        out.append(f"+ {a.path}: {_value(a.after)}")
    return out
