"""Where the time to the first pre-training step goes: ELECTRA-Small, ours, as the throughput bench builds it.

    python bench/first_step_breakdown.py [--batch=32] [--arms=grappler,runner] [--rounds=2]
        [--mixed_precision=bfloat16] [--compare_with=DIR] [--grappler_off=pass,pass] [--json_out=FILE]

Each measurement is one cold child process that builds the step exactly as
``pretrain_throughput.py``'s ``ours_fp32`` does, and times each phase:
imports, model build (variable creation), optimizer and Trainer, the first
input batch, tracing (``get_concrete_function``, Python only), the first
call (graph optimisation by Grappler, XLA compilation of the dropout masks,
kernel and executor creation, and one step) and then --steps steady steps.

Arms (--arms, run in turns for --rounds rounds, the order reversed every
other round, so each ratio is between children adjacent in time):
  runner    this tree, with ``distribute.configure_graph_optimizer`` called as
            run_pretraining calls it (Grappler off on a CPU without XLA)
  grappler  this tree, Grappler on (TensorFlow's default)
  baseline  the tree at --compare_with (e.g. ``git archive <commit> | tar -x -C DIR``),
            Grappler on: the code before a change, measured in the same run
--grappler_off turns chosen Grappler passes off in every arm
(``disable_meta_optimizer``: all of them). TensorFlow's eager runtime does not
report Grappler's own time; the arms show it. One JSON line per child (CPU
model, load average, command, phases in wall and in CPU seconds, peak RSS)
and a ``ratios`` line per arm against the first arm (arm / first, per round
and median, wall and CPU); all also appended to --json_out. CPU seconds
(``time.process_time``, all threads) move far less with other processes'
load than wall seconds: on a shared machine compare those.
"""

import argparse
import collections
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pretrain_throughput import cpu_peak, load_average, random_pool  # noqa: E402

ARMS = ("runner", "grappler", "baseline")


def child(args):
    start, cpu_start = time.perf_counter(), time.process_time()
    # The arm's code tree (this one, or --compare_with's) is the one imported.
    sys.path.insert(0, args.code_root)
    import functools
    import resource

    import keras
    import tensorflow as tf
    from pretrain_throughput import CLS, MASK, MAX_PRED, PAD, SEP, UNK, VOCAB

    import electra_tf  # noqa: F401  (selects the Keras backend)
    from electra_tf.data.tokenization import SpecialTokens
    from electra_tf.model import config as config_lib
    from electra_tf.pretraining.model import ElectraPretrainer
    from electra_tf.training import distribute
    from electra_tf.training.optimization import AdamWeightDecay, learning_rate_at
    from electra_tf.training.trainer import Trainer, accumulation_batches

    phases = collections.OrderedDict(imports=time.perf_counter() - start)
    # CPU seconds of the process (all its threads): on a shared, loaded machine they
    # move far less than wall seconds, so they compare arms run at different loads.
    cpu_phases = collections.OrderedDict(imports=time.process_time() - cpu_start)
    cpu_t = time.process_time()

    def lap(name, since):
        nonlocal cpu_t
        phases[name] = time.perf_counter() - since
        cpu_phases[name] = time.process_time() - cpu_t
        cpu_t = time.process_time()
        return time.perf_counter()

    if args.grappler_off:
        tf.config.optimizer.set_experimental_options(
            {name: name == "disable_meta_optimizer" for name in args.grappler_off.split(",")}
        )
    if args.mixed_precision != "none":
        keras.mixed_precision.set_dtype_policy(f"mixed_{args.mixed_precision}")
    t, cpu_t = time.perf_counter(), time.process_time()
    disc = config_lib.preset("small", vocab_size=VOCAB)
    gen = config_lib.generator_config(disc, 0.25, 1.0, untied_embeddings=False)
    special = SpecialTokens(pad=PAD, unk=UNK, cls=CLS, sep=SEP, mask=MASK)
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = ElectraPretrainer(disc, gen, special, max_predictions_per_seq=MAX_PRED)
        model.build()
        t = lap("model_build", t)
        schedule = functools.partial(
            learning_rate_at,
            base_learning_rate=5e-4,
            num_train_steps=1_000_000,
            num_warmup_steps=10,
        )
        optimizer = AdamWeightDecay(model.trainable_variables, schedule, weight_decay_rate=0.01)
        jit_compile = distribute.use_xla(None, strategy)
        trainer = Trainer(strategy, model, optimizer, seed=0, jit_compile=jit_compile)
    grappler_off_by_runner = (
        distribute.configure_graph_optimizer(strategy, jit_compile)
        if args.arm == "runner"
        else False
    )
    t = lap("optimizer_and_trainer", t)
    ids, mask, seg = random_pool(args.batch, 0)
    data = tf.data.Dataset.from_tensor_slices(
        {"input_ids": ids, "input_mask": mask, "segment_ids": seg}
    ).repeat()
    data = accumulation_batches(data, 1).prefetch(2)
    next(iter(strategy.distribute_datasets_from_function(lambda ctx: data)))
    t = lap("first_input_batch", t)
    iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: data))
    step_function = trainer._train_steps.get_concrete_function(iterator, tf.constant(1, tf.int32))  # pylint: disable=protected-access
    t = lap("tracing", t)
    first_loss = float(trainer.train(iterator, 1)["loss"])
    t = lap("first_call", t)
    trainer.train(iterator, args.steps)
    steady = (time.perf_counter() - t) / args.steps
    phases["one_steady_step"] = steady
    phases["first_call_minus_one_step"] = phases["first_call"] - steady
    cpu_phases["one_steady_step"] = (time.process_time() - cpu_t) / args.steps
    cpu_phases["first_call_minus_one_step"] = (
        cpu_phases["first_call"] - cpu_phases["one_steady_step"]
    )
    print(
        "@@"
        + json.dumps(
            {
                "phases_s": phases,
                "phases_cpu_s": cpu_phases,
                "first_loss": first_loss,
                # What tracing builds and the first call instantiates: the step's
                # operations, its nested functions' included (counted after timing).
                "graph_ops": graph_ops(step_function.graph.as_graph_def()),
                "xla": trainer.jit_compile,
                "grappler_off_by_runner": grappler_off_by_runner,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            }
        ),
        flush=True,
    )
    os._exit(0)


