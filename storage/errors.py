"""Storage errors, split by what a client of the store should do about them.

* :class:`StorageUnavailable` — retry later: the store cannot be reached or failed to write.
* :class:`Overloaded` — retry later: too much is already waiting to be written.
Both are :class:`RetryableError`, which carries a suggested delay.
"""

from __future__ import annotations


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
