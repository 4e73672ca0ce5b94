"""Reports of a sweep directory: HTML (self-contained, plots embedded), Markdown, CSV and JSON.

``write_reports(directory)`` reads the records, runs one ``analyse()`` and renders that ``Analysis`` in
each format. Each file is written beside its target and renamed into place, so a failed write (disk
full) leaves the previous report intact and a link in the directory is replaced, never followed. With
``out=`` the reports go to another directory (a read-only sweep can be reported).
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from energymeter.errors import EnergymeterError

from ..analysis.analysis import Analysis, analyse
from ..analysis.stats import ENERGY_SESOI
from ..records import store
from ..records.manifest import SweepManifest, read_manifest

FORMATS = ("html", "md", "csv", "json")


class ReportError(EnergymeterError):
    """A directory that holds no readable sweep, or a report that could not be written."""


def load(directory: Path, country: str | None = None, drift_correction: bool = False,
         sesoi: float = ENERGY_SESOI, multiplicity: str = "holm") -> Analysis:
    """Read a sweep directory and analyse it.

    Raises:
        ReportError: no results.jsonl, or no readable record in it.
    """
    if not (directory / store.RESULTS_FILE).exists():
        raise ReportError(f"{directory} holds no {store.RESULTS_FILE}: run `energymeter validate --out {directory}` first")
    records, problems = store.read_records(directory)
    if not records:
        raise ReportError(f"{directory / store.RESULTS_FILE} holds no readable run record"
                          + (f" ({problems[0]})" if problems else ""))
    try:
        sweep = read_manifest(directory) or SweepManifest()
    except store.StoreError as exc:
        sweep = SweepManifest()
        problems.append(store.Problem(0, str(exc)))
    if country is None:
        country = sweep.country
    return analyse(records, sweep, [str(p) for p in problems], country, drift_correction, sesoi, multiplicity)


def csv_text(analysis: Analysis) -> str:
    """report.csv: one row per run (columns computed by the analysis)."""
    fields = list(dict.fromkeys(k for row in analysis.rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(analysis.rows)
    return buffer.getvalue()


def _render(fmt: str, analysis: Analysis, sections: list) -> str:
    from .render_html import html_report
    from .render_md import markdown

    if fmt == "csv":
        return csv_text(analysis)
    if fmt == "json":
        return json.dumps(analysis.to_dict(), indent=2, sort_keys=True) + "\n"
    if fmt == "md":
        return markdown(sections)
    from .plots import figures

    return html_report(sections, figures(analysis))


def write_reports(directory: Path, formats: tuple[str, ...] = FORMATS, *, out: Path | None = None,
                  country: str | None = None, drift_correction: bool = False,
                  sesoi: float = ENERGY_SESOI, multiplicity: str = "holm") -> tuple[Analysis, list[Path]]:
    """Write the requested report formats into ``out`` (default: the sweep directory).

    Returns:
        The analysis and the paths written.

    Raises:
        ReportError: nothing readable in the directory, or a report that could not be written.
    """
    from .sections import sections as build_sections

    target = out or directory
    try:
        analysis = load(directory, country, drift_correction, sesoi, multiplicity)
    except ReportError as exc:
        stale = mark_stale(target)
        raise ReportError(str(exc) + (f"; the earlier reports no longer match and were renamed: {', '.join(stale)}"
                                      if stale else "")) from None
    try:
        store.check_writable(target)
    except store.StoreError as exc:
        raise ReportError(f"{exc}; write the reports elsewhere with --out DIR") from exc
    # matplotlib keeps a font cache; it goes under the report directory, never to ~/.cache.
    if "MPLCONFIGDIR" not in os.environ:
        os.environ["MPLCONFIGDIR"] = _cache_directory(target)
    sections = build_sections(analysis)
    written = []
    for fmt in formats:
        path = target / f"report.{fmt}"
        try:
            store.write_atomic(path, _render(fmt, analysis, sections))
        except store.StoreError as exc:
            stale = mark_stale(target, keep=[p.name for p in written])
            raise ReportError(str(exc) + (f"; the earlier reports not rewritten were renamed: {', '.join(stale)}"
                                          if stale else "")) from exc
        written.append(path)
    return analysis, written


def mark_stale(directory: Path, keep: "list[str] | tuple[str, ...]" = ()) -> list[str]:
    """Rename the reports in ``directory`` a failed report could not replace to ``report.<fmt>.stale``, so no
    report that no longer matches its results stays under its usual name; returns the new names."""
    renamed = []
    for fmt in FORMATS:
        path = directory / f"report.{fmt}"
        if path.name in keep or not path.is_file() or path.is_symlink():
            continue
        try:
            os.replace(path, path.with_name(path.name + ".stale"))
            renamed.append(path.name + ".stale")
        except OSError:
            continue  # a report that cannot even be renamed stays; the error above still says what failed
    return renamed


def _cache_directory(target: Path) -> str:
    """``target/.energymeter-cache/matplotlib``, made and checked to be real directories (a link planted there
    would have matplotlib write through it, outside the output directory); where it is not, a private
    temporary directory, removed at exit."""
    cache = target / ".energymeter-cache"
    try:
        for directory in (cache, cache / "matplotlib"):
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                pass
            if not stat.S_ISDIR(os.lstat(directory).st_mode):  # lstat: a link is not a directory here
                raise NotADirectoryError(f"{directory} is a link or not a directory")
        return str(cache / "matplotlib")
    except OSError:
        private = tempfile.mkdtemp(prefix="energymeter-mpl-")
        atexit.register(shutil.rmtree, private, True)
        return private
