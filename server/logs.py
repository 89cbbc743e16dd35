"""Structured logs: state changes as events with key-value fields, through stdlib `logging`.

Operators read these (who leased, judged, revised, suspended, exported what); the audit table
is for admins. Rendering goes through `logging`, so uvicorn's handlers and pytest's `caplog`
see the same lines. Never log request bodies, passwords, tokens or session secrets.
"""

import logging

import structlog

_configured = False


def configure() -> None:
    """Route structlog through stdlib logging as `event key=value …` lines (idempotent)."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.getLogger("assay").setLevel(logging.INFO)
    _configured = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    configure()
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(f"assay.{name}")
    return logger
