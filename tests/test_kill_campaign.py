"""Exact resume under SIGKILL: a tiny pre-training run killed at random points, some of
them while a checkpoint is being written, ends with the weights of an uninterrupted run.

Also: a damaged latest checkpoint stops the runner with a message naming it and saying
how to recover, and nothing is deleted.
"""

import os
import pathlib
import random
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf
from test_run_pretraining import _checkpoint_step, _command, corpus  # noqa: F401  (fixture)

# Each attempt trains at most ~10 steps before its kill, so 8 kills end before step 72.
NUM_STEPS, SAVE_EVERY = 72, 4
FLAGS = [
    f"--num_train_steps={NUM_STEPS}",
    "--iterations_per_loop=2",
    f"--save_checkpoints_steps={SAVE_EVERY}",
    "--keep_checkpoint_max=3",
]
MIN_KILLS = 8
START_TIMEOUT_S = 600


def _start(corpus, model_dir, log_path, *extra):
    log = open(log_path, "w")
    process = subprocess.Popen(
        _command(corpus, model_dir, *FLAGS, *extra), stdout=subprocess.DEVNULL, stderr=log
    )
    log.close()
    return process


def _temp_dirs(model_dir):
    """Saves in progress (or cut short): TF writes ckpt-N_temp/, then merges it into ckpt-N.*."""
    try:
        return {name for name in os.listdir(model_dir) if name.endswith("_temp")}
    except FileNotFoundError:
        return set()


def _logged_steps(log_path):
    return [int(s) for s in re.findall(r"step (\d+)/\d+ \(", log_path.read_text())]


def _wait_for_logged_step(process, log_path, step):
    """Waits until the run logs `step` (loops log before they save); False if it ended."""
    deadline = time.time() + START_TIMEOUT_S
    while max(_logged_steps(log_path), default=0) < step:
        if process.poll() is not None:
            return False
        assert time.time() < deadline, f"the run did not reach step {step}"
        time.sleep(0.01)
    return True


def _kill_during_write(process, model_dir, leftovers):
    """SIGKILL as soon as a new checkpoint write is seen (polled every millisecond)."""
    deadline = time.time() + START_TIMEOUT_S
    while not _temp_dirs(model_dir) - leftovers:
        if process.poll() is not None:
            return
        assert time.time() < deadline, "no checkpoint write seen"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)


def _assert_resumed(log_path, model_dir, resumed_from):
    """Checks an attempt started where the checkpoint it found left off; True if it resumed."""
    log = log_path.read_text()
    starts = re.findall(r"Training \S+ from step (\d+) to", log)
    assert starts and int(starts[0]) == resumed_from, (resumed_from, log[-3000:])
    if not resumed_from:
        return False
    assert f"Resumed from {model_dir}/ckpt-{resumed_from} at step {resumed_from}" in log
    return True


def _weights(model_dir, step):
    reader = tf.train.load_checkpoint(f"{model_dir}/ckpt-{step}")
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith(("model/", "optimizer/", "rng/"))
    }


def _assert_intact(path):
    """Every tensor of the checkpoint reads back (checksums included); the input
    position (a variant, which the reader cannot return) is read by the next restart."""
    reader = tf.train.load_checkpoint(path)
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype != tf.variant:
            reader.get_tensor(name)


