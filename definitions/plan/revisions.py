"""Git revisions, read without touching the user's checkout: resolve, list, read and extract files.

Everything goes through ``git`` plumbing (``rev-parse``, ``ls-tree``, ``cat-file``, ``archive``):
the working tree, the index and HEAD are never changed, so `slipway plan` and `slipway repro`
can run beside uncommitted work. Every failure is a one-line :class:`GitError`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from resources.errors import SlipwayError

_TIMEOUT = 60
_KEPT = (".yaml", ".yml", ".py")


class GitError(SlipwayError):
    """A git repository, revision or file that cannot be read."""


def _git(root: Path, *args: str, text: bool = True) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=text, timeout=_TIMEOUT)
    except FileNotFoundError as exc:
        raise GitError("git is not installed (it is needed to read revisions)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} took more than {_TIMEOUT} s in {root}") from exc


def repository(folder: Path) -> Path:
    """The root of the git work tree that holds ``folder``."""
    if not folder.exists():
        raise GitError(f"{folder}: no such folder")
    done = _git(folder, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise GitError(f"{folder} is not in a git repository (slipway plan and repro compare git revisions)")
    return Path(done.stdout.strip()).resolve()


@dataclass(frozen=True)
class Revision:
    """A commit of a repository, as the user named it."""

    root: Path
    name: str
    sha: str

    @property
    def label(self) -> str:
        """``name (sha7)``, or the sha alone when that is what was given."""
        return self.sha[:7] if self.name.startswith(self.sha[:7]) else f"{self.name} ({self.sha[:7]})"


def resolve(root: Path, name: str) -> Revision:
    """The commit ``name`` (a branch, tag, sha or expression like ``HEAD~2``) names in ``root``."""
    if not name or name.startswith("-"):
        raise GitError(f"{name!r} is not a revision")
    done = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}")
    if done.returncode == 0:
        return Revision(root, name, done.stdout.strip())
    if _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        raise GitError(
            f"unknown revision {name!r}: this is a shallow clone and it may lie outside the history fetched "
            "(run `git fetch --unshallow`, or fetch the base branch, e.g. `git fetch origin main`)"
        )
    if name == "HEAD":
        raise GitError(f"the repository at {root} has no commit yet: there is no HEAD to compare with")
    raise GitError(f"unknown revision {name!r} in {root}")


def files(revision: Revision, under: str) -> list[str]:
    """The paths of the files below ``under`` (relative to the repository root) at ``revision``."""
    done = _git(revision.root, "ls-tree", "-r", "-z", "--name-only", revision.sha, "--", under or ".")
    if done.returncode != 0:
        raise GitError(f"cannot list {under or 'the files'} at {revision.label}: {_first_line(done.stderr)}")
    return [p for p in done.stdout.split("\0") if p]


def read(revision: Revision, path: str) -> bytes | None:
    """The bytes of the file ``path`` (relative to the repository root) at ``revision``; None if absent."""
    done = _git(revision.root, "cat-file", "blob", f"{revision.sha}:{path}", text=False)
    return done.stdout if done.returncode == 0 else None


def extract(revision: Revision, paths: list[str], dest: Path) -> None:
    """Write the YAML and Python files of ``revision`` below ``dest``, if it has any of ``paths``.

    Every ``*.yaml``, ``*.yml`` and ``*.py`` of the repository is written (not only those under
    ``paths``: a definition may be a link to a file elsewhere in the repository), at its path
    relative to the root, so a folder ``definitions/defs`` lands at ``dest/definitions/defs``.
    Blobs are read with one ``git cat-file --batch``; data files are not read at all; links are
    kept when they are relative and stay inside the tree.
    """
    if not any(files(revision, p) for p in paths):
        return
    listed = _git(revision.root, "ls-tree", "-r", "-z", "--full-tree", revision.sha)
    if listed.returncode != 0:
        raise GitError(f"cannot read the definitions at {revision.label}: {_first_line(listed.stderr)}")
    wanted = []
    for entry in listed.stdout.split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob" and path.endswith(_KEPT):
            wanted.append((parts[0], parts[2], path))
    if not wanted:
        return
    batch = "".join(f"{oid}\n" for _, oid, _ in wanted).encode()
    try:
        done = subprocess.run(
            ["git", "cat-file", "--batch"], cwd=revision.root, input=batch, capture_output=True, timeout=_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git cat-file took more than {_TIMEOUT} s in {revision.root}") from exc
    if done.returncode != 0:
        raise GitError(f"cannot read the definitions at {revision.label}: {_first_line(done.stderr)}")
    out, at = done.stdout, 0
    root = dest.resolve()
    for mode, _, path in wanted:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        data = out[header_end + 1 : header_end + 1 + size]
        at = header_end + 1 + size + 1
        target = (root / path).resolve()
        if root not in target.parents:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":  # a link: kept when relative and inside the tree
            link = data.decode(errors="replace")
            if not link.startswith("/") and root in (target.parent / link).resolve().parents:
                target.symlink_to(link)
        else:
            target.write_bytes(data)


def relative(root: Path, path: Path) -> str | None:
    """``path`` relative to the repository ``root`` (POSIX form, "" for the root), or None outside it."""
    try:
        return PurePosixPath(path.resolve().relative_to(root)).as_posix().removeprefix(".")
    except ValueError:
        return None


def blobs(rev: Revision, under: str) -> dict[str, str]:
    """Every file of ``rev`` below ``under`` (paths from the repository root) and its blob id; no content is read."""
    done = _git(rev.root, "ls-tree", "-r", "-z", rev.sha, "--", under or ".")
    if done.returncode != 0:
        raise GitError(f"git ls-tree {rev.label}: {_first_line(done.stderr)}")
    found = {}
    for entry in done.stdout.split("\0"):
        meta, _, path = entry.partition("\t")
        if path and meta.split()[1:2] == ["blob"]:
            found[path] = meta.split()[2]
    return found


def worktree_blobs(root: Path, under: str) -> dict[str, str]:
    """The files git sees below ``under`` in the work tree, each with its blob id or a stand-in.

    An unchanged tracked file has its blob id; a changed, added or untracked one the stand-in
    ``worktree:<path>:<size>:<mtime>``. Read from git's index and status, without hashing
    content; ignored files are left out.
    """
    staged = _git(root, "ls-files", "-s", "-z", "--", under or ".")
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", under or ".")
    for done in (staged, status):
        if done.returncode != 0:
            raise GitError(f"git: {_first_line(done.stderr)}")
    found = {}
    for entry in staged.stdout.split("\0"):
        meta, _, path = entry.partition("\t")
        if path:
            found[path] = meta.split()[1]
    entries = iter(status.stdout.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            next(entries, None)  # the name it was renamed or copied from
        file = root / path
        if file.is_file():
            stat = file.stat()
            found[path] = f"worktree:{path}:{stat.st_size}:{stat.st_mtime_ns}"
        else:
            found.pop(path, None)  # deleted
    return found


def checked_out(rev: Revision, paths: list[str]) -> bool:
    """True when the work tree holds ``rev`` as committed under ``paths`` (HEAD is ``rev``, nothing there changed).

    Untracked files count: a file added to the definitions but not committed is a difference.
    """
    head = _git(rev.root, "rev-parse", "--verify", "HEAD")
    if head.returncode != 0 or head.stdout.strip() != rev.sha:
        return False
    status = _git(rev.root, "status", "--porcelain", "--", *(paths or ["."]))
    return status.returncode == 0 and not status.stdout.strip()


def is_dirty(root: Path) -> bool:
    """True when the work tree has changes to tracked files."""
    return bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())


def _first_line(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].removeprefix("fatal: ") if lines else "git failed"
