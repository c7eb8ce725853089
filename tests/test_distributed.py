"""Scale-out: MirroredStrategy equivalence, two-worker MultiWorkerMirrored on loopback,
and mixed precision."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from pretraining_helpers import build_trainer, random_features
from test_finetuning_kill_campaign import checkpoint_step as finetuning_checkpoint_step
from test_finetuning_kill_campaign import (  # noqa: F401  (fixture)
    finetune_command,
    logged_steps,
    subprocess_env,
    tiny_finetuning,
)
from test_run_pretraining import _checkpoint_step, _command, _scalars, corpus  # noqa: F401  (fixture)

from electra_tf.training import distribute
from electra_tf.training.trainer import accumulation_batches

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_ROOT = os.path.dirname(TESTS_DIR)


def _env(**extra):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([PROJECT_ROOT, TESTS_DIR]), **extra}


@pytest.mark.parametrize(
    "compiler,task",
    [
        ("xla", "pretraining"),
        ("graph", "pretraining"),
        ("graph_runner", "pretraining"),
        ("xla", "finetuning"),
        ("graph", "adversarial"),
    ],
)
def test_every_split_of_the_global_batch_gives_the_same_update(compiler, task):
    """1 device = 2 replicas = accumulation 1/2/4, with the default dropout 0.1."""
    result = subprocess.run(
        [sys.executable, os.path.join(TESTS_DIR, "mirrored_equivalence.py"), compiler, task],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["same_init"], report
    # Three steps at lr 1e-3 move weights by ~3e-3; a leaked replica id or
    # micro-batch index in a dropout mask gives gaps of the same order.
    assert report["max_weight_change"] > 1e-3, report
    for split, gap in report["max_weight_gap"].items():
        assert gap < 2e-3 * report["max_weight_change"], (split, report)
    losses = report["losses"]
    np.testing.assert_allclose(list(losses.values()), losses["one_device_x1"], rtol=1e-5)
    if compiler == "graph_runner":  # Grappler off: the same training as with it on
        assert report["max_weight_gap_grappler_on"] < 2e-3 * report["max_weight_change"], report
        np.testing.assert_allclose(report["grappler_on_loss"], losses["one_device_x1"], rtol=1e-5)


def test_graph_optimizer_is_turned_off_only_for_a_cpu_step_without_xla():
    strategy = tf.distribute.get_strategy()
    before = tf.config.optimizer.get_experimental_options()
    try:
        assert not distribute.configure_graph_optimizer(strategy, jit_compile=True)
        assert tf.config.optimizer.get_experimental_options() == before
        assert distribute.configure_graph_optimizer(strategy, jit_compile=False)
        assert tf.config.optimizer.get_experimental_options()["disable_meta_optimizer"]
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)}
        )


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(corpus, model_dir, *flags):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                _command(
                    corpus, model_dir, "--distribution_strategy=multi_worker_mirrored", *flags
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(TF_CONFIG=json.dumps(tf_config)),
            )
        )
    return processes


def test_two_workers_on_loopback_agree_and_only_the_chief_checkpoints(corpus, tmp_path):
    model_dir = tmp_path / "model"
    processes = _start_workers(
        corpus,
        model_dir,
        "--num_train_steps=10",
        "--iterations_per_loop=5",
        "--save_checkpoints_steps=5",
    )
    outputs = [p.communicate(timeout=600)[1] for p in processes]
    for process, stderr in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    fingerprints = [
        re.search(r"weights fingerprint \(sum of squares\): (\S+)", err).group(1) for err in outputs
    ]
    assert fingerprints[0] == fingerprints[1]
    assert "2 replica(s), 8 example(s) per replica" in outputs[0]
    assert _checkpoint_step(model_dir) == 10
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == ["discriminator", "train"]


def test_a_lost_worker_is_an_error_not_a_hang(corpus, tmp_path):
    model_dir = tmp_path / "model"
    processes = _start_workers(
        corpus,
        model_dir,
        "--num_train_steps=100000",
        "--iterations_per_loop=5",
        "--save_checkpoints_steps=5",
    )
    deadline = time.time() + 400
    while (_checkpoint_step(model_dir) or 0) < 5:
        assert all(p.poll() is None for p in processes) and time.time() < deadline
        time.sleep(0.5)
    processes[1].kill()
    processes[1].wait()
    try:
        _, stderr = processes[0].communicate(timeout=300)
    except subprocess.TimeoutExpired:
        processes[0].kill()
        pytest.fail("the chief hung after its peer died")
    assert processes[0].returncode != 0
    # The runner's message for an UnavailableError from a collective, not any TF log line.
    assert "lost contact with another worker" in stderr, stderr[-3000:]
    assert "Restart every worker with the same command" in stderr


def test_sigterm_on_one_worker_stops_both_at_the_same_step(corpus, tmp_path):
    model_dir = tmp_path / "model"
    processes = _start_workers(
        corpus,
        model_dir,
        "--num_train_steps=100000",
        "--iterations_per_loop=5",
        "--save_checkpoints_steps=1000",
    )
    try:
        deadline = time.time() + 600
        while not list((model_dir / "train").glob("events.out.tfevents.*")) or not _scalars(
            model_dir
        ):
            assert all(p.poll() is None for p in processes) and time.time() < deadline, (
                "training never logged"
            )
            time.sleep(0.5)
        # The non-chief: the chief, which writes model_dir, only learns of it from its peer.
        processes[1].send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=300)[1] for p in processes]
    except subprocess.TimeoutExpired:
        pytest.fail("a worker hung after its peer was sent SIGTERM")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, stderr in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    stopped = [
        int(re.search(r"Stopping at step (\d+) on request", err).group(1)) for err in outputs
    ]
    assert stopped[0] == stopped[1] and stopped[0] % 5 == 0, stopped
    assert _checkpoint_step(model_dir) == stopped[0]
    fingerprints = [
        re.search(r"weights fingerprint \(sum of squares\): (\S+)", err).group(1) for err in outputs
    ]
    assert fingerprints[0] == fingerprints[1]
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == ["discriminator", "train"]


def _losses(policy, steps=12):
    features = random_features(64, 32, seed=5)
    data = accumulation_batches(
        tf.data.Dataset.from_tensor_slices(features).batch(16, drop_remainder=True), 1
    )
    trainer = build_trainer(
        tf.distribute.get_strategy(),
        dropout=0.0,
        learning_rate=5e-4,
        dtype=policy,
        dynamic_loss_scale=policy == "mixed_float16",
    )
    iterator = iter(data.repeat())
    return [float(trainer.train(iterator, 1)["loss"]) for _ in range(steps)], trainer


def test_bfloat16_tracks_float32():
    reference, _ = _losses("float32")
    mixed, trainer = _losses("mixed_bfloat16")
    assert trainer.model.discriminator.layer_0.query.compute_dtype == "bfloat16"
    assert trainer.model.trainable_variables[0].dtype == "float32"
    np.testing.assert_allclose(mixed, reference, rtol=0.03)
    assert mixed[-1] < mixed[0]


def test_float16_with_loss_scaling_stays_finite():
    losses, trainer = _losses("mixed_float16")
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    # The first steps overflow at the initial scale 2**15 and are skipped, not applied.
    skipped = 12 - trainer.step
    assert 0 < skipped < 6
    assert float(trainer.loss_scale.value) == 2.0 ** (15 - skipped)


def test_tpu_strategy_needs_the_tpu_named():
    from electra_tf.training import distribute

    for tpu in (None, ""):
        with pytest.raises(ValueError, match="needs --tpu: 'local' on a TPU VM"):
            distribute.create_strategy("tpu", tpu)


def _start_finetuning_workers(tiny_finetuning, model_dir, log_dir):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        with open(log_dir / f"worker_{index}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    finetune_command(
                        tiny_finetuning, model_dir, "--distribution_strategy=multi_worker_mirrored"
                    ),
                    cwd=PROJECT_ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=subprocess_env(TF_CONFIG=json.dumps(tf_config)),
                )
            )
    return processes


def _wait_for_workers(processes, logs, what):
    try:
        for process in processes:
            process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a fine-tuning worker hung {what}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    texts = [log.read_text() for log in logs]
    for process, text in zip(processes, texts):
        assert process.returncode == 0, text[-3000:]
    return texts


def test_finetuning_sigterm_on_one_worker_stops_both_and_both_resume(tiny_finetuning, tmp_path):
    model_dir = tmp_path / "model"
    first_logs, second_logs = tmp_path / "first", tmp_path / "second"
    first_logs.mkdir()
    second_logs.mkdir()
    processes = _start_finetuning_workers(tiny_finetuning, model_dir, first_logs)
    logs = [first_logs / f"worker_{i}.log" for i in range(2)]
    deadline = time.time() + 300
    try:
        while max(logged_steps(logs[0].read_text()), default=0) < 2:
            assert all(p.poll() is None for p in processes), logs[0].read_text()[-3000:]
            assert time.time() < deadline, "fine-tuning never logged a step"
            time.sleep(0.05)
    except AssertionError:
        for process in processes:
            process.kill()
        raise
    # The non-chief: the chief, which writes model_dir, only learns of it from its peer.
    processes[1].send_signal(signal.SIGTERM)
    outputs = _wait_for_workers(processes, logs, "after its peer was sent SIGTERM")
    stopped = [
        int(re.search(r"Seed 0: stopping at step (\d+) on request", out).group(1))
        for out in outputs
    ]
    assert stopped[0] == stopped[1] > 0, stopped
    assert finetuning_checkpoint_step(model_dir / "seed_0") == stopped[0]
    assert not (model_dir / "results.json").exists()

    processes = _start_finetuning_workers(tiny_finetuning, model_dir, second_logs)
    logs = [second_logs / f"worker_{i}.log" for i in range(2)]
    outputs = _wait_for_workers(processes, logs, "resuming")
    for out in outputs:
        assert (
            f"Seed 0: resumed from {model_dir}/seed_0/ckpt-{stopped[0]} at step {stopped[0]}."
            in out
        ), out[-3000:]
    results = json.loads((model_dir / "results.json").read_text())
    assert results["steps"] > stopped[0]
    # Only the chief writes into model_dir; the other worker's scratch checkpoints are gone.
    assert sorted(p.name for p in (model_dir / "seed_0").iterdir() if p.is_dir()) == ["best"]


def test_finetuning_with_a_lost_worker_is_an_error_not_a_hang(tiny_finetuning, tmp_path):
    model_dir = tmp_path / "model"
    processes = _start_finetuning_workers(tiny_finetuning, model_dir, tmp_path)
    chief_log = tmp_path / "worker_0.log"
    try:
        deadline = time.time() + 300
        while max(logged_steps(chief_log.read_text()), default=0) < 2:
            assert all(p.poll() is None for p in processes), chief_log.read_text()[-3000:]
            assert time.time() < deadline, "fine-tuning never logged a step"
            time.sleep(0.05)
        processes[1].kill()
        processes[1].wait()
        processes[0].wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("the chief hung after its peer died")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    stderr = chief_log.read_text()
    assert processes[0].returncode == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("run_finetuning: stopped: Seed 0 stopped after step"), last
    assert "lost contact with another worker" in last and "Restart every worker" in last
    assert "Traceback" not in stderr
