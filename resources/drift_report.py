"""A drift report a person can look at: one self-contained HTML page, plots as inline SVG.

No JavaScript and nothing fetched: the page opens from MLflow's artifact viewer, a file or an
air-gapped cluster the same. For each feature (worst first) it shows the score, the
distributions of the reference and the current data overlaid, and the shares per scoring bin
(the reference's deciles, or the categories) that the score was computed from.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from resources.drift import DriftResult, FeatureDrift

_REF, _CUR = "#7f8fa6", "#e8772e"
_W, _H, _PAD = 420, 150, 28


def render(result: DriftResult, title: str, facts: Mapping[str, str]) -> str:
    """The page: ``title``, ``facts`` (what was compared with what), the verdict, a table and a panel per feature."""
    verdict = "Drift detected" if result.drifted else "No drift"
    colour = "#c0392b" if result.drifted else "#27ae60"
    ranked = sorted(result.features, key=lambda f: -f.score)
    rows = "".join(
        f"<tr class='{'bad' if f.drifted else ''}'><td><a href='#f-{_id(f.feature)}'>{_e(f.feature)}</a></td>"
        f"<td>{f.kind}</td><td>{f.statistic}</td><td class='num'>{f.score:.4f}</td>"
        f"<td>{'drifted' if f.drifted else 'ok'}</td><td class='num'>{f.reference_rows:,}</td>"
        f"<td class='num'>{f.current_rows:,}</td></tr>"
        for f in ranked
    )
    facts_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items())
    panels = "".join(_panel(f) for f in ranked)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #222; max-width: 1100px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 28px 0 6px; }}
.verdict {{ display: inline-block; padding: 4px 12px; border-radius: 4px; color: #fff; background: {colour}; }}
table {{ border-collapse: collapse; margin: 10px 0; }} td, th {{ padding: 3px 10px; text-align: left; }}
.features td, .features th {{ border-bottom: 1px solid #ddd; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.bad td {{ background: #fdecea; }} .facts th {{ color: #666; font-weight: normal; }}
.panel {{ display: flex; gap: 24px; flex-wrap: wrap; border-top: 1px solid #eee; padding-top: 6px; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}
svg text {{ font: 10px system-ui, sans-serif; fill: #555; }}
</style></head><body>
<h1>{_e(title)}</h1>
<p><span class="verdict">{verdict}</span> &nbsp; dataset score <b>{result.score:.4f}</b> ({result.method}, the worst
feature's) against threshold <b>{result.threshold}</b></p>
<table class="facts">{facts_html}</table>
<p class="legend"><span style="background:{_REF}"></span>reference (what the champion trained on)
<span style="background:{_CUR}"></span>current (the newest data)</p>
<table class="features"><tr><th>feature</th><th>kind</th><th>statistic</th><th class="num">score</th><th></th>
<th class="num">reference rows</th><th class="num">current rows</th></tr>{rows}</table>
{panels}
</body></html>
"""


def _panel(feature: FeatureDrift) -> str:
    mark = " &mdash; drifted" if feature.drifted else ""
    head = (
        f"<h2 id='f-{_id(feature.feature)}'>{_e(feature.feature)}: {feature.statistic} {feature.score:.4f}{mark}</h2>"
    )
    plots = []
    if feature.histogram is not None:
        edges, ref, cur = feature.histogram
        plots.append(_overlay(edges, ref, cur, "distribution (share of rows per bin)"))
    caption = (
        "share per reference decile (what the score compares)" if feature.kind == "numeric" else "share per category"
    )
    plots.append(_bars(feature.bins[:20], feature.reference_share[:20], feature.current_share[:20], caption))
    return head + f"<div class='panel'>{''.join(plots)}</div>"


def _overlay(edges: Sequence[float], ref: Sequence[float], cur: Sequence[float], caption: str) -> str:
    """Two step histograms over the same equal-width bins."""
    top = max([*ref, *cur, 1e-9])
    width = (_W - 2 * _PAD) / max(len(ref), 1)

    def y(v: float) -> float:
        return _H - _PAD - (_H - 2 * _PAD) * v / top

    bars = "".join(
        f"<rect x='{_PAD + i * width:.1f}' y='{y(v):.1f}' width='{width:.1f}' height='{_H - _PAD - y(v):.1f}' "
        f"fill='{_REF}' fill-opacity='0.55'/>"
        for i, v in enumerate(ref)
    )
    line = " ".join(
        f"{_PAD + i * width:.1f},{y(v):.1f} {_PAD + (i + 1) * width:.1f},{y(v):.1f}" for i, v in enumerate(cur)
    )
    axis = (
        f"<text x='{_PAD}' y='{_H - 10}'>{edges[0]:.4g}</text>"
        f"<text x='{_W - _PAD}' y='{_H - 10}' text-anchor='end'>{edges[-1]:.4g}</text>"
    )
    return _svg(bars + f"<polyline points='{line}' fill='none' stroke='{_CUR}' stroke-width='2'/>" + axis, caption)


def _bars(labels: Sequence[str], ref: Sequence[float], cur: Sequence[float], caption: str) -> str:
    """Side-by-side bars per bin or category."""
    top = max([*ref, *cur, 1e-9])
    slot = (_W - 2 * _PAD) / max(len(labels), 1)
    parts = []
    for i, (label, a, b) in enumerate(zip(labels, ref, cur, strict=True)):
        x = _PAD + i * slot
        for offset, value, colour in ((0.1, a, _REF), (0.5, b, _CUR)):
            h = (_H - 2 * _PAD) * value / top
            parts.append(
                f"<rect x='{x + offset * slot:.1f}' y='{_H - _PAD - h:.1f}' width='{0.4 * slot:.1f}' "
                f"height='{h:.1f}' fill='{colour}'>"
                f"<title>{_e(label)}: reference {a:.1%}, current {b:.1%}</title></rect>"
            )
        if len(labels) <= 6:
            short = label if len(label) <= 10 else label[:9] + "…"
            parts.append(f"<text x='{x + slot / 2:.1f}' y='{_H - 12}' text-anchor='middle'>{_e(short)}</text>")
    return _svg("".join(parts), caption)


def _svg(body: str, caption: str) -> str:
    frame = f"<line x1='{_PAD}' y1='{_H - _PAD}' x2='{_W - _PAD}' y2='{_H - _PAD}' stroke='#999'/>"
    return (
        f"<figure style='margin:0'><svg width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}' role='img'>"
        f"{frame}{body}</svg><figcaption style='color:#666;font-size:12px'>{_e(caption)}</figcaption></figure>"
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _id(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)
