"""Sweeps pre-training settings and records when replaced token detection takes off.

    python -m electra_tf.experiments.rtd_sweep --spec=docs/rtd_sweep/round1.json \
        --data_root=runs/kjv --output=docs/rtd_sweep/round1.jsonl --parallel=2

A spec is a JSON list of runs: {"name": ..., "data": <subfolder of --data_root
holding vocab.txt's TFRecords, e.g. "tfr128">, "flags": ["--flag=value", ...]}.
Each run is the real CLI (`python -m electra_tf.run_pretraining`) on
--base_flagfile plus its flags, with --threads_per_run CPU threads, so several
runs share a machine without oversubscribing it. Every logged window (one per
--iterations_per_loop steps) becomes a JSONL line: run name, step, wall-clock
seconds since the run started, and the pre-training metrics (disc_auc,
masked_lm_accuracy, ...). Finished runs (their line with "final": true is in
--output) are skipped on a re-run.
"""

import concurrent.futures
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from absl import app, flags, logging

from electra_tf.pretraining import curves

FLAGS = flags.FLAGS
flags.DEFINE_string("spec", None, "JSON list of runs: name, data subfolder, flags.")
flags.DEFINE_string("data_root", None, "Folder with vocab.txt and one TFRecord folder per data.")
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


def run_one(run, output):
    model_dir = os.path.join(FLAGS.runs_dir, run["name"])
    data_dir = os.path.join(FLAGS.data_root, run["data"])
    command = [
        sys.executable,
        "-m",
        "electra_tf.run_pretraining",
        f"--flagfile={FLAGS.base_flagfile}",
        f"--pretrain_tfrecords={data_dir}/pretrain_data.tfrecord*",
        f"--vocab_file={FLAGS.data_root}/{run.get('vocab', 'vocab.txt')}",
        f"--model_dir={model_dir}",
        *run["flags"],
    ]
    threads = str(FLAGS.threads_per_run)
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": threads,
    }
    os.makedirs(model_dir, exist_ok=True)
    start = time.time()
    returncode = None
    if not FLAGS.collect_only:
        with open(os.path.join(model_dir, "log.txt"), "a") as log:
            returncode = subprocess.run(
                command, env=env, stdout=log, stderr=subprocess.STDOUT
            ).returncode
    windows = curves.read_windows(os.path.join(model_dir, "train"))
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
            "returncode": returncode,
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
        "%s: exit %s, step %s, disc_auc %s, masked_lm_accuracy %s",
        run["name"],
        returncode,
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
    with concurrent.futures.ThreadPoolExecutor(FLAGS.parallel) as pool:
        for future in [pool.submit(run_one, run, FLAGS.output) for run in todo]:
            future.result()


if __name__ == "__main__":
    app.run(main)
