"""`--log-format json`: one JSON object per log line, for log shippers.

Fields: `time` (ISO 8601, UTC), `level`, `logger`, `event` (the message), `inbound_id` and
`case_ref` when the line names them (our log lines say `inbound 12` and the case's
reference), and `exception` when there is a traceback (masked like the text format:
logsafe's filter runs before any formatter).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_INBOUND = re.compile(r"\binbound (\d+)\b")
_REF = re.compile(r"\b([A-Z][A-Z0-9]{0,9}-\d{4}-\d{4,})\b")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        inbound = getattr(record, "inbound_id", None)
        if inbound is None and (m := _INBOUND.search(message)):
            inbound = int(m.group(1))
        ref = getattr(record, "case_ref", None)
        if ref is None and (m := _REF.search(message)):
            ref = m.group(1)
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": message,
            "inbound_id": inbound,
            "case_ref": ref,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """The root handler on stderr, in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
