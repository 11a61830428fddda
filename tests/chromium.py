"""Headless Chromium for the UI checks: a page's DOM once its scripts ran, and a screenshot.

Debian's ``chromium`` (``apt-get install -y chromium``). Tests that use it skip, saying so, only
when it is not installed. Screenshots land in the test's folder, and are also copied to
``$SLIPWAY_SCREENSHOTS`` when it is set (to look at them).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install -y chromium)"
)
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
]


def _chromium(args: list[str], url: str, wait_ms: int) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={wait_ms}", *args, url],
            capture_output=True,
            text=True,
            timeout=120,
        )


def dom(url: str, wait_ms: int = 20_000) -> str:
    """The page's DOM after its scripts ran for ``wait_ms`` (virtual time)."""
    done = _chromium(["--dump-dom"], url, wait_ms)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = (1400, 1000), wait_ms: int = 20_000) -> Path:
    """A PNG of the page at ``path``; copied to ``$SLIPWAY_SCREENSHOTS`` too when set."""
    done = _chromium([f"--screenshot={path}", f"--window-size={size[0]},{size[1]}"], url, wait_ms)
    assert done.returncode == 0 and path.exists(), done.stderr[-2000:]
    keep = os.environ.get("SLIPWAY_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def anchors(page: str) -> dict[str, str]:
    """Each ``<a href>`` of a rendered page, with its text, by href."""
    found = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', page, re.S)
    return {html.unescape(href): re.sub(r"<[^>]+>", "", text).strip() for href, text in found}


def text(page: str) -> str:
    """What a rendered page says: its text, then its titles (a truncated cell keeps its whole text as its title)."""
    titles = " ".join(html.unescape(t) for t in re.findall(r'title="([^"]*)"', page))
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))) + " " + titles
