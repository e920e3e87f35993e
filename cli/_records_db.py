"""Where the downloader keeps its records, and how a user names a database.

``regisseur download -o DIR`` keeps its records in ``DIR/.regisseur-downloads.db``;
``regisseur status DIR`` reads them there. ``--db`` takes a SQLAlchemy URL
or the path of a SQLite file. Pure functions; no import of SQLAlchemy here,
so the command line pays for it only when it opens a database.

A path becomes a URL with :func:`sqlite_url` only: SQLAlchemy reads a
``?`` as the start of the URL's query and decodes ``%XX`` in the file's
name, so a directory named ``what?`` or ``100%25`` is quoted, never pasted.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote

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
    SQLAlchemy reads back as that very path (``?``, ``#`` and ``%`` quoted:
    unquoted, ``-o 'what?'`` kept its records in a file ``what`` beside
    the directory). ``ValueError`` for a path that is not UTF-8 text."""
    try:
        return "sqlite:///" + quote(str(path), safe=" +/")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        msg = (
            f"the path {shown} is not UTF-8 text, which a database URL cannot name; "
            "rename it or choose another"
        )
        raise ValueError(msg) from None


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
    """The file of a ``sqlite:///`` URL, decoded as SQLAlchemy decodes it
    (``%3F`` is ``?``); None for memory, ``file:`` URIs and other databases."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0].lower() != "sqlite" or not rest.startswith("/"):
        return None
    name = unquote(rest[1:].partition("?")[0])
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
