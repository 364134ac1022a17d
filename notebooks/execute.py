"""Run the notebooks top to bottom and store their outputs in them: ``make notebooks``.

Each notebook runs in a fresh kernel of this interpreter (a kernelspec made for the run, so the venv that
runs this script is the one tested), with ``notebooks/`` as its working folder: figures and summaries go
to ``notebooks/outputs/`` (ignored by git). Its inputs come from the environment, as each notebook's
first cell documents (``make notebooks`` passes ``LPNET_OFFICIAL_DIR`` when the official samples are
there). Outputs are stored without timings, and every code cell records the SHA-256 of its source in
``metadata.lpnet.source_sha256``: ``tests/test_notebooks.py`` fails when a cell was edited after its
outputs were made, so the figures a code host shows are those of the code beside them.

    python notebooks/execute.py [NAME.ipynb ...]     # default: every notebook
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import nbclient
import nbformat

from lpnet.files import write_text

NOTEBOOK_DIR = Path(__file__).resolve().parent
NOTEBOOKS = ("01_pyramid.ipynb", "02_results.ipynb")
KERNEL = "lpnet-notebooks"
CELL_TIMEOUT = 600  # seconds per cell; the slowest (02's tiny sweep) takes about a minute on 2 cores
# What a stored notebook names as its kernel: the usual one of an environment where lpnet is installed.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def install_kernel(folder: Path) -> dict[str, str]:
    """A kernelspec in ``folder`` that runs this very interpreter; returns the environment variables that
    make Jupyter find it before any user-installed one (and keep IPython's files in ``folder``)."""
    spec_dir = folder / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lpnet notebooks",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    # The kernel starts in another folder: a relative PYTHONPATH (``PYTHONPATH=src``) must become absolute.
    paths = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {
        "JUPYTER_PATH": str(folder / "jupyter"),
        "IPYTHONDIR": str(folder / "ipython"),
        "PYTHONPATH": os.pathsep.join(paths),
    }


def source_sha256(cell: nbformat.NotebookNode) -> str:
    """The SHA-256 of a cell's source: what its stored outputs were made from."""
    return hashlib.sha256(cell.source.encode("utf-8")).hexdigest()


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` top to bottom in ``workdir`` with the :data:`KERNEL` kernel (see
    :func:`install_kernel`); nbclient raises ``CellExecutionError`` on any error.

    Returns:
        The notebook with its outputs, each code cell stamped with :func:`source_sha256`, and the usual
        kernelspec (not this run's).
    """
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata["lpnet"] = {"source_sha256": source_sha256(cell)}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def main(names: list[str]) -> None:
    official = os.environ.get("LPNET_OFFICIAL_DIR")
    if official and not Path(official).is_dir():
        print(f"LPNET_OFFICIAL_DIR={official} is not a folder: the notebooks use synthetic rain")
        del os.environ["LPNET_OFFICIAL_DIR"]
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update(install_kernel(Path(folder)))
        for name in names or NOTEBOOKS:
            path = NOTEBOOK_DIR / name
            print(f"running {path.relative_to(NOTEBOOK_DIR.parent)} ...", flush=True)
            nb = execute(path, NOTEBOOK_DIR)
            nbformat.validate(nb)
            write_text(path, nbformat.writes(nb) + "\n")  # atomic: a failed run leaves the notebook as it was


if __name__ == "__main__":
    main(sys.argv[1:])
