"""Module-level jobs for tests/test_receiver_worker_processes.py (a spawned worker imports them)."""

from __future__ import annotations

import os

_state = {}


def remember(prefix: bytes) -> None:
    _state["prefix"] = prefix


def echo(body: bytes, repeat: int) -> bytes:
    """The body behind the initializer's prefix, ``repeat`` times."""
    return _state["prefix"] + body * repeat


def fail(body: bytes, message: str) -> bytes:
    raise ValueError(message)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def fail_unpicklably(body: bytes) -> bytes:
    raise Unpicklable("hidden")


def die(body: bytes) -> bytes:
    os._exit(3)


def where(body: bytes) -> tuple[int, int]:
    """The worker's pid and niceness."""
    return os.getpid(), os.nice(0)
