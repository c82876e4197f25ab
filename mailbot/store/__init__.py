"""Storage: the only package that speaks SQL. Knows nothing of mail."""

from mailbot.store.db import Db, Store

__all__ = ["Db", "Store"]
