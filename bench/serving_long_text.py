"""Time and peak memory of the exported token classifier on one long text, in a fresh process.

    python bench/serving_long_text.py [--sizes_mb=0.1,0.2,0.4] [--reject_mb=10] [--threads=1]
        [--max_rss_gb=12] [--json_out=bench/results/serving_long_text.jsonl]

The model is the one of issue 21's table: a 2-layer token classifier, hidden 128, 2 heads,
FFN 512, random weights, bench/serving_throughput.py's 30,522-token WordPiece vocabulary and
WikiANN's IOB2 labels, exported by `export_token_classifier` (max_seq_length 128). One text per
size: WikiANN English dev sentences joined by spaces up to the size in bytes (about 5 bytes a
word).

Each size runs in its own child process that loads the SavedModel (tensorflow only; no
electra_tf import), calls `serving_default` once on a one-word text (tracing, warm-up), then
once on the long text. Reported: the call's wall time, the child's RSS after warm-up and its
peak RSS (ru_maxrss from wait4, which also holds when the parent kills the child at
--max_rss_gb to protect a shared machine). With --reject_mb the last child sends a text of
that many bytes and times the InvalidArgumentError the export's limit gives. --limits sets the
export's RequestLimits (its defaults are below the sizes measured here).
"""

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from pretrain_throughput import cpu_peak, load_average  # noqa: E402
from serving_throughput import DEFAULT_DATA, LABELS, load_texts, trained_vocab  # noqa: E402

