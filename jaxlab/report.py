"""The results protocol every experiment runner returns, and REPORT.md generation.

A runner's ``run(config, workdir)`` returns a JSON-ready dict::

    {
      "summary": "One paragraph: what was run, at which size.",
      "figures": {"heldout_bits_per_byte": 2.31, ...},       # named measured numbers
      "claims": [claim(...), ...],                            # checked against the source
      "tables": {"Iterations to converge": markdown_table(...)},
      "plots": ["loss.png", ...],                             # PNG files in the workdir
      "notes": ["Where the reproduction disagrees, and why we think so."],
    }

``jaxlab run`` writes it to ``results.json``; ``jaxlab reproduce`` gathers every experiment's
results into one REPORT.md.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence


def claim(
    name: str,
    *,
    source: str,
    expected: str,
    measured,
    tolerance: str,
    agree: bool | None,
) -> dict:
    """Builds one checked claim.

    Args:
      name: Short name of the quantity, e.g. ``"NTK-aware base for d=128, k=8"``.
      source: Where the claim comes from (post URL, paper, spec section).
      expected: The claimed value or behaviour, as text (``"82,684.6"``, ``"< unigram entropy"``).
      measured: What this run measured (number or text).
      tolerance: The tolerance the config declares, as text (``"rel 1e-6"``).
      agree: True/False when checked; None when only reported (e.g. a GPU-only figure).

    Returns:
      A JSON-ready dict.
    """
    if isinstance(measured, float) and not math.isfinite(measured):
        measured = str(measured)
    return dict(
        name=name,
        source=source,
        expected=expected,
        measured=measured,
        tolerance=tolerance,
        agree=None if agree is None else bool(agree),
    )


def _num(x: float) -> str:
    return _fmt(float(x))


def within(
    name: str,
    measured: float,
    expected: float,
    *,
    source: str,
    rel: float | None = None,
    abs: float | None = None,  # noqa: A002  (the tolerance's name in the report)
    sanity: bool = False,
) -> dict:
    """A claim ``|measured - expected| <= tol``; expected, tolerance and verdict from one number.

    Exactly one of ``rel`` (relative to ``|expected|``) or ``abs`` is given. A non-finite
    measurement disagrees. ``sanity=True`` labels the row as a sanity check rather than a claim
    of the source.
    """
    if (rel is None) == (abs is None):
        raise ValueError("within() needs exactly one of rel= or abs=")
    tol = rel * math.fabs(expected) if rel is not None else abs
    measured = float(measured)
    agree = math.isfinite(measured) and math.fabs(measured - expected) <= tol
    text = f"rel {rel:g}" if rel is not None else f"abs {abs:g}"
    return claim(
        _label(name, sanity),
        source=source,
        expected=_num(expected),
        measured=measured,
        tolerance=text,
        agree=agree,
    )


def at_most(name: str, measured: float, bound: float, *, source: str, sanity: bool = False) -> dict:
    """A claim ``measured <= bound`` (non-finite disagrees)."""
    measured = float(measured)
    return claim(
        _label(name, sanity),
        source=source,
        expected=f"<= {_num(bound)}",
        measured=measured,
        tolerance="one-sided",
        agree=math.isfinite(measured) and measured <= bound,
    )


def at_least(
    name: str, measured: float, bound: float, *, source: str, sanity: bool = False
) -> dict:
    """A claim ``measured >= bound`` (non-finite disagrees)."""
    measured = float(measured)
    return claim(
        _label(name, sanity),
        source=source,
        expected=f">= {_num(bound)}",
        measured=measured,
        tolerance="one-sided",
        agree=math.isfinite(measured) and measured >= bound,
    )


def between(
    name: str, measured: float, lo: float, hi: float, *, source: str, sanity: bool = False
) -> dict:
    """A claim ``lo <= measured <= hi`` (non-finite disagrees)."""
    measured = float(measured)
    return claim(
        _label(name, sanity),
        source=source,
        expected=f"in [{_num(lo)}, {_num(hi)}]",
        measured=measured,
        tolerance="interval",
        agree=math.isfinite(measured) and lo <= measured <= hi,
    )


def interval_above(
    name: str,
    ci: tuple[float, float],
    threshold: float,
    *,
    source: str,
    measured: float | None = None,
) -> dict:
    """A claim "the quantity exceeds ``threshold``", decided by a confidence interval.

    Agrees when the whole interval is above the threshold, disagrees when it is wholly below, and
    is "not resolvable at this size" (``agree=None``) when it straddles the threshold.
    """
    lo, hi = float(ci[0]), float(ci[1])
    agree = True if lo > threshold else False if hi < threshold else None
    shown = f"{_num(measured)} " if measured is not None else ""
    return claim(
        name,
        source=source,
        expected=f"> {_num(threshold)}",
        measured=f"{shown}[{_num(lo)}, {_num(hi)}]",
        tolerance="CI" + ("" if agree is not None else " (not resolvable at this size)"),
        agree=agree,
    )


def holds(
    name: str, ok: bool, *, source: str, expected: str, measured, sanity: bool = False
) -> dict:
    """A qualitative claim (an ordering, a monotone curve) whose test is ``ok``."""
    return claim(
        _label(name, sanity),
        source=source,
        expected=expected,
        measured=measured,
        tolerance="exact",
        agree=bool(ok),
    )


def reported(name: str, measured, *, source: str, expected: str, why: str) -> dict:
    """A figure shown next to the source's value but not checked (``why`` says why)."""
    return claim(
        name, source=source, expected=expected, measured=measured, tolerance=why, agree=None
    )


