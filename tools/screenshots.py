#!/usr/bin/env python
"""Screenshots of the report and of every executed notebook as a reader sees them, and what is wrong in them.

    python tools/screenshots.py                          # the default profile's executed notebooks and report.html
    python tools/screenshots.py --outputs workspace/smoke/outputs/default --only 07 10

Each executed notebook (``<workspace>/outputs/<profile>/NN_*.ipynb``, from ``run_all.py``) is exported to HTML with
nbconvert's JupyterLab template (code included), and ``report.html`` is taken as ``run_all.py`` wrote it; headless
Chromium shows each at the width of a laptop screen and saves a full-page PNG in ``<outputs>/screenshots/`` (never
committed: the workspace is ignored by git). It then lists, per page, what a reader should never see:

* ``NaN`` / ``nan`` in an output (a missing value shows as a dash);
* an output wider than its cell (a table or text that scrolls sideways), with its width;
* text cut off by pandas (``...`` in a table cell);
* in the report, the exercises or their model answers.

Exit status 1 when anything is listed. A developer's tool: it needs Playwright for Python
(``.venv/bin/pip install playwright``; not a dependency of skinlib) and a Chromium (``--chromium``, default
``/usr/bin/chromium``, the Debian package; ``playwright install chromium`` fetches one elsewhere).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: JavaScript run in each page: the problems a reader would see (see the module's docstring)
FIND_PROBLEMS = r"""
(isReport) => {
  const problems = [];
  const outputs = [...document.querySelectorAll('.jp-OutputArea-output, .jp-RenderedHTMLCommon')];
  for (const out of outputs) {
    if (out.closest('.jp-InputArea')) continue;
    const text = out.innerText || '';
    const nan = text.match(/(^|[^A-Za-z])(NaN|nan)([^A-Za-z]|$)/);
    if (nan) problems.push('NaN shown: ' + text.slice(Math.max(0, nan.index - 40), nan.index + 40).replace(/\s+/g, ' '));
    for (const el of [out, ...out.querySelectorAll('table, pre')]) {
      const box = el.closest('.jp-OutputArea-output') || el;
      if (el.scrollWidth > box.clientWidth + 2 && box.clientWidth > 0) {
        problems.push(`scrolls sideways: ${el.tagName.toLowerCase()} ${el.scrollWidth} px in ${box.clientWidth} px: `
                      + (el.innerText || '').slice(0, 60).replace(/\s+/g, ' '));
        break;
      }
    }
    for (const td of out.querySelectorAll('td, th')) {
      if (/\.\.\.$/.test(td.innerText.trim()) && td.innerText.trim().length > 4) {
        problems.push('cut off: ' + td.innerText.trim().slice(0, 60));
        break;
      }
    }
  }
  if (isReport) {
    const body = document.body.innerText;
    for (const secret of ['Exercise', 'BEGIN SOLUTION', 'END SOLUTION', 'Model answer'])
      if (body.includes(secret)) problems.push('the report shows "' + secret + '"');
  }
  return [...new Set(problems)];
}
"""


def to_html(notebook: Path, target: Path) -> Path:
    """An executed notebook as HTML with its code (nbconvert's JupyterLab template), written to `target`."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target.write_text(body)
    return target


def pages(outputs: Path, only: list[str]) -> list[tuple[str, Path]]:
    """(name, executed notebook or report.html) for every page to look at, in order."""
    found = [(p.stem, p) for p in sorted(outputs.glob("[0-9][0-9]_*.ipynb"))]
    if (outputs / "report.html").is_file():
        found.append(("report", outputs / "report.html"))
    return [(n, p) for n, p in found if not only or any(n.startswith(k) for k in only)]


def main(argv: list[str] | None = None) -> int:
    from skinlib import paths

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=Path, default=None,
                        help="folder of executed notebooks (default: <workspace>/outputs/default)")
    parser.add_argument("--only", nargs="*", default=[], metavar="NN", help="only these pages (NN, or 'report')")
    parser.add_argument("--width", type=int, default=1280, help="browser window width in px (default 1280)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium to drive")
    args = parser.parse_args(argv)
    outputs = (args.outputs or paths.outputs_dir() / "default").resolve()
    todo = pages(outputs, args.only)
    if not todo:
        print(f"nothing to look at in {outputs}: run `python run_all.py` first")
        return 1
    from playwright.sync_api import sync_playwright

    shots = outputs / "screenshots"
    shots.mkdir(exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        for name, source in todo:
            html = source if source.suffix == ".html" else to_html(source, Path(tmp) / f"{name}.html")
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            png = shots / f"{name}.png"
            page.screenshot(path=str(png), full_page=True)
            problems = page.evaluate(FIND_PROBLEMS, name == "report")
            height = page.evaluate("document.body.scrollHeight")
            print(f"{name}: {png.relative_to(outputs)} ({height} px tall)" + ("" if problems else ": nothing wrong found"))
            for problem in problems:
                print(f"    {problem}")
            failed += bool(problems)
        browser.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
