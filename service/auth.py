"""API keys: who may ingest, read or administer which projects.

A key has scopes (``ingest``, ``read``, ``admin``) and the projects it may touch (``*`` for
all).  With no keys configured every caller is an anonymous principal with every scope on
every project — which is why the server refuses to listen beyond loopback without keys
unless ``--insecure`` is given.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Iterable, Mapping

SCOPES = ("ingest", "read", "admin")
ALL_PROJECTS = "*"


class AuthConfigError(ValueError):
    """An API key entry in the configuration is malformed."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: what it may do, and on which projects (None = all)."""

    name: str
    scopes: frozenset[str]
    projects: frozenset[str] | None

    def can(self, scope: str) -> bool:
        """True when the caller holds ``scope`` (admin implies every scope)."""
        return scope in self.scopes or "admin" in self.scopes

    def allows(self, project: str) -> bool:
        """True when the caller may touch ``project``."""
        return self.projects is None or project in self.projects

    @property
    def single_project(self) -> str | None:
        """The one project this caller is bound to, if exactly one."""
        if self.projects is not None and len(self.projects) == 1:
            return next(iter(self.projects))
        return None


ANONYMOUS = Principal(name="anonymous", scopes=frozenset(SCOPES), projects=None)


@dataclass(frozen=True)
class ApiKey:
    """One configured key."""

    key: str
    scopes: frozenset[str]
    projects: frozenset[str]
    name: str = ""

    @classmethod
    def from_config(cls, entry: Mapping, index: int = 0) -> "ApiKey":
        """Build from a config mapping ``{key, scopes, projects, name}``, naming what is wrong."""
        where = f"api_keys[{index}]"
        if not isinstance(entry, Mapping):
            raise AuthConfigError(f"{where} must be a mapping with key, scopes and projects")
        unknown = set(entry) - {"key", "scopes", "projects", "name"}
        if unknown:
            raise AuthConfigError(f"{where} has invalid keys: {', '.join(sorted(unknown))}")
        key = entry.get("key")
        if not isinstance(key, str) or len(key) < 8:
            raise AuthConfigError(f"{where}.key must be a string of at least 8 characters")
        scopes = _string_list(entry.get("scopes", list(SCOPES)), f"{where}.scopes")
        bad = set(scopes) - set(SCOPES)
        if bad:
            raise AuthConfigError(f"{where}.scopes: unknown scope(s) {sorted(bad)}; use {list(SCOPES)}")
        projects = _string_list(entry.get("projects", [ALL_PROJECTS]), f"{where}.projects")
        if not projects:
            raise AuthConfigError(f"{where}.projects must name at least one project or '*'")
        name = entry.get("name") or f"key{index}"
        return cls(key=key, scopes=frozenset(scopes), projects=frozenset(projects), name=str(name))

    def principal(self) -> Principal:
        """The principal a request carrying this key acts as."""
        projects = None if ALL_PROJECTS in self.projects else self.projects
        return Principal(name=self.name, scopes=self.scopes, projects=projects)


def parse_keys_env(value: str) -> list[dict]:
    """Parse ``AGENTTRAIL_API_KEYS``: ``key:scope+scope:project+project`` entries, comma separated.

    ``dev-key-123:ingest+read:demo,admin-key-456:admin:*`` gives two keys.  Scopes and projects
    default to all when omitted.
    """
    entries = []
    for i, raw in enumerate(filter(None, (p.strip() for p in value.split(",")))):
        parts = raw.split(":")
        if len(parts) > 3:
            raise AuthConfigError(f"AGENTTRAIL_API_KEYS entry {i} has more than key:scopes:projects")
        entry: dict = {"key": parts[0]}
        if len(parts) > 1 and parts[1]:
            entry["scopes"] = parts[1].split("+")
        if len(parts) > 2 and parts[2]:
            entry["projects"] = parts[2].split("+")
        entries.append(entry)
    return entries


def _string_list(value, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AuthConfigError(f"{where} must be a list of non-empty strings")
    return value


class AuthError(Exception):
    """The caller could not be authenticated (HTTP 401 / gRPC UNAUTHENTICATED)."""


class KeyRing:
    """The configured keys, and how a request's headers turn into a :class:`Principal`."""

    def __init__(self, keys: Iterable[ApiKey] = ()):
        self._keys = list(keys)

    @property
    def enabled(self) -> bool:
        """True when at least one key is configured (authentication is required)."""
        return bool(self._keys)

    def authenticate(self, api_key: str | None, authorization: str | None) -> Principal:
        """The principal for the given ``x-api-key`` / ``Authorization`` header values."""
        if not self._keys:
            return ANONYMOUS
        presented = api_key
        if not presented and authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                presented = token.strip()
        if not presented:
            raise AuthError("missing API key: send x-api-key or Authorization: Bearer")
        candidate = presented.encode()
        for key in self._keys:
            if hmac.compare_digest(candidate, key.key.encode()):
                return key.principal()
        raise AuthError("invalid API key")
