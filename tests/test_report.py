"""Report files: blocks rendered to Markdown and to one standalone HTML page, strict results.json, PNG figures."""

import base64
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from foundation.report import (
    FIGURES_DIR,
    REPORT_FILES,
    figure_png,
    finite_or_null,
    to_html,
    to_markdown,
    write_report_files,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png() -> bytes:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    return figure_png(fig)


BLOCKS = [
    ("h", 2, "Results"),
    ("p", "MAE of `energy` is **low**"),
    ("table", ["name", "value"], [["a|b", "1.0"]]),
    ("fig", "parity", "parity <plot>"),
]


def test_figure_png_is_a_png_and_closes_the_figure():
    before = len(plt.get_fignums())
    png = _png()
    assert png.startswith(PNG_MAGIC) and len(plt.get_fignums()) == before


def test_markdown_has_headings_tables_with_escaped_pipes_and_figure_links():
    text = to_markdown(BLOCKS)
    lines = text.splitlines()
    assert lines[0] == "## Results"
    assert "| name | value |" in lines and "|---|---|" in lines
    assert "| a\\|b | 1.0 |" in lines
    assert f"![parity <plot>]({FIGURES_DIR}/parity.png)" in lines


def test_html_is_standalone_escaped_and_inlines_code_and_bold():
    png = _png()
    page = to_html(BLOCKS, {"parity": png}, title="a <title>")
    assert "<title>a &lt;title&gt;</title>" in page
    assert "<p>MAE of <code>energy</code> is <b>low</b></p>" in page
    assert "<figcaption>parity &lt;plot&gt;</figcaption>" in page
    src = page.split('src="', 1)[1].split('"', 1)[0]
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]) == png
    assert 'src="http' not in page and 'src="figures' not in page


def test_finite_or_null_replaces_nan_and_inf_in_nested_data():
    data = {"a": [1.0, math.nan, {"b": math.inf}], "c": (2, -math.inf), "d": "x"}
    assert finite_or_null(data) == {"a": [1.0, None, {"b": None}], "c": [2, None], "d": "x"}


def test_write_report_files_writes_strict_json_markdown_html_and_figures(tmp_path):
    png = _png()
    paths = write_report_files(
        tmp_path, {"mae": math.nan, "n": 3}, BLOCKS, {"parity": png}, title="t"
    )
    assert sorted(paths) == sorted(REPORT_FILES) and all(p.is_file() for p in paths.values())
    assert json.loads(paths["results.json"].read_text()) == {"mae": None, "n": 3}
    assert "NaN" not in paths["results.json"].read_text()
    assert paths["report.md"].read_text() == to_markdown(BLOCKS)
    assert paths["report.html"].read_text() == to_html(BLOCKS, {"parity": png}, title="t")
    assert (tmp_path / FIGURES_DIR / "parity.png").read_bytes() == png
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*REPORT_FILES, FIGURES_DIR])
