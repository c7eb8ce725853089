"""Fine-tuning resumes like pre-training: a tiny chunking fine-tune killed (SIGKILL) at random
points, some while a checkpoint is being written, ends with the weights, dev scores and
predictions of an uninterrupted run; SIGTERM checkpoints and exits 0; finished seeds are not
trained again; a --model_dir holding anything else is refused unless --overwrite is given.
"""

import json
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SEQ = 32
# Words split into characters: 24 sentences give ~110 windows, ~13 steps an epoch at batch 8.
TRAIN_SENTENCES, DEV_SENTENCES, BATCH, EPOCHS = 24, 24, 8, 3
LOOP = 2
MIN_KILLS = 6
TIMEOUT_S = 600


def _vocab():
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,-'$%&")
    return special + characters + [f"##{c}" for c in characters]


@pytest.fixture(scope="module")
def tiny_finetuning(tmp_path_factory, shared_data):
    """(a randomly initialised tiny discriminator directory, a CoNLL-2000 chunking slice)."""
    from electra_tf.model.config import ElectraConfig
    from electra_tf.model.encoder import ElectraEncoder

    root = tmp_path_factory.mktemp("tiny_finetuning")
    vocab = _vocab()
    config = ElectraConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        embedding_size=16,
        max_position_embeddings=SEQ,
    )
    encoder = ElectraEncoder(config)
    encoder(encoder.dummy_inputs())
    discriminator = root / "discriminator"
    encoder.save_pretrained(str(discriminator))
    (discriminator / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    source = shared_data / "conll2000_chunking"
    for name, path, count in (
        ("train.txt", source / "train.txt", TRAIN_SENTENCES),
        ("dev.txt", source / "test.txt", DEV_SENTENCES),
    ):
        blocks = path.read_text(encoding="utf-8").strip("\n").split("\n\n")[:count]
        (root / name).write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return discriminator, root


def finetune_command(tiny_finetuning, model_dir, *extra):
    """run_finetuning on the tiny chunking task, dev scored at each epoch's end."""
    discriminator, data = tiny_finetuning
    return [
        sys.executable,
        "-m",
        "electra_tf.run_finetuning",
        "--task_name=chunk",
        f"--train_file={data / 'train.txt'}",
        f"--dev_file={data / 'dev.txt'}",
        f"--init_checkpoint={discriminator}",
        f"--model_dir={model_dir}",
        f"--max_seq_length={SEQ}",
        f"--train_batch_size={BATCH}",
        "--eval_batch_size=32",
        f"--num_train_epochs={EPOCHS}",
        "--learning_rate=1e-3",
        f"--iterations_per_loop={LOOP}",
        *extra,
    ]


def subprocess_env(**extra):
    """The environment of a runner started by a test: this worktree's code, CPU only."""
    tests_dir = str(PROJECT_ROOT / "tests")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), tests_dir]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "tensorflow",
        "CUDA_VISIBLE_DEVICES": "",
        **extra,
    }


def _start(command, log_path, **env):
    with open(log_path, "w") as log:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=subprocess_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def logged_steps(text, seed=0):
    """The steps a run's log says seed `seed` reached, in order."""
    return [int(s) for s in re.findall(rf"seed {seed} step (\d+)/\d+ \|", text)]


def checkpoint_step(seed_dir):
    """The step of the seed's latest training checkpoint, 0 for none."""
    latest = tf.train.latest_checkpoint(str(seed_dir))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _writes_in_progress(seed_dir):
    """TF writes a checkpoint into <prefix>_temp/ first, then merges it into place."""
    names = set()
    for directory in (seed_dir, seed_dir / "best"):
        if directory.is_dir():
            names |= {f"{directory.name}/{p}" for p in os.listdir(directory) if p.endswith("_temp")}
    return names


def _wait_until(condition, process, what):
    deadline = time.time() + TIMEOUT_S
    while not condition():
        if process.poll() is not None:
            return False
        assert time.time() < deadline, what
        time.sleep(0.001)
    return True


