"""Structured logs: one line per event, JSON by default (`LOG_FORMAT=plain` for people).

`log_event(logger, "delivered", execution_id=…, attempt=…)` carries its fields under one
LogRecord attribute, so field names can't collide with LogRecord's own. Nothing that logs
through here passes a key, a secret or a request body.
"""

import json
import logging
from datetime import datetime, timezone


def log_event(logger, event, level=logging.INFO, **fields):
    logger.log(level, event, extra={"fields": fields})


def _clean(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update({key: _clean(value) for key, value in getattr(record, "fields", {}).items()})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record):
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            head, sep, tail = text.partition("\n")  # keep a traceback below the fields
            text = head + " " + " ".join(f"{k}={_clean(v)}" for k, v in fields.items()) + sep + tail
        return text