def test_killed_and_resumed_run_ends_with_the_uninterrupted_weights(
    corpus, tmp_path, processes, record_property
):
    reference_dir = tmp_path / "reference"
    reference = _start(corpus, reference_dir, tmp_path / "reference.log")
    processes.append(reference)
    assert reference.wait(timeout=900) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    model_dir = tmp_path / "killed"
    rng = random.Random(13)
    kills, kills_during_write, max_steps_lost = 0, 0, 0
    restarts_from_a_checkpoint, resumes_verified = 0, 0
    for attempt in range(4 * MIN_KILLS):
        log_path = tmp_path / f"attempt_{attempt}.log"
        resumed_from = _checkpoint_step(model_dir) or 0
        restarts_from_a_checkpoint += bool(resumed_from)
        process = _start(corpus, model_dir, log_path)
        processes.append(process)
        if kills >= MIN_KILLS:
            assert process.wait(timeout=600) == 0, log_path.read_text()[-3000:]
            resumes_verified += _assert_resumed(log_path, model_dir, resumed_from)
            break
        # A random point one to one and a half save intervals past the resumed step:
        # every attempt can make progress, and the run outlasts the kills.
        target = resumed_from + rng.choice([SAVE_EVERY, SAVE_EVERY + 2])
        if not _wait_for_logged_step(process, log_path, target):
            assert process.returncode == 0, log_path.read_text()[-3000:]
            resumes_verified += _assert_resumed(log_path, model_dir, resumed_from)
            break
        leftovers = _temp_dirs(model_dir)
        if kills % 2 == 0:
            _kill_during_write(process, model_dir, leftovers)
        else:
            time.sleep(rng.uniform(0.0, 0.3))
            process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode != -signal.SIGKILL:
            assert process.returncode == 0, log_path.read_text()[-3000:]
            resumes_verified += _assert_resumed(log_path, model_dir, resumed_from)
            break
        kills += 1
        # A temp dir the kill left behind: that save was cut short.
        kills_during_write += bool(_temp_dirs(model_dir) - leftovers)
        resumes_verified += _assert_resumed(log_path, model_dir, resumed_from)
        reached = max(_logged_steps(log_path))
        latest = tf.train.latest_checkpoint(str(model_dir))
        if latest:
            _assert_intact(latest)
        max_steps_lost = max(max_steps_lost, reached - (_checkpoint_step(model_dir) or 0))

    figures = {
        "kills": kills,
        "kills_during_checkpoint_write": kills_during_write,
        "restarts": kills,
        "restarts_from_a_checkpoint": restarts_from_a_checkpoint,
        "resumes_verified": resumes_verified,
        "last_attempt_resumed_from": resumed_from,
        "max_steps_lost": max_steps_lost,
    }
    expected, resumed = _weights(reference_dir, NUM_STEPS), _weights(model_dir, NUM_STEPS)
    assert sorted(expected) == sorted(resumed)
    figures["final_weight_max_abs_gap"] = max(
        float(np.max(np.abs(expected[name] - resumed[name]))) for name in expected
    )
    record_property("kill_campaign", figures)
    assert kills >= MIN_KILLS, figures
    # Every restart with a checkpoint beside it resumed from it, the last one included: a
    # run silently starting over from step 0 fails here.
    assert resumes_verified == restarts_from_a_checkpoint, figures
    assert resumed_from > 0, figures
    assert kills_during_write >= 1, figures
    assert max_steps_lost <= SAVE_EVERY, figures
    assert figures["final_weight_max_abs_gap"] == 0.0, figures


def _files(directory):
    return sorted(str(p.relative_to(directory)) for p in pathlib.Path(directory).rglob("*"))


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_checkpoint_is_named_and_nothing_is_deleted(corpus, tmp_path, damage):
    model_dir = tmp_path / "model"
    first = subprocess.run(
        _command(
            corpus,
            model_dir,
            "--num_train_steps=8",
            "--iterations_per_loop=4",
            "--save_checkpoints_steps=4",
            "--keep_checkpoint_max=0",
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    if damage == "truncated":
        damaged = next(model_dir.glob("ckpt-8.data-*"))
        damaged.write_bytes(damaged.read_bytes()[:100])
    else:
        damaged = model_dir / "ckpt-8.index"
        damaged.unlink()
    before = _files(model_dir)

    result = subprocess.run(
        _command(corpus, model_dir, "--num_train_steps=12"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert f"Cannot resume from the latest checkpoint {model_dir}/ckpt-8" in result.stderr, (
        result.stderr[-3000:]
    )
    assert "ckpt-N" in result.stderr and "new --model_dir" in result.stderr
    if damage == "truncated":
        assert str(damaged) in result.stderr, result.stderr[-3000:]
    assert _files(model_dir) == before
