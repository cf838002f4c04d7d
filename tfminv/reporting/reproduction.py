"""The claim engine behind experiments/REPRODUCTION.md: results.json files + claims -> markdown.

Every claim is a `Claim`: the sentence asserted, the rule (in words) that decides it on our
numbers, and the `check` function that applies exactly that rule to the rows of one
results.json and returns an `Outcome` (verdict, the numbers compared, and - shown only when
the claim does not hold - context read from the data plus possible reasons, labelled as
untested). `render(d)` lays out the sections (one per results folder: title, table columns,
facts read from run.json, claims) of a claims file, so no sentence in the document states a
result that a rule did not compute. A folder whose results.json is missing is listed as not run.

The claims themselves are data of the repository that holds the results, not of this package:
`render(d)` reads `d/claims.py` (this repository's: experiments/claims.py), whose interface is
described in `load_claims`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Callable

CLAIMS_FILE = "claims.py"  # beside the results folders it judges
RERUNS = "reruns.md"  # hand-written section on rerun, seed and code-version variation


@dataclasses.dataclass
class Outcome:
    """verdict: True (holds), False (does not hold), 'na' (not comparable), None (not run).
    numbers: the values the rule compared. context: shown when the claim does not hold (or is
    not comparable): facts read from the data, then possible reasons, which no rule tested."""

    verdict: object
    numbers: str = ""
    context: str = ""


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the paper, the rule that decides it on our numbers, and that rule as code:
    check(rows, run) -> Outcome, rows from results.json and run from run.json."""

    scenario: str
    text: str
    rule: str
    check: Callable[[list, dict], Outcome]


@dataclasses.dataclass(frozen=True)
class Section:
    """One results folder: its table (columns shown when present), facts read from its run.json
    (`facts(rows, run) -> markdown`), and its claims."""

    folder: str
    title: str
    columns: tuple
    claims: tuple = ()
    facts: Callable[[list, dict], str] | None = None


def _verdict(ok) -> str:
    return {True: "**holds**", False: "**does not hold**", None: "**not run**",
            "na": "**not comparable**"}[ok]


def fmt(v, nd=4):
    """A table cell: floats to `nd` decimals, None as n/a."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _table(rows, cols):
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(out)


def load(d: Path, name: str):
    """(rows, run) of experiments folder `name`; (None, None) without results.json."""
    p = Path(d) / name / "results.json"
    if not p.exists():
        return None, None
    from tfminv.results import canonical_row

    run = Path(d) / name / "run.json"
    rows = json.loads(p.read_text())
    if isinstance(rows, list):
        rows = [canonical_row(r) if isinstance(r, dict) else r for r in rows]
    return rows, (json.loads(run.read_text()) if run.exists() else {})


def join(*parts) -> str:
    """The non-empty parts joined by '; ' (a context line)."""
    return "; ".join(p for p in parts if p)

def finite(*vals) -> bool:
    """Every value is a finite number (a rule compares only those)."""
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals)


def load_claims(path):
    """The claims module at `path` (a Python file). It defines HEADER (markdown),
    sections(d) -> [Section], and optionally observations(d) -> [markdown part] (comparisons
    across folders, shown after the sections), standalone(d) -> [(title, Claim, Outcome)]
    (claims under a heading of their own) and REGENERATE_BEFORE / REGENERATE_AFTER (lines
    around the binaries' commands in "Regenerate every table"). ConfigError when it is missing."""
    from tfminv.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no claims file; expected the {CLAIMS_FILE} that defines the "
                          "claims judged on this folder's results (see tfminv.reporting."
                          "reproduction.load_claims)")
    name = f"_tfminv_claims_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    spec.loader.exec_module(module)
    return module


def _claims(d: Path, claims):
    if claims is None:
        return load_claims(Path(d) / CLAIMS_FILE)
    return load_claims(claims) if isinstance(claims, (str, Path)) else claims


def _outcomes(sec: Section, rows, run) -> list[tuple[Claim, Outcome]]:
    return [(claim, Outcome(None) if rows is None else claim.check(rows, run or {}))
            for claim in sec.claims]


def evaluate(d: Path, claims=None) -> list[tuple[Claim, Outcome]]:
    """Every claim with its outcome on the results in d (missing folders: not run). claims: a
    claims module or the path of one (default d/claims.py)."""
    claims = _claims(d, claims)
    out = []
    for sec in claims.sections(Path(d)):
        out += _outcomes(sec, *load(d, sec.folder))
    return out + [(c, o) for _, c, o in getattr(claims, "standalone", lambda d: [])(Path(d))]


def _claim_text(claim: Claim, outcome: Outcome) -> str:
    text = (f"- Claim: {claim.text}\n  - Rule: {claim.rule}\n  - Ours: {outcome.numbers}\n"
            f"  - Verdict: {_verdict(outcome.verdict)}")
    if outcome.verdict in (False, "na") and outcome.context:
        text += f"\n  - Context: {outcome.context}"
    return text + "\n"


def render(d: Path, claims=None) -> str:
    """The whole REPRODUCTION.md text for the experiments folder d, judged by `claims` (a claims
    module or the path of one; default d/claims.py), with `reruns.md`, when present, appended
    as written."""
    d = Path(d)
    claims = _claims(d, claims)
    parts, commands, summary = [], [], []
    for sec in claims.sections(d):
        rows, run = load(d, sec.folder)
        parts.append(f"\n## {sec.title} (`{sec.folder}/`)\n")
        if rows is None:
            parts.append("Not run (no results.json).\n")
        else:
            if run.get("command"):
                commands.append(run["command"] + f"   # -> {sec.folder}/")
                parts.append(f"Command: `{run['command']}`\n")
            parts.append(_table(rows, [c for c in sec.columns if any(c in r for r in rows)])
                         + "\n")
            figs = sorted(p.name for p in (d / sec.folder).glob("*.png"))
            parts.append("\n".join(f"![{f}]({sec.folder}/{f})" for f in figs) + "\n")
            if sec.facts:
                parts.append(sec.facts(rows, run))
        for claim, outcome in _outcomes(sec, rows, run):
            summary.append((claim, outcome))
            if rows is not None:
                parts.append(_claim_text(claim, outcome))
    parts += getattr(claims, "observations", lambda d: [])(d)
    for title, claim, outcome in getattr(claims, "standalone", lambda d: [])(d):
        parts.append(f"\n## {title}\n")
        parts.append(_claim_text(claim, outcome))
        summary.append((claim, outcome))
    notes = d / RERUNS
    if notes.is_file():  # measured by hand (reruns, seeds, code versions): kept as written
        parts.append("\n" + notes.read_text().strip() + "\n")
    table = ["\n## Summary\n", "| scenario | claim | rule | verdict |", "|---|---|---|---|"]
    table += [f"| {c.scenario} | {c.text} | {c.rule} | {_verdict(o.verdict)} |"
              for c, o in summary]
    cmds = ["\n## Regenerate every table\n", "```bash",
            *getattr(claims, "REGENERATE_BEFORE", ()), *commands,
            *getattr(claims, "REGENERATE_AFTER", ()), "```"]
    return "\n".join([claims.HEADER] + table + parts + cmds) + "\n"