def _label(name: str, sanity: bool) -> str:
    return f"{name} (sanity check)" if sanity else name


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Formats a Markdown table; floats get 4 significant digits."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def verdict(agree: bool | None) -> str:
    return {True: "agree", False: "**disagree**", None: "reported"}[agree]


def experiment_section(name: str, description: str, results: dict, run_dir: str) -> str:
    """Renders one experiment's results as a REPORT.md section (plot paths relative)."""
    out = [f"## {name}", "", f"*{description}*", ""]
    if results.get("error"):
        out += [f"**FAILED**: `{results['error']}`", ""]
        return "\n".join(out)
    if results.get("summary"):
        out += [results["summary"], ""]
    if results.get("wall_time_s") is not None:
        out += [f"Run directory `{run_dir}`, wall time {results['wall_time_s']:.1f} s.", ""]
    claims = results.get("claims", [])
    if claims:
        rows = [
            [
                c["name"],
                c["source"],
                c["expected"],
                c["measured"],
                c["tolerance"],
                verdict(c["agree"]),
            ]
            for c in claims
        ]
        header = ["claim", "source", "expected", "measured", "tolerance", "verdict"]
        out += [markdown_table(header, rows), ""]
    known = results.get("known_disagreements") or []
    if known:
        out += ["**Known disagreements** (listed in the config, with the reason):", ""]
        out += [f"- *{name}*: {reason}" for name, reason in known] + [""]
    figures = results.get("figures", {})
    if figures:
        out += ["<details><summary>All measured figures</summary>", ""]
        out += [markdown_table(["figure", "value"], sorted(figures.items())), "", "</details>", ""]
    for title, table in results.get("tables", {}).items():
        out += [f"### {title}", "", table, ""]
    for plot in results.get("plots", []):
        out += [f"![{plot}]({run_dir}/{plot})", ""]
    notes = results.get("notes", [])
    if notes:
        out += ["**Notes.**", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def write_report(
    path: str | pathlib.Path, sections: Sequence[tuple[str, str, dict, pathlib.Path]], header: str
) -> pathlib.Path:
    """Writes REPORT.md atomically from ``(name, description, results, run_dir)`` tuples."""
    path = pathlib.Path(path)
    rows = []
    for name, _, results, _ in sections:
        claims = results.get("claims", [])
        n_agree = sum(c["agree"] is True for c in claims)
        n_dis = sum(c["agree"] is False for c in claims)
        n_rep = sum(c["agree"] is None for c in claims)
        status = f"{n_agree} agree, {n_dis} disagree, {n_rep} reported only"
        if results.get("error"):
            status = "FAILED"
        elif results.get("notes"):
            status += f"; {len(results['notes'])} note(s)"
        rows.append([f"[{name}](#{name})", status])
    parts = [header, "", markdown_table(["experiment", "claims (see each section)"], rows), ""]
    for name, description, results, run_dir in sections:
        rel = os.path.relpath(run_dir, path.parent)
        parts.append(experiment_section(name, description, results, rel))
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
    return path
