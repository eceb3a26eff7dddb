#!/usr/bin/env python
"""Store the notebooks as JupyterLab saves them and nbstripout keeps them, with only the reference outputs nbval checks.

    python run_all.py --only 01 02 --force && python tools/sync_notebooks.py
    python tools/sync_notebooks.py --stored 06 07   # restyle without re-running: keep the stored reference outputs

For each notebook in notebooks/, takes the executed copy from <workspace>/outputs/default/ and writes the source
back in the house form, the one `git status` sees after a notebook is opened, run and saved in JupyterLab with
the nbstripout filter of `make lab`:

* the metadata JupyterLab writes (kernel "Python 3 (ipykernel)", the kernel's language_info without the Python
  version, which the filter strips as it differs between machines), nbformat 4.5;
* checked cells carry the tag ``nbval-check-output`` (nbval) and ``keep_output: true`` (nbstripout) in their
  metadata instead of a visible ``# NBVAL_CHECK_OUTPUT`` comment, which is converted where found; they keep the
  text they print (stdout) as the reference output, without an execution count;
* every other output, execution count and stray metadata is removed by nbstripout itself, so the stored file is
  exactly what the filter makes of any run of the notebook.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib import paths  # noqa: E402
from skinlib.run.notebook_format import clean  # noqa: E402


#: parameters the runner sets itself: the run's name, and resume = False under --force (train again)
RUNNER_SET = ("run_name", "resume")


def default_run(outputs: Path, path: Path) -> Path | None:
    """For a notebook the default profile runs several times (``params/default/``), the executed copy of the run
    that nbval reproduces: every parameter it sets but :data:`RUNNER_SET` equal to the notebook's default."""
    from skinlib.run.plan import notebook_parameters

    defaults = {name: p.default for name, p in notebook_parameters(path).items()}
    for record in sorted(outputs.glob(f"{path.stem}--*.run.json")):
        info = json.loads(record.read_text())
        params = {k: v for k, v in info.get("params", {}).items() if k not in RUNNER_SET}
        if info.get("status") == "ok" and all(defaults.get(k, object()) == v for k, v in params.items()):
            return record.with_name(record.name[:-len(".run.json")] + ".ipynb")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", metavar="NN", help="only these notebooks (default: all)")
    parser.add_argument("--stored", action="store_true",
                        help="take the reference outputs from the notebook itself (already checked by nbval), not "
                             "from an executed copy: converts a notebook to the stored form without running it")
    args = parser.parse_args(argv)
    outputs = paths.outputs_dir() / "default"
    notebooks = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
                 if not args.only or any(p.name.startswith(k) for k in args.only)]
    for path in notebooks:
        executed_path = path if args.stored else outputs / path.name
        if not executed_path.is_file():        # a notebook run several times (`runs:`): its run on the defaults
            executed_path = default_run(outputs, path) or executed_path
        if not executed_path.is_file():
            print(f"{path.name}: no executed copy in {outputs}; run `python run_all.py --only {path.name[:2]}` first")
            return 1
        cleaned = clean(nbformat.read(path, as_version=4), nbformat.read(executed_path, as_version=4))
        nbformat.write(cleaned, path)
        print(f"{path.name}: " + ("stored form, reference outputs kept as they were" if args.stored
                                  else "reference outputs stored from the executed copy"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
