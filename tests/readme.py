"""README.md's code blocks and the directives that say how tests/test_readme.py runs them.

The convention (also described in README.md, "The README is tested"): blocks fenced as
``bash``, ``console`` or ``cron`` are commands and run; any other block (no language, a
diagram, a sample) never runs. An HTML comment on the line before the fence (blank lines
between are allowed) changes that: ``<!-- readme-test: skip (why) -->`` does not run the
block, ``<!-- readme-test: exit N -->`` expects exit code N instead of 0. An unknown
directive is an error, so a typo cannot silently skip a block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
RUNNABLE = ("bash", "console", "cron")
_DIRECTIVE = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")
_SKIP = re.compile(r"skip \((.+)\)")
_EXIT = re.compile(r"exit (\d+)")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    skip: str | None = None  # the reason, when the block is not to run
    exit_code: int = 0

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and self.skip is None


@dataclass(frozen=True)
class CronEntry:
    schedule: tuple[str, str, str, str, str]  # minute hour day-of-month month day-of-week
    command: str


def blocks(path: Path = README) -> list[Block]:
    """Every fenced block of the file, in order, with the directive that precedes it."""
    found: list[Block] = []
    directive: tuple[str, int] | None = None
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _DIRECTIVE.fullmatch(line.strip())
        if match:
            directive = (match[1], i + 1)
        elif line.startswith("```"):
            lang = line[3:].strip()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                raise ValueError(f"{path.name}:{i + 1}: code block never closed")
            skip, exit_code = None, 0
            if directive is not None:
                text, at = directive
                if m := _SKIP.fullmatch(text):
                    skip = m[1]
                elif m := _EXIT.fullmatch(text):
                    exit_code = int(m[1])
                else:
                    raise ValueError(
                        f"{path.name}:{at}: unknown readme-test directive {text!r}: use 'skip (why)' or 'exit N'"
                    )
            found.append(Block(lang, "\n".join(lines[i + 1 : end]) + "\n", i + 1, skip, exit_code))
            directive = None
            i = end
        elif line.strip() and directive is not None:
            raise ValueError(f"{path.name}:{directive[1]}: readme-test directive not followed by a code block")
        i += 1
    return found


def console_commands(block: Block) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a console block, each with the output lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip():
            if not steps:
                raise ValueError(f"README.md:{block.line}: console block output before any '$ ' command")
            steps[-1][1].append(line)
    return steps


def cron_entries(block: Block) -> list[CronEntry]:
    """The schedule lines of a crontab block (comments and VAR=value lines left out)."""
    entries = []
    for line in block.text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"^\w+\s*=", line):
            continue
        fields = line.split(None, 5)
        if len(fields) != 6:
            raise ValueError(f"README.md:{block.line}: crontab line needs 5 time fields and a command: {line!r}")
        entries.append(CronEntry(tuple(fields[:5]), fields[5]))  # type: ignore[arg-type]
    return entries
