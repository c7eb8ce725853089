"""Fast checks of the Colab TPU notebook's source (in `make test`).

The notebook run itself, its own install cell in a fresh venv that holds what a Colab TPU runtime
holds and then every other cell on CPU, is tests/notebook_in_fresh_runtime.py (`make
test-notebook`: minutes of downloads).
"""

import ast
import json
import pathlib
import re

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = PROJECT_ROOT / "notebooks" / "electra_small_colab_tpu.ipynb"
# Modules that load TensorFlow (and with it libtpu) when imported.
LOADS_TENSORFLOW = {"tensorflow", "tensorflow_text", "keras", "electra_tf", "official"}


def code_cells() -> list[str]:
    """The notebook's code cells' sources, in order."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def install_cell_index(cells) -> int:
    return next(i for i, source in enumerate(cells) if "TENSORFLOW_BUILD = [" in source)


def imported_modules(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_code_cell_parses():
    for index, source in enumerate(code_cells()):
        ast.parse(source, f"code cell {index}")


def test_nothing_loads_tensorflow_before_the_install_cell():
    cells = code_cells()
    before = cells[: install_cell_index(cells)]
    assert before, "the install cell comes after the parameters and the checkout"
    for index, source in enumerate(before):
        loaded = imported_modules(ast.parse(source)) & LOADS_TENSORFLOW
        assert not loaded, f"code cell {index} imports {loaded} before the install"


def test_the_tpu_check_imports_tensorflow_inside_its_try():
    cells = code_cells()
    source = next(s for s in cells if "TPUClusterResolver(tpu='local')" in s)
    tries = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Try)]
    guarded = set().union(*(imported_modules(ast.Module(body=t.body)) for t in tries))
    assert "tensorflow" in guarded, "a failed install must end in the cell's one-line message"


def test_the_notebook_and_make_tpu_venv_install_the_same_tensorflow_build():
    install = code_cells()[install_cell_index(code_cells())]
    notebook_build = re.search(r"TENSORFLOW_BUILD = \[(.*?)\]", install).group(1)
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    make_build = re.search(r"^TENSORFLOW_TPU := (.*)$", makefile, re.MULTILINE).group(1)
    assert re.findall(r"'([^']+)'", notebook_build) == make_build.split()
    assert "tensorflow-tpu==2.20.0" in make_build.split()
