"""Sweeps pre-training settings and records when replaced token detection takes off.

    python -m electra_tf.experiments.rtd_sweep --spec=docs/rtd_sweep/round1.json \
        --data_root=runs/kjv --output=docs/rtd_sweep/round1.jsonl --parallel=2

A spec is a JSON list of runs: {"name": ..., "data": <subfolder of --data_root
holding vocab.txt's TFRecords, e.g. "tfr128">, "flags": ["--flag=value", ...]}.
Each run is `electra_tf.pretrain` on the settings of --base_flagfile plus its
flags, with --threads_per_run CPU threads, so several runs share a machine
without oversubscribing it: with --parallel=1 in this process, else each in a
fresh worker process (TF's thread pools and Keras' global seed and dtype
policy are per process). Every logged window (one per
--iterations_per_loop steps) becomes a JSONL line: run name, step, wall-clock
seconds since the run started, and the pre-training metrics (disc_auc,
masked_lm_accuracy, ...). Finished runs (their line with "final": true is in
--output) are skipped on a re-run.
"""

import concurrent.futures
import json
import multiprocessing
import os
import pathlib
import platform
import time

import tensorflow as tf
from absl import app, flags, logging

from electra_tf.filenames import TRAIN_SUMMARY_DIR
from electra_tf.pretraining import curves, runner
from electra_tf.pretraining.settings import PretrainingSettings

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags, defined when it runs (importing this module defines none: its
    names, --output among them, would clash with other commands' in one process)."""
    flags.DEFINE_string("spec", None, "JSON list of runs: name, data subfolder, flags.")
    flags.DEFINE_string(
        "data_root", None, "Folder with vocab.txt and one TFRecord folder per data."
    )
    flags.DEFINE_string("output", None, "JSONL file the windows are appended to.")
    flags.DEFINE_string("runs_dir", "runs/rtd_sweep", "Model directories of the runs.")
    flags.DEFINE_string(
        "base_flagfile",
        str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "demo.flags"),
        "Flags every run starts from.",
    )
    flags.DEFINE_integer("parallel", 1, "Runs at a time.")
    flags.DEFINE_integer("threads_per_run", 1, "CPU threads of each run.")
    flags.DEFINE_list("only", [], "Run only these names from the spec.")
    flags.DEFINE_bool(
        "collect_only",
        False,
        "Record the windows already logged in --runs_dir (runs stopped early) without training.",
    )


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def finished_runs(output):
    if not os.path.exists(output):
        return set()
    with open(output) as f:
        return {row["run"] for row in map(json.loads, f) if row.get("final")}


def run_settings(run):
    """The run's PretrainingSettings: --base_flagfile, its data, then its own flags."""
    data_dir = os.path.join(FLAGS.data_root, run["data"])
    return PretrainingSettings.from_flags(
        [
            f"--flagfile={FLAGS.base_flagfile}",
            f"--pretrain_tfrecords={data_dir}/pretrain_data.tfrecord*",
            f"--vocab_file={FLAGS.data_root}/{run.get('vocab', 'vocab.txt')}",
            f"--model_dir={os.path.join(FLAGS.runs_dir, run['name'])}",
            *run["flags"],
        ]
    )


def start_process(threads):
    """Before this process's first TF op: --threads_per_run threads, progress lines logged."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    logging.set_verbosity(logging.INFO)


def train(settings):
    """Pre-trains one run, its log lines appended to <model_dir>/log.txt; None or the error."""
    os.makedirs(settings.model_dir, exist_ok=True)
    with runner.log_lines_to(os.path.join(settings.model_dir, "log.txt")):
        try:
            runner.pretrain(settings)
        except Exception as e:  # noqa: BLE001  (recorded in the run's final row; the sweep goes on)
            logging.error("%s: %s: %s", settings.model_dir, type(e).__name__, e)
            return f"{type(e).__name__}: {e}"
    return None


def run_one(run, output, pool=None):
    settings = run_settings(run)
    model_dir = settings.model_dir
    start = time.time()
    error = None
    if not FLAGS.collect_only:
        if pool is None:
            error = train(settings)
        else:
            error = pool.submit(train, settings).result()
    windows = curves.read_windows(os.path.join(model_dir, TRAIN_SUMMARY_DIR))
    first_wall = windows[0]["wall_time"] if windows else start
    rows = [
        {
            "run": run["name"],
            "seconds": round(w["wall_time"] - first_wall, 1),
            **{k: v for k, v in w.items() if k != "wall_time"},
        }
        for w in windows
    ]
    rows.append(
        {
            "run": run["name"],
            "final": True,
            "error": error,
            "flags": run["flags"],
            "data": run["data"],
            "wall_seconds": round(time.time() - start, 1),
            "threads": FLAGS.threads_per_run,
            "parallel": FLAGS.parallel,
            "cpu": cpu_model(),
        }
    )
    with open(output, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    last = rows[-2] if len(rows) > 1 else {}
    logging.info(
        "%s: error %s, step %s, disc_auc %s, masked_lm_accuracy %s",
        run["name"],
        error,
        last.get("step"),
        last.get("disc_auc"),
        last.get("masked_lm_accuracy"),
    )


def main(argv):
    del argv
    for name in ("spec", "data_root", "output"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")
    with open(FLAGS.spec) as f:
        runs = json.load(f)
    done = finished_runs(FLAGS.output)
    todo = [
        r for r in runs if r["name"] not in done and (not FLAGS.only or r["name"] in FLAGS.only)
    ]
    logging.info("%d run(s) to do, %d already in %s", len(todo), len(done), FLAGS.output)
    if FLAGS.parallel == 1 or FLAGS.collect_only:
        start_process(FLAGS.threads_per_run)
        for run in todo:
            run_one(run, FLAGS.output)
        return
    # Threads here wait on worker processes, one fresh process per run; each thread
    # appends its run's rows to --output when the run is done.
    os.environ.update(OMP_NUM_THREADS=str(FLAGS.threads_per_run), TF_CPP_MIN_LOG_LEVEL="2")
    workers = concurrent.futures.ProcessPoolExecutor(
        FLAGS.parallel,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_process,
        initargs=(FLAGS.threads_per_run,),
        max_tasks_per_child=1,
    )
    with workers, concurrent.futures.ThreadPoolExecutor(FLAGS.parallel) as waiters:
        for future in [waiters.submit(run_one, run, FLAGS.output, workers) for run in todo]:
            future.result()


if __name__ == "__main__":
    define_flags()
    app.run(main)
