"""Where the time to the first pre-training step goes: ELECTRA-Small, ours, as the throughput bench builds it.

    python bench/first_step_breakdown.py [--batch=32] [--grappler_off=pass,pass] [--json_out=FILE]

Runs one child process (so the figures are a cold start) that builds the
step exactly as ``pretrain_throughput.py``'s ``ours_fp32`` does, and times
each phase: imports, model build (variable creation), optimizer and Trainer,
the first input batch, tracing (``get_concrete_function``, Python only), the
first call (graph optimisation by Grappler, kernel and executor creation, and
one step) and then --steps steady steps.  TensorFlow's eager runtime does not
report Grappler's time, so --grappler_off turns passes off
(``tf.config.optimizer.set_experimental_options``; ``disable_meta_optimizer``
turns all of Grappler off) to see what they cost in the first call and
whether the step gets slower without them.  Prints one JSON line (also
appended to --json_out) with the CPU model, load average and the command.
"""

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pretrain_throughput import cpu_peak, load_average, random_pool  # noqa: E402


def child(args):
    start = time.perf_counter()
    import functools

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

    def lap(name, since):
        phases[name] = time.perf_counter() - since
        return time.perf_counter()

    if args.grappler_off:
        tf.config.optimizer.set_experimental_options(
            {name: name == "disable_meta_optimizer" for name in args.grappler_off.split(",")}
        )
    t = time.perf_counter()
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
        trainer = Trainer(
            strategy, model, optimizer, seed=0, jit_compile=distribute.use_xla(None, strategy)
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
    trainer._train_steps.get_concrete_function(iterator, tf.constant(1, tf.int32))  # pylint: disable=protected-access
    t = lap("tracing", t)
    first_loss = float(trainer.train(iterator, 1)["loss"])
    t = lap("first_call", t)
    trainer.train(iterator, args.steps)
    steady = (time.perf_counter() - t) / args.steps
    phases["one_steady_step"] = steady
    phases["first_call_minus_one_step"] = phases["first_call"] - steady
    print(
        "@@"
        + json.dumps({"phases_s": phases, "first_loss": first_loss, "xla": trainer.jit_compile}),
        flush=True,
    )
    os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="steady steps timed after the first")
    parser.add_argument(
        "--grappler_off",
        default="",
        help="Grappler passes to turn off, "
        "e.g. layout_optimizer,remapping; disable_meta_optimizer: all of Grappler",
    )
    parser.add_argument("--json_out")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    load_before = load_average()
    proc = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            f"--batch={args.batch}",
            f"--steps={args.steps}",
            f"--grappler_off={args.grappler_off}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    result = next(
        (json.loads(line[2:]) for line in proc.stdout.splitlines() if line.startswith("@@")), None
    )
    if result is None:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    phases = result["phases_s"]
    record = {
        "bench": "first_step_breakdown",
        "cpu": cpu_peak()[2],
        "batch": args.batch,
        "grappler_off": args.grappler_off.split(",") if args.grappler_off else [],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "time_to_first_step_s": sum(
            phases[k]
            for k in (
                "model_build",
                "optimizer_and_trainer",
                "first_input_batch",
                "tracing",
                "first_call",
            )
        ),
        "phases_s": phases,
        "first_loss": result["first_loss"],
        "xla": result["xla"],
    }
    line = json.dumps(record)
    print(line)
    if args.json_out:
        with open(args.json_out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