MODEL = dict(
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=512,
    embedding_size=128,
)
MAX_SEQ_LENGTH = 128


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes_mb", default="0.1,0.2,0.4", help="text sizes in MB (10^6 bytes)")
    parser.add_argument("--reject_mb", type=float, default=0.0, help="also time this rejection")
    parser.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads")
    parser.add_argument("--max_rss_gb", type=float, default=12.0, help="kill a child above this")
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA))
    parser.add_argument(
        "--limits",
        default='{"max_text_bytes": 1000000, "max_request_bytes": 1000000}',
        help="JSON: the export's RequestLimits (the sizes measured exceed the defaults)",
    )
    parser.add_argument(
        "--work_dir", default=os.path.join(tempfile.gettempdir(), "electra_serving_bench")
    )
    parser.add_argument("--json_out", help="append the JSON lines to this file")
    parser.add_argument("--child", choices=("export", "call"), help=argparse.SUPPRESS)
    parser.add_argument("--model_path", help=argparse.SUPPRESS)
    parser.add_argument("--text_file", help=argparse.SUPPRESS)
    parser.add_argument("--expect_rejection", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _emit(obj):
    sys.__stdout__.write("@@" + json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def _rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def child_export(args):
    """Writes the bench model's SavedModel to --model_path (a version folder is created)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from electra_tf.data import tokenization  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.models import ElectraForTokenClassification  # pylint: disable=import-outside-toplevel
    from electra_tf.model.config import ElectraConfig  # pylint: disable=import-outside-toplevel
    from electra_tf.serving import export  # pylint: disable=import-outside-toplevel
    from electra_tf.serving.limits import RequestLimits  # pylint: disable=import-outside-toplevel

    vocab = tokenization.load_vocab(trained_vocab(args.work_dir))
    config = ElectraConfig(vocab_size=len(vocab), max_position_embeddings=512, **MODEL)
    model = ElectraForTokenClassification(config, len(LABELS))
    model.build()
    dense = model.task_specific.dense
    dense.kernel.assign(
        tf.random.stateless_normal(dense.kernel.shape, [0, 1], stddev=3.0 / config.hidden_size**0.5)
    )
    path = export.export_token_classifier(
        model,
        list(vocab),
        LABELS,
        args.model_path,
        do_lower_case=True,
        max_seq_length=MAX_SEQ_LENGTH,
        limits=RequestLimits(**json.loads(args.limits)),
    )
    _emit({"event": "exported", "path": path})


def child_call(args):
    """One warm-up call, then one timed call on --text_file; reports time and outputs' sizes."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    serve = tf.saved_model.load(args.model_path).signatures["serving_default"]
    serve(texts=tf.constant(["warm up"]))
    text = pathlib.Path(args.text_file).read_bytes()
    rss_before = _rss_mib()
    started = time.perf_counter()
    try:
        outputs = serve(texts=tf.constant([text]))
    except tf.errors.InvalidArgumentError as e:
        _emit(
            {
                "event": "rejected",
                "seconds": time.perf_counter() - started,
                "message": e.message.rsplit("assertion failed: [", 1)[-1].split("]")[0],
                "rss_before_mib": rss_before,
            }
        )
    else:
        seconds = time.perf_counter() - started
        _emit(
            {
                "event": "done",
                "seconds": seconds,
                "rss_before_mib": rss_before,
                "num_words": int(outputs["num_words"][0]),
                "num_windows": int(outputs["num_windows"][0]),
                "num_entities": int(outputs["num_entities"][0]),
            }
        )
    sys.stdout.flush()
    os._exit(0)  # TF's threads can hang interpreter teardown


def run_child(args, extra, max_rss_gb):
    """(the child's @@ answers, its peak RSS in MiB, killed at the RSS limit?) of one child."""
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        KERAS_BACKEND="tensorflow",
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), f"--work_dir={args.work_dir}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    killed = threading.Event()

    def watch():
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    rss_kib = next(int(x.split()[1]) for x in status if x.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            if rss_kib > max_rss_gb * 2**20:
                killed.set()
                proc.kill()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    answers = [json.loads(line[2:]) for line in stdout.splitlines() if line.startswith("@@")]
    if not answers and not killed.is_set():
        raise RuntimeError(f"child {extra} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return answers, usage.ru_maxrss / 1024, killed.is_set(), proc.returncode


def long_text(texts, size_bytes):
    """WikiANN sentences joined by spaces, cut at a space to at most `size_bytes` bytes."""
    pieces, total = [], 0
    while total < size_bytes:
        for sentence in texts:
            pieces.append(sentence)
            total += len(sentence.encode()) + 1
            if total >= size_bytes:
                break
    return " ".join(pieces).encode()[:size_bytes].rsplit(b" ", 1)[0]


def main(argv=None):
    args = parse_args(argv)
    if args.child == "export":
        return child_export(args)
    if args.child == "call":
        return child_call(args)
    os.makedirs(args.work_dir, exist_ok=True)
    json_file = open(args.json_out, "a", encoding="utf-8") if args.json_out else None

    def out(obj):
        line = json.dumps(obj, ensure_ascii=False)
        print(line, flush=True)
        if json_file:
            json_file.write(line + "\n")
            json_file.flush()

    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    out(
        {
            "kind": "setup",
            "bench": "serving_long_text",
            "cpu": cpu_peak()[2],
            "load_average": load_average(),
            "commit": git,
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "threads": args.threads,
            "model": {**MODEL, "max_seq_length": MAX_SEQ_LENGTH, "labels": LABELS},
            "limits": json.loads(args.limits),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    model_path = tempfile.mkdtemp(prefix="long_text_model_", dir=args.work_dir)
    answers, _, _, _ = run_child(
        args,
        ["--child=export", f"--model_path={model_path}", f"--limits={args.limits}"],
        args.max_rss_gb,
    )
    version_dir = answers[-1]["path"]
    sentences = load_texts(args.data_dir)
    sizes = [float(s) for s in args.sizes_mb.split(",") if s]
    runs = [(size, False) for size in sizes] + ([(args.reject_mb, True)] if args.reject_mb else [])
    for size_mb, expect_rejection in runs:
        text = long_text(sentences, int(size_mb * 1e6))
        text_file = os.path.join(args.work_dir, f"text_{size_mb}mb.txt")
        pathlib.Path(text_file).write_bytes(text)
        answers, peak_mib, killed, returncode = run_child(
            args,
            [
                "--child=call",
                f"--model_path={version_dir}",
                f"--text_file={text_file}",
                f"--threads={args.threads}",
            ],
            args.max_rss_gb,
        )
        result = answers[-1] if answers else {}
        out(
            {
                "kind": "rejection" if expect_rejection else "long_text",
                "size_mb": size_mb,
                "bytes": len(text),
                "words": len(text.split()),
                **result,
                "peak_rss_mib": peak_mib,
                "killed_at_rss_limit": killed,
                "max_rss_gb": args.max_rss_gb,
                "returncode": returncode,
                "load_average": load_average(),
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