def graph_ops(graph_def):
    """Operations in a GraphDef and in every function of its library."""
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


FIRST_STEP_PHASES = (
    "model_build",
    "optimizer_and_trainer",
    "first_input_batch",
    "tracing",
    "first_call",
)


def run_child(args, arm, command):
    code_root = os.path.abspath(args.compare_with) if arm == "baseline" else REPO
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    load_before = load_average()
    proc = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            f"--arm={arm}",
            f"--code_root={code_root}",
            f"--batch={args.batch}",
            f"--steps={args.steps}",
            f"--grappler_off={args.grappler_off}",
            f"--mixed_precision={args.mixed_precision}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    result = next(
        (json.loads(line[2:]) for line in proc.stdout.splitlines() if line.startswith("@@")), None
    )
    if result is None:
        raise SystemExit(f"{arm} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    phases = result.pop("phases_s")
    return {
        "bench": "first_step_breakdown",
        "arm": arm,
        "code_root": code_root,
        "cpu": cpu_peak()[2],
        "batch": args.batch,
        "mixed_precision": args.mixed_precision,
        "grappler_off": args.grappler_off.split(",") if args.grappler_off else [],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "command": command,
        "time_to_first_step_s": sum(phases[k] for k in FIRST_STEP_PHASES),
        "time_to_first_step_cpu_s": sum(result["phases_cpu_s"][k] for k in FIRST_STEP_PHASES),
        "phases_s": phases,
        **result,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="steady steps timed after the first")
    parser.add_argument(
        "--arms",
        default="runner",
        help=f"comma-separated, of {', '.join(ARMS)}; ratios are against the first",
    )
    parser.add_argument("--rounds", type=int, default=1, help="children per arm, taking turns")
    parser.add_argument("--compare_with", help="a checkout of the code to compare (arm baseline)")
    parser.add_argument(
        "--grappler_off",
        default="",
        help="Grappler passes to turn off in every arm, "
        "e.g. layout_optimizer,remapping; disable_meta_optimizer: all of Grappler",
    )
    parser.add_argument(
        "--mixed_precision",
        default="none",
        choices=["none", "bfloat16"],
        help="as run_pretraining's flag: bfloat16 runs the step under mixed_bfloat16",
    )
    parser.add_argument("--json_out")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--arm", default="runner", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--code_root", default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or not arms:
        parser.error(f"--arms: {unknown or 'none given'}; choose from {', '.join(ARMS)}")
    if "baseline" in arms and not (
        args.compare_with and os.path.isdir(os.path.join(args.compare_with, "electra_tf"))
    ):
        parser.error(
            "--arms=baseline needs --compare_with=DIR, a checkout holding electra_tf/ "
            "(e.g. mkdir DIR && git archive <commit> | tar -x -C DIR)"
        )
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    out = open(args.json_out, "a", encoding="utf-8") if args.json_out else None

    def emit(record):
        line = json.dumps(record)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    records = collections.defaultdict(list)
    for r in range(args.rounds):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            record = run_child(args, arm, command)
            record["round"] = r
            records[arm].append(record)
            emit(record)
    reference = arms[0]
    for arm in arms[1:]:
        ratios = {}
        for clock, total, phases in (
            ("wall", "time_to_first_step_s", "phases_s"),
            ("cpu", "time_to_first_step_cpu_s", "phases_cpu_s"),
        ):
            for key in (total, "tracing", "first_call", "one_steady_step"):

                def value(record, key=key, phases=phases):
                    return record[key] if key in record else record[phases][key]

                per_round = [value(a) / value(b) for a, b in zip(records[arm], records[reference])]
                ratios[f"{clock}:{key}"] = {
                    "median": statistics.median(per_round),
                    "per_round": per_round,
                }
        emit(
            {
                "bench": "first_step_breakdown",
                "kind": "ratios",
                "arm": arm,
                "against": reference,
                "ratios": ratios,
                "command": command,
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
