"""The bot's own secret: read it, or create it (mode 0600) on first start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from mailbot.errors import ConfigError
from mailbot.private import make_dirs


def load_or_create_secret(path: Path) -> bytes:
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        make_dirs(path.parent)
        data = secrets.token_hex(32).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_secret(path)
        with os.fdopen(fd, "wb") as f:
            f.write(data + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ConfigError(path, "auth.secret_file", f"cannot read: {e.strerror}") from None
    if len(data) < 32:
        raise ConfigError(path, "auth.secret_file", "the secret is shorter than 32 characters")
    return data
