"""Report files for every report of the project (evals, scaling sweeps, the ablation): content as blocks
(headings, paragraphs, tables, figures), rendered to Markdown (figures as files) and to a standalone HTML page
(figures embedded as base64 PNG), written as results.json + report.md + figures/*.png + report.html."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundation.files import atomic_path, write_text_atomic

RESULTS_JSON, REPORT_MD, REPORT_HTML = "results.json", "report.md", "report.html"
REPORT_FILES = (RESULTS_JSON, REPORT_MD, REPORT_HTML)
FIGURES_DIR = "figures"  # a report's PNG files, beside report.md

# ("h", level, text) | ("p", text) | ("table", headers, rows) | ("fig", name, caption)
Block = tuple


def finite_or_null(value: Any) -> Any:
    """A copy of nested data with nan/inf floats as None, so results.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def to_markdown(blocks: Sequence[Block]) -> str:
    """Markdown with figures referenced as FIGURES_DIR/NAME.png."""
    lines: list[str] = []
    for b in blocks:
        if b[0] == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            lines.append("| " + " | ".join(b[1]) + " |")
            lines.append("|" + "---|" * len(b[1]))
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in b[2]]
            lines.append("")
        elif b[0] == "fig":
            lines += [f"![{b[2]}]({FIGURES_DIR}/{b[1]}.png)", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
    "td:first-child{text-align:left}"
    "figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}code{background:#f5f5f5}"
)


def _inline(text: str) -> str:
    """Escape, then turn `code` and **bold** spans into tags."""
    parts = html.escape(text).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(bold))


def to_html(blocks: Sequence[Block], figures: dict[str, bytes], title: str) -> str:
    """One self-contained HTML page: every figure is a data: URI, nothing is fetched."""
    body: list[str] = []
    for b in blocks:
        if b[0] == "h":
            body.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b[2]
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif b[0] == "fig":
            data = base64.b64encode(figures[b[1]]).decode()
            body.append(
                f'<figure><img alt="{html.escape(b[1])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(b[2])}</figcaption></figure>"
            )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report_files(
    out_dir: str | os.PathLike,
    results: dict[str, Any],
    blocks: list[Block],
    figures: dict[str, bytes],
    title: str,
) -> dict[str, Path]:
    """OUT/figures/NAME.png for every figure, results.json (strict JSON: nan and inf as null), report.md (linking
    the figures) and a standalone report.html (figures inlined), each written atomically; the paths by file name."""
    out = Path(out_dir)
    for name, png in figures.items():
        with atomic_path(out / FIGURES_DIR / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    write_text_atomic(
        out / RESULTS_JSON, json.dumps(finite_or_null(results), indent=1, allow_nan=False) + "\n"
    )
    write_text_atomic(out / REPORT_MD, to_markdown(blocks))
    write_text_atomic(out / REPORT_HTML, to_html(blocks, figures, title=title))
    return {name: out / name for name in REPORT_FILES}
