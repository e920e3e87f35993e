"""Where the downloader keeps its records, and how a user names a database.

``regisseur download -o DIR`` keeps its records in ``DIR/.regisseur-downloads.db``;
``regisseur status DIR`` reads them there. ``--db`` takes a SQLAlchemy URL
or the path of a SQLite file. Pure functions; SQLAlchemy is imported only
by the two that turn a path into a URL and back, as the command opens a
database.

A path becomes a URL with :func:`sqlite_url` only, and a URL's file is read
back with SQLAlchemy's own parser: a ``?`` starts the URL's query, and
SQLAlchemy 2.1 decodes ``%XX`` in the file's name where 2.0 does not, so a
directory named ``what?``, ``100%25`` or ``données`` is written as the
installed SQLAlchemy reads it back, never pasted.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DB_NAME",
    "database_url",
    "directory_database",
    "records_file",
    "shown_database",
    "sqlite_url",
]

#: The records' SQLite file in a download directory.
DB_NAME = ".regisseur-downloads.db"


def database_url(value: str) -> str:
    """``value`` as a database URL: kept if it is one, else a SQLite file path.

    ``postgresql://…`` and ``sqlite:///x.db`` stay as they are; ``x.db``,
    ``~/x.db`` and ``/tmp/x.db`` become ``sqlite:///`` URLs of the absolute path.
    """
    if "://" in value:
        return value
    return sqlite_url(_absolute(Path(value)))


def sqlite_url(path: Path) -> str:
    """The ``sqlite:///`` URL of the SQLite file at absolute ``path``, which
    the installed SQLAlchemy reads back as that very path (pasted, ``-o
    'what?'`` kept its records in a file ``what`` beside the directory).

    ``ValueError`` for a path no URL can name: one that is not UTF-8 text,
    or (SQLAlchemy 2.0, which reads no quoting in a file's name) one with a
    ``?`` in it.
    """
    from sqlalchemy import __version__ as version
    from sqlalchemy.engine import URL, make_url

    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        msg = (
            f"the path {shown} is not UTF-8 text, which a database URL cannot name; "
            "rename it or choose another"
        )
        raise ValueError(msg) from None
    url = URL.create("sqlite", database=text).render_as_string(hide_password=False)
    if make_url(url).database != text:
        msg = (
            f"the path {text} cannot be named in a database URL by SQLAlchemy {version} "
            "(a '?' in it; SQLAlchemy 2.1 can): rename it or choose another"
        )
        raise ValueError(msg)
    return url


def records_file(value: str) -> Path | None:
    """The SQLite file ``--db value`` names, absolute; None for another database.

    Only the directories are resolved: a symbolic link at the file's own
    name stays visible, so that the caller can refuse it. ``sqlite://``
    (memory), ``file:`` URIs and other databases give None.
    """
    if "://" not in value:
        return _absolute(Path(value))
    name = _sqlite_file_name(value)
    return None if name is None else _absolute(Path(name))


def shown_database(url: str) -> str:
    """A database URL as a person names it: a SQLite file by its path (without
    the URL's options, such as the ``?nofollow=1`` regisseur adds), any other
    database by its URL with the password redacted."""
    name = _sqlite_file_name(url)
    if name is not None:
        return name
    from regisseur.actors.log import redact_text  # only when a message is made

    return redact_text(url)


def _sqlite_file_name(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL, read as the installed SQLAlchemy reads
    it (2.1: ``%3F`` is ``?``); None for memory, ``file:`` URIs and other databases."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0].lower() != "sqlite" or not rest.startswith("/"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        name = make_url(url).database
    except (ArgumentError, ValueError):  # unreadable: its file as written
        name = rest[1:].partition("?")[0]
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return name


def _absolute(path: Path) -> Path:
    """``path`` made absolute, its directories resolved, its last name kept as it is."""
    path = path.expanduser()
    return path.parent.resolve() / path.name


def directory_database(directory: str | Path) -> str:
    """The URL of the records' file in download directory ``directory``."""
    return sqlite_url(Path(directory).expanduser().resolve() / DB_NAME)
