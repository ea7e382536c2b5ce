"""Settings checked against the filesystem before anything starts: every path usable.

``observer run`` once wrote 42 lines of traceback, after its exporter had
started, for a ``data_dir`` that was a file (issue 14). ``check_paths`` makes
the directories Observer writes to and refuses, naming the key, a path that is
a file where a directory belongs (or the reverse), cannot be made, or is not
writable.
"""

from __future__ import annotations

import os
from pathlib import Path

from observer.config import ObserverSettings, SettingError


def check_paths(settings: ObserverSettings) -> None:
    """Make ``data_dir`` (and ``exporter.export_dir``); SettingError for an unusable path."""
    usable_directory(("data_dir",), settings.data_dir)
    if settings.storage.url is not None:  # PostgreSQL: no file of ours
        pass
    elif settings.storage.path is None:
        usable_file(("data_dir",), settings.data_dir, settings.database_path)
    else:
        usable_file(("storage", "path"), settings.storage.path, settings.storage.path)
    if settings.exporter.export_dir is not None:
        usable_directory(("exporter", "export_dir"), settings.exporter.export_dir)


def usable_directory(key: tuple[str, ...], directory: Path) -> None:
    """Make ``directory`` (and its parents) and check it is a writable directory."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SettingError(key, str(directory), "exists and is not a directory") from None
    except OSError as exc:
        raise SettingError(key, str(directory), f"cannot create: {exc.strerror}") from None
    if not directory.is_dir():
        raise SettingError(key, str(directory), "not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise SettingError(key, str(directory), "not writable by this user")


def usable_file(key: tuple[str, ...], value: Path, path: Path) -> None:
    """``path`` (named by the setting ``key`` = ``value``) can be a file Observer writes."""
    if path.is_dir():
        raise SettingError(key, str(value), f"{path} is a directory, not a file")
    usable_directory(key, path.parent)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise SettingError(key, str(value), f"{path} is not readable and writable by this user")
