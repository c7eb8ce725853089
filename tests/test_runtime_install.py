"""requirements.txt alone is a complete runtime: one command of each kind runs in a venv built
from it and nothing else (no test, oracle or experiment pins), at tiny scale.

The venv is built once per requirements.txt content and kept in pytest's cache folder
(.pytest_cache/d/runtime-venvs/<hash>), so a clean clone builds it and later runs reuse it.
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess

import pytest
from install_helpers import build_venv, missing_imports, write_conll

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
TINY_MODEL = [
    "--model_size=small",
    '--model_hparam_overrides={"hidden_size": 32, "num_hidden_layers": 1, '
    '"num_attention_heads": 2, "intermediate_size": 64}',
    "--embedding_size=32",
    "--max_seq_length=32",
]


@pytest.fixture(scope="session")
def runtime_python(request) -> pathlib.Path:
    """The python of a venv holding requirements.txt only, built once per its content."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    venv = request.config.cache.mkdir("runtime-venvs") / digest
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        # Built beside its final name and renamed, so an interrupted build is never reused.
        partial = venv.with_name(f"{digest}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        build_venv(partial, "-r", str(REQUIREMENTS))
        (partial / ".installed").touch()
        shutil.rmtree(venv, ignore_errors=True)
        partial.rename(venv)
        # Venvs of earlier requirements.txt contents (3+ GB each) go once this one is in place.
        for stale in venv.parent.iterdir():
            if stale != venv and (stale / ".installed").exists():
                shutil.rmtree(stale)
    return python


def _run(python, *args, stdin=None):
    env = dict(
        os.environ,
        PYTHONPATH=str(PROJECT_ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
    )
    env.pop("KERAS_BACKEND", None)  # the package sets it itself, as for a user
    proc = subprocess.run(
        [str(python), *args],
        cwd=PROJECT_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{args[:2]} exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def test_every_import_of_the_package_resolves_in_the_venv(runtime_python):
    missing = missing_imports(runtime_python, PROJECT_ROOT / "electra_tf")
    assert not missing, (
        f"imported under electra_tf/ but not installed by requirements.txt: {missing}"
    )


def test_the_venv_holds_no_test_or_oracle_package(runtime_python):
    listed = _run(runtime_python, "-m", "pip", "list", "--format=json").stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    # matplotlib and seqeval do come in, as tf-models-official's own dependencies.
    assert not names & {"pytest", "hypothesis", "torch", "transformers"}
    assert "safetensors" in names


def test_one_command_of_each_kind_runs_from_requirements_txt_alone(runtime_python, tmp_path):
    corpus = tmp_path / "corpus"
    _run(
        runtime_python,
        "-c",
        "import sys, pathlib; from electra_tf.data import corpora; "
        "chapters = corpora.kjv_chapters()[:40]; "
        "pathlib.Path(sys.argv[1]).mkdir(); "
        "pathlib.Path(sys.argv[1], 'kjv.txt').write_text("
        "'\\n\\n'.join('\\n'.join(v) for _, v in chapters) + '\\n')",
        str(corpus),
    )
    vocab = tmp_path / "vocab.txt"
    _run(
        runtime_python,
        "-m",
        "electra_tf.build_vocab",
        f"--input_files={corpus}/*.txt",
        f"--vocab_file={vocab}",
        "--vocab_size=800",
    )
    _run(
        runtime_python,
        "-m",
        "electra_tf.build_pretraining_dataset",
        f"--corpus_dir={corpus}",
        f"--vocab_file={vocab}",
        f"--output_dir={tmp_path / 'records'}",
        "--max_seq_length=32",
        "--num_out_files=1",
    )
    pretrained = tmp_path / "pretrained"
    _run(
        runtime_python,
        "-m",
        "electra_tf.run_pretraining",
        *TINY_MODEL,
        f"--pretrain_tfrecords={tmp_path / 'records'}/pretrain_data.tfrecord*",
        f"--vocab_file={vocab}",
        f"--model_dir={pretrained}",
        "--train_batch_size=8",
        "--num_train_steps=3",
        "--iterations_per_loop=3",
        "--num_warmup_steps=1",
    )
    discriminator = pretrained / "discriminator"
    ner_data = tmp_path / "ner"
    ner_data.mkdir()
    write_conll(ner_data / "train.conll", repeats=4)
    write_conll(ner_data / "dev.conll", repeats=1)
    _run(
        runtime_python,
        "-m",
        "electra_tf.run_finetuning",
        "--task_name=ner",
        f"--data_dir={ner_data}",
        f"--init_checkpoint={discriminator}",
        f"--model_dir={tmp_path / 'ner_model'}",
        "--max_seq_length=32",
        "--train_batch_size=8",
        "--num_train_epochs=1",
        "--seeds=0",
    )
    export_dir = tmp_path / "export" / "ner"
    _run(
        runtime_python,
        "-m",
        "electra_tf.export_saved_model",
        f"--checkpoint={tmp_path / 'ner_model'}",
        f"--export_dir={export_dir}",
    )
    predicted = _run(
        runtime_python,
        "-m",
        "electra_tf.predict",
        f"--model={export_dir}",
        stdin="John Smith lives in Paris.\nMary works for Acme Corp.\n",
    )
    assert len(predicted.stdout.strip().splitlines()) == 2, predicted.stdout
    hf_dir = tmp_path / "hf"
    _run(
        runtime_python,
        "-m",
        "electra_tf.convert",
        "to-hf",
        f"--encoder_dir={discriminator}",
        f"--output_dir={hf_dir}",
    )
    assert (hf_dir / "model.safetensors").exists()
    _run(
        runtime_python,
        "-m",
        "electra_tf.convert",
        "from-hf",
        f"--hf_dir={hf_dir}",
        f"--output_dir={tmp_path / 'from_hf'}",
    )
    assert (tmp_path / "from_hf" / "config.json").exists()
