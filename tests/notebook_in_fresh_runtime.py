"""The Colab TPU notebook as Colab runs it, as far as a CPU machine can: `make test-notebook`.

A fresh venv holds what a Colab TPU runtime holds (requirements-notebook-test.txt: no TensorFlow;
JAX with its own, newer libtpu) plus the kernel; the notebook's own install cell runs in it for
real, then every other cell on this CPU at tiny scale (ELECTRA_NOTEBOOK_SCALE=tiny). Not in
`make test`: the TPU wheels are minutes of downloads. Named outside test_*.py so the suite does
not collect it; `make test-notebook` names it.
"""

import json
import os
import pathlib
import subprocess

import nbformat
import pytest
from install_helpers import build_venv, missing_imports, write_conll

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = PROJECT_ROOT / "notebooks" / "electra_small_colab_tpu.ipynb"
TENSORFLOW_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-tpu"}


def _outputs(notebook) -> str:
    """All text the executed cells printed or returned."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.mark.timeout(3600)
def test_the_notebook_installs_one_tensorflow_and_runs_every_cell_on_cpu(tmp_path):
    python = build_venv(
        tmp_path / "colab_runtime", "-r", str(PROJECT_ROOT / "requirements-notebook-test.txt")
    )
    ner = tmp_path / "ner"
    ner.mkdir()
    write_conll(ner / "train.conll", repeats=4)
    write_conll(ner / "dev.conll", repeats=1)
    parameters = dict(
        REPO=str(PROJECT_ROOT), WORK_DIR=str(tmp_path / "work"), NER_DATA_DIR=str(ner)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS", "TF_", "PYTHON"))}
    env.update(
        PATH=f"{python.parent}{os.pathsep}{env['PATH']}",
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),  # only this venv's kernel
        ELECTRA_NOTEBOOK_SCALE="tiny",
    )
    executed = tmp_path / "executed.ipynb"
    run = subprocess.run(
        [
            str(python),
            str(PROJECT_ROOT / "tests" / "run_notebook.py"),
            str(NOTEBOOK),
            json.dumps(parameters),
            str(executed),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=3500,
    )
    assert run.returncode == 0, run.stderr[-6000:]

    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    versions = {
        p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed.stdout)
    }
    assert {n for n in versions if n in TENSORFLOW_DISTRIBUTIONS} == {"tensorflow-tpu"}
    assert versions["tensorflow-tpu"] == "2.20.0" and versions["libtpu"] == "0.0.14"
    missing = missing_imports(python, PROJECT_ROOT / "electra_tf")
    assert not missing, f"the install cell leaves these imports unsatisfied: {missing}"

    printed = _outputs(nbformat.read(executed, as_version=4))
    assert "TensorFlow build: tensorflow-tpu 2.20.0, libtpu 0.0.14" in printed
    assert "No TPU (" in printed and "Training on this runtime's CPU" in printed
    assert printed.count(" -> [") == 2, printed[-3000:]  # the two sentences, tagged
    assert (tmp_path / "work" / "export" / "ner" / "1" / "saved_model.pb").exists()
