"""Runs a notebook with nbclient in this interpreter's own kernel; the test's parameters go in a
cell inserted after the notebook's parameters cell (its first code cell), every other cell runs
as written.

Usage: python run_notebook.py NOTEBOOK PARAMETERS_JSON EXECUTED_NOTEBOOK
The executed notebook (outputs included) is written even when a cell fails.
"""

import json
import sys

import nbformat
from nbclient import NotebookClient


def main(notebook_path, parameters_json, executed_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    parameters = json.loads(parameters_json)
    first_code = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
    test_cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    notebook.cells.insert(first_code + 1, test_cell)
    client = NotebookClient(notebook, timeout=3600, kernel_name="python3")
    try:
        client.execute()
    finally:
        nbformat.write(notebook, executed_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
