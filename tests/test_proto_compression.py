"""agenttrail.proto.compression: Content-Encoding handling and the post-decompression cap."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib

import pytest

from agenttrail.proto import (
    MalformedPayload,
    PayloadTooLarge,
    UnsupportedEncoding,
    WireError,
    decompress,
)

PAYLOAD = b"".join(b"span %d of a realistic batch; " % i for i in range(2000))
LIMIT = 1 << 20
MIB = 1 << 20


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def zero_bomb(gib: int, wbits: int) -> bytes:
    """A valid gzip (wbits 31) or zlib (wbits 15) stream of ``gib`` GiB of zeros, about 1 MiB long.

    After a full flush deflate forgets its history, so the compressed form of one MiB of
    zeros is the same bytes every time: we repeat it instead of compressing a GiB.
    """
    zeros = bytes(MIB)
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    head = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    final_block = packer.flush()[:-8] if wbits > 15 else packer.flush()[:-4]
    count = gib * 1024
    if wbits > 15:  # gzip trailer: CRC-32 and size mod 2**32, little-endian
        crc = 0
        for _ in range(count):
            crc = zlib.crc32(zeros, crc)
        trailer = struct.pack("<II", crc, (count * MIB) & 0xFFFFFFFF)
    else:  # zlib trailer: Adler-32, big-endian
        adler = 1
        for _ in range(count):
            adler = zlib.adler32(zeros, adler)
        trailer = struct.pack(">I", adler)
    return head + block * (count - 1) + final_block + trailer


@pytest.mark.parametrize("header", [None, "", "identity", "IDENTITY", " none ", "identity, identity"])
def test_identity_passes_the_body_through(header):
    assert decompress(PAYLOAD, header, LIMIT) is PAYLOAD


def test_identity_body_over_the_limit_is_too_large():
    with pytest.raises(PayloadTooLarge, match=f"{len(PAYLOAD)} bytes exceeds the limit of 100 bytes"):
        decompress(PAYLOAD, None, 100)


@pytest.mark.parametrize("header", ["gzip", "GZip", "x-gzip", " gzip ", "identity, gzip"])
def test_gzip(header):
    assert decompress(gzip.compress(PAYLOAD), header, LIMIT) == PAYLOAD


def test_deflate_as_the_python_exporter_sends_it_zlib_wrapped():
    assert decompress(zlib.compress(PAYLOAD), "deflate", LIMIT) == PAYLOAD


def test_deflate_raw_stream_is_accepted_too():
    assert decompress(raw_deflate(PAYLOAD), "Deflate", LIMIT) == PAYLOAD


def test_raw_deflate_whose_first_bytes_pass_the_zlib_header_check():
    # Hand-made raw stream: a stored block whose ignored padding bits make byte 0 = 0x08 and
    # whose length (29) makes byte 1 complete a valid zlib header check (0x081D % 31 == 0).
    data = PAYLOAD[:29 + 100]
    first = bytes([0x08]) + struct.pack("<HH", 29, 29 ^ 0xFFFF) + data[:29]
    last = bytes([0x01]) + struct.pack("<HH", 100, 100 ^ 0xFFFF) + data[29:]
    raw = first + last
    assert ((raw[0] << 8) | raw[1]) % 31 == 0 and raw[0] & 0x0F == 8
    assert zlib.decompress(raw, -zlib.MAX_WBITS) == data
    assert decompress(raw, "deflate", LIMIT) == data


def test_concatenated_gzip_members_are_all_read():
    body = gzip.compress(b"first,") + gzip.compress(b"second,") + gzip.compress(b"third")
    assert decompress(body, "gzip", LIMIT) == b"first,second,third"


def test_zero_padding_after_the_last_gzip_member_is_ignored():
    assert decompress(gzip.compress(PAYLOAD) + bytes(512), "gzip", LIMIT) == PAYLOAD


def test_garbage_after_a_gzip_member_is_refused():
    with pytest.raises(MalformedPayload, match="4 trailing bytes after member 0"):
        decompress(gzip.compress(PAYLOAD) + b"junk", "gzip", LIMIT)


def test_garbage_after_a_zlib_stream_is_refused():
    with pytest.raises(MalformedPayload, match="trailing bytes after the end of the"):
        decompress(zlib.compress(PAYLOAD) + b"junk", "deflate", LIMIT)


def test_too_many_gzip_members_are_refused_cheaply():
    empty_member = gzip.compress(b"")
    with pytest.raises(MalformedPayload, match="more than 64 members"):
        decompress(empty_member * 100_000, "gzip", LIMIT)


def test_the_limit_counts_all_members_together():
    member = gzip.compress(bytes(600_000))
    assert len(decompress(member, "gzip", LIMIT)) == 600_000
    with pytest.raises(PayloadTooLarge, match=f"limit of {LIMIT} bytes"):
        decompress(member + member, "gzip", LIMIT)


def test_exactly_the_limit_is_allowed_and_one_byte_more_is_not():
    body = gzip.compress(bytes(1000))
    assert decompress(body, "gzip", 1000) == bytes(1000)
    with pytest.raises(PayloadTooLarge):
        decompress(body, "gzip", 999)


@pytest.mark.parametrize("wbits, header", [(31, "gzip"), (15, "deflate")])
def test_one_gib_bomb_is_refused_without_inflating_it(wbits, header):
    bomb = zero_bomb(1, wbits)
    assert len(bomb) < 2 * MIB
    limit = 4 * MIB
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match=f"limit of {limit} bytes"):
            decompress(bomb, header, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # What was inflated before the refusal (limit + 1) plus one output step; never the GiB.
    assert peak < limit + 2 * MIB


def test_bomb_helper_builds_a_valid_stream():
    # Guard for the test above: the bomb really is a well-formed gzip of zeros.
    bomb = zero_bomb(1, 31)
    inflater = zlib.decompressobj(31)
    head = inflater.decompress(bomb, MIB)
    assert head == bytes(MIB)


def test_truncated_gzip_is_malformed():
    body = gzip.compress(PAYLOAD)
    for cut in (10, len(body) // 2, len(body) - 1):
        with pytest.raises(MalformedPayload, match="truncated gzip"):
            decompress(body[:cut], "gzip", LIMIT)


def test_gzip_with_a_wrong_crc_is_malformed():
    body = bytearray(gzip.compress(PAYLOAD))
    body[-8] ^= 0xFF
    with pytest.raises(MalformedPayload, match="corrupt gzip.*incorrect data check"):
        decompress(bytes(body), "gzip", LIMIT)


@pytest.mark.parametrize("header", ["gzip", "deflate"])
def test_garbage_is_malformed(header):
    with pytest.raises(MalformedPayload, match="corrupt|truncated"):
        decompress(b"this is not compressed at all, just text", header, LIMIT)


def test_plain_body_labelled_gzip_is_malformed_not_passed_through():
    with pytest.raises(MalformedPayload):
        decompress(b'{"resourceSpans": []}', "gzip", LIMIT)


@pytest.mark.parametrize("header", ["gzip", "deflate"])
def test_empty_body_with_a_compression_label_is_empty(header):
    assert decompress(b"", header, LIMIT) == b""


@pytest.mark.parametrize("header", ["br", "zstd", "snappy", "compress", "gzip;q=1", "lz4"])
def test_unsupported_encodings(header):
    with pytest.raises(UnsupportedEncoding, match="unsupported Content-Encoding") as info:
        decompress(gzip.compress(PAYLOAD), header, LIMIT)
    assert info.value.http_status == 415
    assert "gzip" in info.value.accept_encoding


def test_stacked_encodings_are_refused_by_name():
    with pytest.raises(UnsupportedEncoding, match="stacked Content-Encoding 'gzip, deflate'"):
        decompress(b"x", "gzip, deflate", LIMIT)


def test_errors_carry_status_codes():
    with pytest.raises(WireError) as info:
        decompress(b"garbage", "gzip", LIMIT)
    assert (info.value.http_status, info.value.grpc_code_value) == (400, 3)
    with pytest.raises(WireError) as info:
        decompress(gzip.compress(bytes(100)), "gzip", 10)
    assert (info.value.http_status, info.value.grpc_code_value) == (413, 8)
