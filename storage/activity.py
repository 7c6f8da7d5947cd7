"""What the store is busy with: its parts, merges and mutations, for ``/metrics``.

The embedded store cannot be asked by anyone else while the server holds it (chDB binds its
directory to one process), so these are the only view of its background work: a partition
nearing ClickHouse's 1,000 active parts (inserts slow down there, and fail at 3,000), merges
that take the cores, a migration's mutation still rewriting columns.  On a server they are the
answer of the node the server talks to.
"""

from __future__ import annotations

PARTS_SQL = (
    "SELECT table, sum(parts), max(parts) FROM ("
    "SELECT table, partition_id, count() AS parts FROM system.parts "
    "WHERE database = {database:String} AND active GROUP BY table, partition_id) GROUP BY table"
)
MERGES_SQL = (
    "SELECT table, count(), sum(total_size_bytes_compressed) FROM system.merges "
    "WHERE database = {database:String} GROUP BY table"
)
MUTATIONS_SQL = (
    "SELECT table, count() FROM system.mutations WHERE database = {database:String} AND NOT is_done GROUP BY table"
)


def store_activity(store) -> dict[str, dict[str, float]]:
    """Per table of the store's database: ``parts`` (active), ``partition_parts`` (the most
    in one partition), ``merges`` (running), ``merge_bytes`` (compressed bytes they read) and
    ``mutations`` (not done).  Tables with nothing to report are left out."""
    database = {"database": store.database}
    tables: dict[str, dict[str, float]] = {}

    def row(table: str) -> dict[str, float]:
        return tables.setdefault(table, dict.fromkeys(("parts", "partition_parts", "merges", "merge_bytes",
                                                       "mutations"), 0))

    for table, parts, most in store.query(PARTS_SQL, parameters=database).result_rows:
        row(table).update(parts=parts, partition_parts=most)
    for table, merges, size in store.query(MERGES_SQL, parameters=database).result_rows:
        row(table).update(merges=merges, merge_bytes=size)
    for table, mutations in store.query(MUTATIONS_SQL, parameters=database).result_rows:
        row(table)["mutations"] = mutations
    return tables


__all__ = ["store_activity"]
