"""Where the downloader keeps its records, and how a user names a database.

``regisseur download -o DIR`` keeps its records in ``DIR/.regisseur-downloads.db``;
``regisseur status DIR`` reads them there. ``--db`` takes a SQLAlchemy URL
or the path of a SQLite file. Pure functions; no import of SQLAlchemy here,
so the command line pays for it only when it opens a database.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DB_NAME", "database_url", "directory_database"]

#: The records' SQLite file in a download directory.
DB_NAME = ".regisseur-downloads.db"


def database_url(value: str) -> str:
    """``value`` as a database URL: kept if it is one, else a SQLite file path.

    ``postgresql://…`` and ``sqlite:///x.db`` stay as they are; ``x.db``,
    ``~/x.db`` and ``/tmp/x.db`` become ``sqlite:///`` URLs of the absolute path.
    """
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def directory_database(directory: str | Path) -> str:
    """The URL of the records' file in download directory ``directory``."""
    return f"sqlite:///{Path(directory).expanduser().resolve() / DB_NAME}"