def _numeric_tensors(prefix):
    """Every number a checkpoint holds (weights, slots, step, RNG), by name; not the input
    position (a variant), the strings (object graph, dev history) nor the count of saves."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {
        name: reader.get_tensor(name)
        for name, dtype in reader.get_variable_to_dtype_map().items()
        if dtype not in (tf.variant, tf.string) and not name.startswith("save_counter/")
    }


def _scores(model_dir):
    """results.json without what differs between any two runs (paths, wall times)."""
    result = json.loads((model_dir / "results.json").read_text())
    [seed] = result["per_seed"]
    return {
        "scores": result["scores"],
        "steps": result["steps"],
        **{k: seed[k] for k in ("score", "best_step", "dev", "history", "steps")},
    }


def _max_gap(expected, actual):
    assert sorted(expected) == sorted(actual)
    return max(
        float(np.max(np.abs(expected[n].astype(np.float64) - actual[n].astype(np.float64))))
        for n in expected
    )


def test_killed_and_resumed_finetuning_ends_as_the_uninterrupted_run(
    tiny_finetuning, tmp_path, processes, record_property
):
    reference_dir = tmp_path / "reference"
    # The reference runs beside the campaign: they share no files.
    reference = _start(finetune_command(tiny_finetuning, reference_dir), tmp_path / "ref.log")
    processes.append(reference)

    model_dir = tmp_path / "killed"
    seed_dir = model_dir / "seed_0"
    rng = random.Random(21)
    kills, kills_during_write, resumes_verified, points = 0, 0, 0, []
    for attempt in range(4 * MIN_KILLS):
        log_path = tmp_path / f"attempt_{attempt}.log"
        resumed_from = checkpoint_step(seed_dir)
        process = _start(finetune_command(tiny_finetuning, model_dir), log_path)
        processes.append(process)
        ended = kills >= MIN_KILLS
        if not ended:
            target = resumed_from + rng.choice([2 * LOOP, 3 * LOOP])
            ended = not _wait_until(
                lambda log_path=log_path, target=target: (
                    max(logged_steps(log_path.read_text()), default=0) >= target
                ),
                process,
                f"attempt {attempt} did not reach step {target}",
            )
        if not ended:
            leftovers = _writes_in_progress(seed_dir)
            if kills % 2 == 0:
                _wait_until(
                    lambda leftovers=leftovers: _writes_in_progress(seed_dir) - leftovers,
                    process,
                    "no checkpoint write seen",
                )
            else:
                time.sleep(rng.uniform(0.0, 0.3))
            process.send_signal(signal.SIGKILL)
        returncode = process.wait(timeout=TIMEOUT_S)
        log = log_path.read_text()
        if attempt > 0:
            # Every restart resumed, from the step its predecessor had checkpointed.
            assert resumed_from > 0, log[-3000:]
            assert (
                f"Seed 0: resumed from {seed_dir}/ckpt-{resumed_from} at step {resumed_from}."
                in (log)
            ), log[-3000:]
            resumes_verified += 1
        if returncode != -signal.SIGKILL:
            assert returncode == 0, log[-3000:]
            break
        kills += 1
        kills_during_write += bool(_writes_in_progress(seed_dir) - leftovers)
        points.append(max(logged_steps(log), default=0))
    assert reference.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "ref.log").read_text()[-3000:]

    figures = {
        "kills": kills,
        "kill_points_last_logged_step": points,
        "kills_during_checkpoint_write": kills_during_write,
        "restarts": attempt,
        "resumes_verified": resumes_verified,
        "final_weight_max_abs_gap": _max_gap(
            _numeric_tensors(tf.train.latest_checkpoint(str(reference_dir / "seed_0"))),
            _numeric_tensors(tf.train.latest_checkpoint(str(seed_dir))),
        ),
        "best_weight_max_abs_gap": _max_gap(
            _numeric_tensors(reference_dir / "seed_0" / "best" / "model"),
            _numeric_tensors(seed_dir / "best" / "model"),
        ),
    }
    record_property("finetuning_kill_campaign", figures)
    print("finetuning kill campaign:", json.dumps(figures))
    assert kills >= MIN_KILLS and kills_during_write >= 1, figures
    assert resumes_verified == attempt == kills, figures
    assert figures["final_weight_max_abs_gap"] == 0.0, figures
    assert figures["best_weight_max_abs_gap"] == 0.0, figures
    assert checkpoint_step(seed_dir) == _scores(reference_dir)["steps"]
    assert _scores(model_dir) == _scores(reference_dir)
    assert (seed_dir / "dev_predictions.conll").read_bytes() == (
        reference_dir / "seed_0" / "dev_predictions.conll"
    ).read_bytes()


def test_sigterm_checkpoints_and_exits_0_and_the_same_command_resumes(tiny_finetuning, tmp_path):
    model_dir = tmp_path / "model"
    command = finetune_command(tiny_finetuning, model_dir, "--seeds=0,1")
    process = _start(command, tmp_path / "first.log")
    try:
        # Seed 0 has finished when seed 1 trains: the stop lands in seed 1.
        reached = _wait_until(
            lambda: (
                max(logged_steps((tmp_path / "first.log").read_text(), seed=1), default=0)
                >= 2 * LOOP
            ),
            process,
            "seed 1 never trained",
        )
        assert reached, (tmp_path / "first.log").read_text()[-3000:]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    first = (tmp_path / "first.log").read_text()
    stopped = int(re.search(r"Seed 1: stopping at step (\d+) on request", first).group(1))
    assert checkpoint_step(model_dir / "seed_1") == stopped > 0
    assert (model_dir / "seed_0" / "results.json").exists()
    assert not (model_dir / "results.json").exists()

    second = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Seed 0: finished before" in second.stderr
    assert logged_steps(second.stderr, seed=0) == []
    assert (
        f"Seed 1: resumed from {model_dir}/seed_1/ckpt-{stopped} at step {stopped}."
        in second.stderr
    ), second.stderr[-3000:]
    assert logged_steps(second.stderr, seed=1)[0] == stopped + LOOP
    results = json.loads((model_dir / "results.json").read_text())
    assert sorted(results["scores"]) == ["0", "1"]
    seed_0 = json.loads((model_dir / "seed_0" / "results.json").read_text())["result"]
    assert results["per_seed"][0] == seed_0


def _settings(tiny_finetuning, model_dir, **changes):
    import electra_tf

    discriminator, data = tiny_finetuning
    values = {
        "task_name": "chunk",
        "train_file": str(data / "train.txt"),
        "dev_file": str(data / "dev.txt"),
        "init_checkpoint": str(discriminator),
        "model_dir": str(model_dir),
        "max_seq_length": SEQ,
        "train_batch_size": BATCH,
        "eval_batch_size": 32,
        "iterations_per_loop": LOOP,
        "max_train_steps": LOOP,
    }
    return electra_tf.FinetuningSettings(**{**values, **changes})


def _checksums(directory):
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(pathlib.Path(directory).rglob("*"))
        if p.is_file()
    }


def test_a_model_dir_holding_anything_else_is_refused_unless_overwrite(tiny_finetuning, tmp_path):
    import electra_tf
    from electra_tf.files import OutputExistsError
    from electra_tf.finetuning.settings import SettingsError

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "notes.txt").write_text("the user's\n")
    with pytest.raises(OutputExistsError, match=r"--model_dir=.*notes\.txt.*--overwrite"):
        electra_tf.finetune(_settings(tiny_finetuning, model_dir))
    assert _checksums(model_dir) == {"notes.txt": b"the user's\n"}

    result = electra_tf.finetune(_settings(tiny_finetuning, model_dir, overwrite=True))
    assert result["steps"] == LOOP and (model_dir / "results.json").exists()
    assert (model_dir / "notes.txt").read_text() == "the user's\n"

    # The run is its own to resume: the same settings (without --overwrite) are accepted and
    # find every seed finished.
    before = _checksums(model_dir)
    again = electra_tf.finetune(_settings(tiny_finetuning, model_dir))
    assert again["per_seed"] == result["per_seed"]
    assert {k: v for k, v in _checksums(model_dir).items() if k.startswith("seed_0/")} == {
        k: v for k, v in before.items() if k.startswith("seed_0/")
    }

    # Other settings: refused, naming each setting that differs; nothing written.
    with pytest.raises(SettingsError) as refused:
        electra_tf.finetune(_settings(tiny_finetuning, model_dir, learning_rate=3e-4, seeds="0,1"))
    message = str(refused.value)
    assert "--model_dir:" in message and "--overwrite" in message
    assert "--learning_rate: 0.0001 in the saved run, 0.0003 now" in message
    assert "--seeds: [0] in the saved run, [0, 1] now" in message
    assert "--max_train_steps" not in message
    assert _checksums(model_dir).keys() == before.keys()


def test_the_vocab_copy_onto_itself_keeps_the_vocab(tiny_finetuning, tmp_path):
    import electra_tf

    model_dir = tmp_path / "model"
    electra_tf.finetune(_settings(tiny_finetuning, model_dir))
    vocab = model_dir / "vocab.txt"
    content = vocab.read_bytes()
    assert content == (tiny_finetuning[0] / "vocab.txt").read_bytes()
    # The run's own vocab as --vocab_file (natural when continuing from that folder).
    electra_tf.finetune(
        _settings(tiny_finetuning, model_dir, vocab_file=str(vocab), overwrite=True)
    )
    assert vocab.read_bytes() == content


def test_run_finetuning_refusal_is_one_line_naming_overwrite(tiny_finetuning, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "notes.txt").write_text("the user's\n")
    result = subprocess.run(
        finetune_command(tiny_finetuning, model_dir),
        cwd=PROJECT_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"run_finetuning: error: --model_dir={model_dir} is not empty"), last
    assert "--overwrite" in last and "Traceback" not in result.stderr
    assert _checksums(model_dir) == {"notes.txt": b"the user's\n"}
