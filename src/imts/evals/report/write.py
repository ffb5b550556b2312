"""Writing a report's three files (HTML, Markdown, JSON) so readers never see a partial one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from imts.core.files import file_mode
from imts.evals.report.html import render_html
from imts.evals.report.i18n import Lang
from imts.evals.report.jsonio import report_to_dict
from imts.evals.report.markdown import render_markdown
from imts.evals.report.model import ComparisonReport

__all__ = ["write_report"]


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes it 0600: readable like the folder's other files
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_report(report: ComparisonReport, out_dir: Path, lang: Lang = "en") -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``report.json`` into ``out_dir`` atomically.

    Everything is rendered before anything is written; each file goes to a temporary file in ``out_dir``
    and is moved into place with :func:`os.replace`, so readers never see a partial file.

    Args:
        report: The comparison to write.
        out_dir: Destination folder (created if missing).
        lang: Language of the HTML and Markdown (the JSON holds data only).

    Returns:
        ``{"html": path, "md": path, "json": path}``.

    Raises:
        ValueError: If the baseline and tuned item sets differ, or ``lang`` is unknown.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "html": render_html(report, lang=lang),
        "md": render_markdown(report, lang=lang),
        "json": json.dumps(report_to_dict(report), ensure_ascii=False, indent=2, allow_nan=False) + "\n",
    }
    paths = {kind: out_dir / f"report.{kind}" for kind in contents}
    for kind, text in contents.items():
        _atomic_write_text(paths[kind], text)
    return paths
