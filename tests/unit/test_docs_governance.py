"""docs/freezes.md and docs/approvals.md show what ``sundial preview`` prints: every ``$ sundial preview``
block on those pages is run here (offline, at the ``--now`` it names) and must match, line for line; and
every example file they preview is valid."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sundial.cli.main import main

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "docs" / "freezes.md", REPO / "docs" / "approvals.md"]
BLOCK = re.compile(r"```console\n\$ sundial preview (?P<args>[^\n]*)\n(?P<output>.*?)```", re.DOTALL)


def blocks() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            found.append((page.name, match["args"], match["output"]))
    return found


def test_each_page_shows_the_preview_of_its_examples() -> None:
    pages = {page for page, _, _ in blocks()}
    assert pages == {"freezes.md", "approvals.md"}
    assert len(blocks()) >= 4


@pytest.mark.parametrize(("page", "args", "output"), blocks(), ids=lambda value: str(value)[:60])
def test_the_preview_on_the_page_is_what_sundial_preview_prints(
    page: str, args: str, output: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    argv = shlex.split(args)
    assert "--now" in argv, f"{page}: a preview on the page must name its --now, or it changes every day"
    assert main(["preview", *argv]) == 0, f"{page}: the example is not valid"
    assert capsys.readouterr().out == output
