"""HTTP body decompression with a hard cap on the decompressed size.

Accepted ``Content-Encoding`` values (case-insensitive): none / ``identity`` / ``none``,
``gzip`` / ``x-gzip`` (several concatenated members allowed, as RFC 1952 permits), and
``deflate``.  opentelemetry-python's HTTP exporter sends ``deflate`` as a zlib stream
(``zlib.compress``), which is what RFC 9110 means by it; some clients send raw deflate
instead, so a body without a valid zlib header is read as raw deflate.

The limit applies to the *decompressed* size and is enforced while inflating
(``decompressobj(...).decompress(data, max_length)``), so a decompression bomb never makes
us hold much more than ``limit`` bytes (CVE-2024-36129 was this bug in the Collector).
"""

from __future__ import annotations

import zlib

from .errors import MalformedPayload, PayloadTooLarge, UnsupportedEncoding

__all__ = ["SUPPORTED_ENCODINGS", "decompress"]

SUPPORTED_ENCODINGS = ("identity", "gzip", "deflate")

_IDENTITY = {"", "identity", "none"}
_ALIASES = {"x-gzip": "gzip"}
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS
#: Real clients send one member; the cap keeps a body of many tiny members cheap to refuse.
MAX_GZIP_MEMBERS = 64
_INPUT_SLICE = 64 * 1024
_OUTPUT_STEP = 1024 * 1024


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Return ``body`` decoded per ``content_encoding``, at most ``limit`` bytes long.

    Raises :class:`UnsupportedEncoding` for an encoding we do not decode,
    :class:`PayloadTooLarge` when the result would exceed ``limit`` bytes, and
    :class:`MalformedPayload` for a corrupt or truncated stream.
    """
    coding = _normalise(content_encoding)
    if coding == "identity":
        if len(body) > limit:
            raise PayloadTooLarge(f"body of {len(body)} bytes exceeds the limit of {limit} bytes")
        return body
    if not body:
        # Some clients label an empty body as compressed; there is nothing to inflate.
        return b""
    if coding == "gzip":
        return _gunzip(body, limit)
    return _inflate(body, limit)


def _normalise(content_encoding: str | None) -> str:
    """Map the header to one of SUPPORTED_ENCODINGS; identity entries of a list are dropped."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [_ALIASES.get(c, c) for c in codings if c not in _IDENTITY]
    if not codings:
        return "identity"
    if len(codings) > 1:
        raise UnsupportedEncoding(
            f"stacked Content-Encoding {content_encoding!r} is not supported; send one of gzip, deflate"
        )
    if codings[0] not in SUPPORTED_ENCODINGS:
        raise UnsupportedEncoding(
            f"unsupported Content-Encoding {codings[0]!r}; supported: gzip, deflate, identity"
        )
    return codings[0]


def _gunzip(body: bytes, limit: int) -> bytes:
    """Inflate every gzip member of ``body`` in turn (RFC 1952 section 2.2)."""
    view = memoryview(body)
    parts: list[bytes] = []
    produced = 0
    start = 0
    for member in range(MAX_GZIP_MEMBERS):
        inflater = zlib.decompressobj(_GZIP_WBITS)
        chunk, start = _inflate_stream(inflater, view, start, limit - produced, limit, f"gzip member {member}")
        parts.append(chunk)
        produced += len(chunk)
        rest = view[start:]
        if _all_zero(rest):
            # GNU gzip also tolerates zero padding after the last member (tape blocks).
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if rest[:2] != _GZIP_MAGIC:
            raise MalformedPayload(
                f"gzip body has {len(rest)} trailing bytes after member {member} that are not a gzip member"
            )
    raise MalformedPayload(f"gzip body has more than {MAX_GZIP_MEMBERS} members")


def _all_zero(view: memoryview) -> bool:
    """True for an empty tail or one of zero bytes only (checked once, at the end)."""
    return view.nbytes == 0 or (view[0] == 0 and bytes(view).count(0) == view.nbytes)


def _inflate(body: bytes, limit: int) -> bytes:
    """Inflate a ``deflate`` body: zlib-wrapped if its header says so, else raw deflate."""
    view = memoryview(body)
    if _looks_like_zlib(body):
        inflater = zlib.decompressobj(_ZLIB_WBITS)
        try:
            out, end = _inflate_stream(inflater, view, 0, limit, limit, "zlib")
        except MalformedPayload:
            # One raw-deflate stream in 31 or so starts with bytes that pass the header check.
            pass
        else:
            return _refuse_trailing(out, end, view, "zlib")
    out, end = _inflate_stream(zlib.decompressobj(_RAW_WBITS), view, 0, limit, limit, "raw deflate")
    return _refuse_trailing(out, end, view, "raw deflate")


def _looks_like_zlib(body: bytes) -> bool:
    """RFC 1950 header: method 8 (deflate) and a header checksum divisible by 31."""
    return len(body) >= 2 and body[0] & 0x0F == 8 and ((body[0] << 8) | body[1]) % 31 == 0


def _refuse_trailing(out: bytes, end: int, view: memoryview, what: str) -> bytes:
    if end != len(view):
        raise MalformedPayload(f"{len(view) - end} trailing bytes after the end of the {what} stream")
    return out


def _inflate_stream(inflater, view: memoryview, start: int, budget: int, limit: int, what: str) -> tuple[bytes, int]:
    """Inflate the stream starting at ``view[start]``; return its bytes and where it ended.

    Input goes in slices of _INPUT_SLICE bytes so that ``unused_data`` (a copy zlib makes of
    whatever follows the stream) stays small, and output comes in steps of at most
    _OUTPUT_STEP bytes, never more than one byte past the remaining ``budget``: that byte
    proves the body too large, so a bomb costs about ``budget`` bytes of memory before it is
    refused.  ``limit`` is only for the message.
    """
    parts: list[bytes] = []
    position = start
    while not inflater.eof and position < len(view):
        piece = view[position : position + _INPUT_SLICE]
        position += len(piece)
        while piece and not inflater.eof:
            try:
                out = inflater.decompress(piece, min(max(budget, 0) + 1, _OUTPUT_STEP))
            except zlib.error as exc:
                raise MalformedPayload(f"corrupt {what} stream: {exc}") from None
            budget -= len(out)
            if budget < 0:
                raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
            parts.append(out)
            piece = inflater.unconsumed_tail
    if not inflater.eof:
        raise MalformedPayload(f"truncated {what} stream: it ends before its end-of-stream marker")
    # Once the stream has ended, zlib hands back the rest of the last slice as unused_data.
    position -= len(inflater.unused_data)
    return (parts[0] if len(parts) == 1 else b"".join(parts)), position
