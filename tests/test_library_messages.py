"""Library warnings go through logging.getLogger("tfminv") and print one line each; wrapped
library errors name their cause with errors.first_line (one recipe, no IndexError)."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from tfminv import cli
from tfminv.errors import first_line

ROOT = Path(__file__).resolve().parents[1] / "tfminv"


def test_handler_prints_one_line_per_record(capsys):
    handler = cli.install_log_handler()
    assert cli.install_log_handler() is handler  # idempotent
    assert logging.getLogger("tfminv").propagate is False  # absl would print it again
    log = logging.getLogger("tfminv.some.module")
    log.warning("%s: shard damaged\n  (details)", "records")
    log.info("note: removed a stale folder")
    log.debug("not shown")
    assert capsys.readouterr().err == ("warning: records: shard damaged (details)\n"
                                       "note: removed a stale folder\n")


def test_cli_run_installs_the_handler(capsys, monkeypatch):
    logger = logging.getLogger("tfminv")
    monkeypatch.setattr(logger, "handlers", [])  # as in a fresh process
    monkeypatch.setattr(logger, "propagate", True)

    def main(argv):
        logging.getLogger("tfminv.x").warning("cached run discarded")
        return 0

    with pytest.raises(SystemExit) as exit_:
        cli.run(main, argv=["prog"])
    assert exit_.value.code == 0
    err = capsys.readouterr().err
    assert err == "warning: cached run discarded\n", err  # no absl prefix, printed once


def test_first_line():
    assert first_line(ValueError("")) == "ValueError"  # no IndexError on an empty message
    assert first_line(RuntimeError("\n  real cause\nstack...")) == "real cause"
    assert first_line("x" * 500, 20) == "x" * 20


def _sources():
    return [(p, p.read_text()) for p in sorted(ROOT.rglob("*.py"))]


def test_no_hand_written_first_line():
    """`str(e).splitlines()[0]` raises IndexError on an empty message; `(... or [..])[0]` is the
    same recipe again: errors.first_line is its one home."""
    pattern = re.compile(r"splitlines\(\)(\s*or\s*\[[^\]]*\]\))?\s*\)?\s*\[0\]")
    found = [f"{p.relative_to(ROOT.parent)}:{i}" for p, text in _sources() if p.name != "errors.py"
             for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_library_code_warns_through_logging():
    """No warnings.warn and no 'warning:'/'note:' line printed to stderr in library code (the
    binaries, tfminv/experiments/ and tfminv/cli.py, print their own lines)."""
    found = []
    for p, text in _sources():
        if "experiments" in p.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "warn" and \
                    isinstance(f.value, ast.Name) and f.value.id == "warnings":
                found.append(f"{p.name}:{node.lineno} warnings.warn")
            if isinstance(f, ast.Name) and f.id == "print" and node.args and \
                    isinstance(node.args[0], (ast.JoinedStr, ast.Constant)):
                head = ast.unparse(node.args[0])
                to_stderr = any(k.arg == "file" and "stderr" in ast.unparse(k.value)
                                for k in node.keywords)
                if to_stderr and re.match(r"f?['\"](warning|note):", head):
                    found.append(f"{p.name}:{node.lineno} print to stderr")
    assert not found, found
