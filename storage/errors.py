"""Storage errors, split by what a client of the store should do about them.

* :class:`StorageUnavailable` — retry later: the store cannot be reached or failed to write.
* :class:`Overloaded` — retry later: too much is already waiting to be written.
Both are :class:`RetryableError`, which carries a suggested delay.
"""

from __future__ import annotations

import re


class StorageError(Exception):
    """Base of every error raised by agenttrail.storage."""


class RetryableError(StorageError):
    """Nothing was written; the same request may succeed after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(RetryableError):
    """The store could not be reached or rejected the write."""


class Overloaded(RetryableError):
    """The write queue is full; back off."""


# ClickHouse error codes that say "not now" rather than "never": the server is going away,
# overloaded, read-only for a while or out of disk.  A commit refused with one is spooled.
_TRANSIENT_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    243,  # NOT_ENOUGH_SPACE
    252,  # TOO_MANY_PARTS
    279,  # ALL_CONNECTION_TRIES_FAILED
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
})


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is unreachable or refuses writes for now (a lost
    connection, a timeout, too many parts, read-only, out of memory or disk), as opposed to
    an error that retrying the same statement cannot fix (a missing table, bad data)."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, DatabaseError):
        code = getattr(exc, "code", None)
        if code is None:  # no ClickHouse error: a proxy or load balancer in front of it answered 5xx
            return bool(re.search(r"HTTP status 5\d\d", str(exc)))
        return code in _TRANSIENT_CODES
    return isinstance(exc, OSError)
