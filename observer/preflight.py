"""Settings checked against the filesystem before anything starts: every path usable.

``observer run`` once wrote 42 lines of traceback, after its exporter had
started, for a ``data_dir`` that was a file (issue 14). ``check_paths`` makes
the directories Observer writes to and refuses, naming the key, a path that is
a file where a directory belongs (or the reverse), cannot be made, or is not
writable. ``storage_password`` reads ``storage.password_file`` just as early.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from observer.config import ObserverSettings, SettingError
from observer.errors import ConfigError

MAX_PASSWORD_FILE_BYTES = 4096


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


def storage_password(settings: ObserverSettings) -> str | None:
    """The PostgreSQL password: ``storage.password_file``'s first line, else the URL's.

    ConfigError names ``storage.password_file`` when it cannot be read.
    """
    path = settings.storage.password_file
    if path is None:
        return urlsplit(settings.storage.url).password if settings.storage.url else None
    try:
        with path.open("rb") as handle:  # bounded: /dev/zero is not a password file
            data = handle.read(MAX_PASSWORD_FILE_BYTES + 1)
        text = data.decode("utf-8")
    except OSError as exc:
        problem = f"cannot read: {exc.strerror}"
        raise ConfigError(f"storage.password_file = '{path}': {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"storage.password_file = '{path}': not UTF-8 text") from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        limit = f"larger than {MAX_PASSWORD_FILE_BYTES} bytes"
        raise ConfigError(f"storage.password_file = '{path}': {limit}")
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"storage.password_file = '{path}': empty")
    return lines[0]
