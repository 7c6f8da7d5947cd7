"""Reading a documentation page: its fenced blocks, their commands, and answers compared by shape.

Used by tests/test_docs_commands.py, whose docstring states the conventions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|file)\s*(.*?)\s*-->")
HEX_ID = re.compile(r"^(?:[0-9a-f]{16}|[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$")
TIMING_KEY = re.compile(r"(?:_ms|duration|latency|_seconds)$")


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    text: str
    marker: tuple[str, str] | None  # ("skip", reason) or ("file", name)
    answer: "Block | None" = None


def parse_blocks(text: str) -> list[Block]:
    """The page's fenced blocks, each bash block with the block right after it as its answer."""
    lines = text.splitlines()
    blocks: list[Block] = []
    gap_only = False  # only blank lines since the last block closed
    i = 0
    while i < len(lines):
        fence = re.match(r"^(`{3,})\s*([\w+-]*)", lines[i])
        if not fence:
            gap_only = gap_only and not lines[i].strip()
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence.group(1)):
            body.append(lines[i])
            i += 1
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        found = MARKER.search(previous)
        block = Block(fence.group(2).lower(), start + 1, "\n".join(body) + "\n",
                      (found.group(1), found.group(2)) if found else None)
        if gap_only and blocks and blocks[-1].lang == "bash" and block.lang in ("json", ""):
            blocks[-1].answer = block
        blocks.append(block)
        gap_only = True
        i += 1
    return blocks


def outside_blocks(text: str) -> str:
    """The page's text without its fenced blocks."""
    return re.sub(r"^(`{3,}).*?^\1", "", text, flags=re.M | re.S)


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment): a ``#`` outside quotes at the start or after a space starts a comment."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip(), line[k + 1:].strip()
    return line.rstrip(), ""


def commands(block: Block) -> list[tuple[str, str]]:
    """(command, trailing comment) for each command of a bash block."""
    out, pending = [], ""
    for raw in block.text.splitlines():
        command, comment = split_comment(raw.strip())
        if command.endswith("\\"):
            pending += command[:-1].rstrip() + " "
            continue
        command = (pending + command).strip()
        pending = ""
        if command:
            out.append((command, comment))
    return out


def compare(shown, got, path: str, ids: dict[str, str], problems: list[str], key: str = "") -> None:
    """Record in ``problems`` where ``got`` differs in shape from ``shown``; learn ids into ``ids``."""
    where = path or "answer"
    if isinstance(shown, dict):
        if not isinstance(got, dict):
            problems.append(f"{where}: expected an object, got {type(got).__name__}")
            return
        if set(shown) != set(got):
            problems.append(f"{where}: keys differ: missing {sorted(set(shown) - set(got))}, "
                            f"not shown {sorted(set(got) - set(shown))}")
        for k in shown.keys() & got.keys():
            compare(shown[k], got[k], f"{path}.{k}", ids, problems, k)
    elif isinstance(shown, list):
        if not isinstance(got, list) or len(got) != len(shown):
            problems.append(f"{where}: expected a list of {len(shown)}, got {_short(got)}")
            return
        for n, (a, b) in enumerate(zip(shown, got)):
            compare(a, b, f"{path}[{n}]", ids, problems, key)
    elif isinstance(shown, str) and (HEX_ID.match(shown) or ISO_TIME.match(shown) or "cursor" in key):
        if not isinstance(got, str):
            problems.append(f"{where}: expected a string, got {_short(got)}")
        elif not ISO_TIME.match(shown):
            ids.setdefault(shown, got)  # the first answer that shows an id decides what it stands for
    elif isinstance(shown, bool) or shown is None or isinstance(shown, str):
        if got != shown:
            problems.append(f"{where}: expected {_short(shown)}, got {_short(got)}")
    elif isinstance(shown, (int, float)):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            problems.append(f"{where}: expected a number, got {_short(got)}")
        elif not TIMING_KEY.search(key) and not math.isclose(shown, got, rel_tol=1e-9):
            problems.append(f"{where}: expected {shown}, got {got}")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) < 120 else text[:117] + "..."
