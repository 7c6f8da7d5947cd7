"""Joining the workers' Native blocks into one (storage/native_merge.py), on the real engine."""

from __future__ import annotations

import logging
import random

import pytest

from agenttrail.storage import STEP_COLUMN_NAMES, EncodedSteps
from agenttrail.storage.native import INSERT_COLUMN_TYPES, INSERT_COLUMNS, encode_block
from agenttrail.storage.native_merge import merge_blocks
from agenttrail.storage.writer import INSERT_SETTINGS, BatchWriter

from test_storage_writer import T0, batch_of, step

ODD = ["", "é", "ü✓", "\x00", "'$,\\", "x" * 300, "🙂"]


def _random_steps(rng: random.Random, count: int, *, rich: bool) -> list[dict]:
    steps = []
    for i in range(count):
        events = rng.randint(0, 2) if rich and rng.random() < .5 else 0
        links = rng.randint(0, 2) if rich and rng.random() < .3 else 0
        steps.append(dict(
            step("1"), step_id=f"{rng.getrandbits(64):016x}", run_id=f"{rng.getrandbits(128):032x}",
            project_id=rng.choice(["p", "q", "é"]), kind=rng.choice(["llm", "tool", "agent"]),
            model=f"model-{rng.randrange(400)}" if rng.random() < .8 else rng.choice(ODD),
            operation=f"op-{i}" if rich else rng.choice(ODD), tool_name=rng.choice(ODD), status=rng.choice(["ok", "error", ""]),
            cost_usd=rng.choice([None, 0.0, 1.5e-7, 12.25]), input_tokens=rng.randrange(2**40),
            start_time=T0 + rng.randrange(10**12), end_time=T0 + 10**12 + rng.randrange(10**9),
            finish_reasons=rng.sample(["stop", "length", "tool_calls", ""], rng.randint(0, 3)),
            attributes={rng.choice(ODD) + f"k{j}": rng.choice(ODD) for j in range(rng.randint(0, 6))},
            resource_attributes={"service.name": rng.choice(ODD)} if rng.random() < .7 else {},
            unmapped_usage={f"gen_ai.usage.u{j}": str(j) for j in range(rng.randint(0, 2))} if rich else {},
            **{"events.time": [T0 + j for j in range(events)],
               "events.name": [rng.choice(["exception", "log", *ODD]) for _ in range(events)],
               "events.attributes": [{rng.choice(ODD): rng.choice(ODD)} if rng.random() < .5 else {}
                                     for _ in range(events)],
               "links.trace_id": ["ab" * 16] * links, "links.span_id": ["cd" * 8] * links,
               "links.trace_state": [rng.choice(ODD) for _ in range(links)],
               "links.attributes": [{"k": rng.choice(ODD)} for _ in range(links)]}))
    return steps


def _blocks(rng: random.Random, steps: list[dict]) -> list:
    cuts = sorted(rng.sample(range(1, len(steps)), rng.randint(1, 6)))
    parts = [steps[a:b] for a, b in zip([0, *cuts], [*cuts, len(steps)])]
    return [encode_block(batch_of(part), ingested_ms=1_700_000_000_000 + n) for n, part in enumerate(parts)]


def _rows(store, table: str) -> list[tuple]:
    columns = ", ".join(f"`{c}`" for c in INSERT_COLUMNS)
    return store.query(f"SELECT {columns} FROM {table} ORDER BY step_id").result_rows


@pytest.mark.parametrize("seed", range(6))
def test_a_merged_block_stores_the_same_rows_as_its_blocks(store, seed):
    rng = random.Random(seed)
    # Seeds 0-1: plain steps, so some blocks hold no events, links or usage at all.  Rich ones
    # have a distinct operation per step: past 256, the merged index needs 2 bytes a value.
    blocks = _blocks(rng, _random_steps(rng, 300 + 20 * seed if seed >= 4 else rng.randint(20, 250), rich=seed >= 2))
    for table in ("one_by_one", "merged"):
        store.command(f"CREATE TABLE {table} AS steps")
    store.client().raw_insert("one_by_one", INSERT_COLUMNS, insert_block=b"".join(b.data for b in blocks),
                              fmt="Native", settings=INSERT_SETTINGS)
    merged = merge_blocks(blocks, INSERT_COLUMN_TYPES)
    store.client().raw_insert("merged", INSERT_COLUMNS, insert_block=merged, fmt="Native", settings=INSERT_SETTINGS)
    expected = _rows(store, "one_by_one")
    assert _rows(store, "merged") == expected and len(expected) == sum(b.rows for b in blocks)
    # One block: its header says so (column count, then every row).
    assert merged[0] == len(INSERT_COLUMNS) and _leb128_at(merged, 1) == len(expected)


def _leb128_at(data: bytes, at: int) -> int:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        at, shift = at + 1, shift + 7


def test_blocks_that_do_not_match_their_column_spans_are_refused():
    blocks = _blocks(random.Random(1), _random_steps(random.Random(1), 50, rich=True))
    shifted = blocks[0]._replace(column_spans=tuple((s + 1, e + 1) for s, e in blocks[0].column_spans))
    with pytest.raises(ValueError):
        merge_blocks([shifted, *blocks[1:]], INSERT_COLUMN_TYPES)
    truncated = blocks[0]._replace(data=blocks[0].data[:-5])
    with pytest.raises(ValueError):
        merge_blocks([truncated, *blocks[1:]], INSERT_COLUMN_TYPES)


class _CapturingInserts:
    def __init__(self, client, inserts: list):
        self._client, self._inserts = client, inserts

    def raw_insert(self, table, columns, insert_block, **kwargs):
        self._inserts.append(insert_block)
        return self._client.raw_insert(table, columns, insert_block=insert_block, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize("mismatched_spans", [False, True])
def test_a_commit_of_several_encoded_batches_inserts_one_block(store, caplog, mismatched_spans):
    rng = random.Random(7)
    steps = _random_steps(rng, 90, rich=True)
    batches = [EncodedSteps.of(batch_of(steps[i:i + 30]), ingested_ms=0) for i in range(0, 90, 30)]
    if mismatched_spans:  # never expected: the commit must still store every row, block by block
        batches[1].column_spans = tuple((s + 1, e + 1) for s, e in batches[1].column_spans)
    inserts = []
    writer = BatchWriter(lambda: _CapturingInserts(store.client(), inserts), sole_writer=True)
    with caplog.at_level(logging.WARNING, logger="agenttrail.storage.writer"):
        writer._commit(batches, writer._client_factory())
    blocks_in_insert = 3 if mismatched_spans else 1
    assert inserts[0].count(b"\nproject_id") == blocks_in_insert  # the first column's name, once per block
    assert ("could not merge" in caplog.text) == mismatched_spans
    stored = store.query(f"SELECT {', '.join('`' + c + '`' for c in STEP_COLUMN_NAMES[:3])} FROM steps "
                         "ORDER BY step_id").result_rows
    assert sorted(stored) == sorted((s["project_id"], s["run_id"], s["step_id"]) for s in steps)
    assert store.query("SELECT sum(step_count) FROM runs FINAL").result_rows == [(90,)]
