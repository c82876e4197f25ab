"""Storage: the only package that speaks SQL. Knows nothing of mail."""

from mailbot.store.db import Db, Row, Store, one, open_store

__all__ = ["Db", "Row", "Store", "one", "open_store"]
