"""Choosing a tf.distribute strategy from flags, and distributing input per host."""

import contextlib
import json
import logging as std_logging
import os
import select
import signal
import socket
import sys
import threading

import tensorflow as tf
from absl import flags, logging

from electra_tf.training.flag_fields import MIXED_PRECISIONS, STRATEGIES


def define_flags(flag_values=flags.FLAGS):
    """The scale-out flags every runner shares (the runners call this once at import)."""
    flags.DEFINE_enum(
        "distribution_strategy",
        "default",
        list(STRATEGIES),
        "tf.distribute strategy.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "tpu",
        None,
        "For --distribution_strategy=tpu: 'local' on a TPU VM "
        "(Colab's TPU runtimes are TPU VMs), else the TPU's name or grpc:// "
        "address.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_gpus", None, "GPUs for --distribution_strategy=mirrored.", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "mixed_precision",
        "none",
        list(MIXED_PRECISIONS),
        "Compute dtype; variables stay float32.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "use_xla",
        None,
        "Compile the step with XLA (jit_compile). Default: on "
        "with a GPU or TPU, off on CPU-only machines, where TF's oneDNN kernels "
        "measured 1.3x faster than XLA's (bench/RESULTS.md).",
        flag_values=flag_values,
    )


def use_xla(flag_value, strategy) -> bool:
    """The --use_xla flag, with its default resolved for the devices at hand."""
    if flag_value is not None:
        return flag_value
    return isinstance(strategy, tf.distribute.TPUStrategy) or bool(
        tf.config.list_logical_devices("GPU")
    )


def configure_graph_optimizer(strategy, jit_compile: bool) -> bool:
    """Turns Grappler off for a CPU-only step that runs without XLA; returns whether it did.

    Call once, after creating the strategy and before the first step (it sets
    a process-wide option). The step's heavy parts are fused by hand already
    (custom gradients, the fused Adam kernel, XLA-compiled dropout masks), and
    on CPU Grappler's passes took about 40% of the first call without making
    the steady step faster (bench/first_step_breakdown.py, arms `runner` and
    `grappler`). With a GPU, a TPU or XLA it stays on: not measured there.
    """
    on_cpu_only = not isinstance(strategy, tf.distribute.TPUStrategy) and not (
        tf.config.list_logical_devices("GPU")
    )
    if not on_cpu_only or jit_compile:
        return False
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    return True


def cpu_bf16_advice(mixed_precision: str, cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """One line: whether this CPU runs bfloat16 matmuls natively, so --mixed_precision=bfloat16 pays.

    Read from the kernel's CPU flags (no dependency): AMX (amx_bf16 +
    amx_tile) and AVX512_BF16 (avx512_bf16) give oneDNN native bf16 dot
    products; without them bf16 is converted to float32 around every matmul.
    """
    try:
        with open(cpuinfo_path, encoding="utf-8") as f:
            cpu_flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []
            )
    except OSError:
        cpu_flags = None
    setting = f"--mixed_precision={mixed_precision}"
    if cpu_flags is None:
        return (
            f"CPU bf16 support unknown ({cpuinfo_path} unreadable); {setting}. On CPUs with "
            "AVX512_BF16 or AMX, bfloat16 is faster (BUILD_NOTES.md)."
        )
    native = [
        name
        for name, needs in (
            ("AMX-BF16", {"amx_bf16", "amx_tile"}),
            ("AVX512_BF16", {"avx512_bf16"}),
        )
        if needs <= set(cpu_flags)
    ]
    if native and mixed_precision == "bfloat16":
        return f"CPU has {' + '.join(native)}: {setting} runs native bf16 matmuls."
    if native:
        return (
            f"CPU has {' + '.join(native)}: --mixed_precision=bfloat16 is likely to pay on "
            f"this CPU (x1.2-1.4 train-step speed over float32 measured with AVX512_BF16; "
            f"bench/RESULTS.md); now {setting}."
        )
    if mixed_precision == "bfloat16":
        return (
            f"CPU has neither AVX512_BF16 nor AMX: {setting} emulates bf16 matmuls and is "
            "likely slower than --mixed_precision=none on this CPU."
        )
    return (
        f"CPU has neither AVX512_BF16 nor AMX: --mixed_precision=bfloat16 is unlikely to pay "
        f"on this CPU; {setting}."
    )


def create_strategy(distribution_strategy="default", tpu=None, num_gpus=None):
    """The strategy the runners train under.

    default: one device (the first GPU when there is one, else the CPU).
    mirrored: all local GPUs (or `num_gpus` of them), or the logical CPU
      devices when there is no GPU.
    multi_worker_mirrored: the cluster described by TF_CONFIG.
    tpu: `tpu` names the TPU: "local" on a TPU VM (Colab's TPU runtimes
      included), else a Cloud TPU name or grpc:// address.
    """
    if distribution_strategy not in STRATEGIES:
        raise ValueError(
            f"--distribution_strategy={distribution_strategy!r} is not one of "
            f"{', '.join(STRATEGIES)}"
        )
    if distribution_strategy == "default":
        return tf.distribute.get_strategy()
    if distribution_strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if num_gpus is not None:
            if num_gpus > len(gpus):
                raise ValueError(f"--num_gpus={num_gpus} but this machine shows {len(gpus)} GPUs")
            gpus = gpus[:num_gpus]
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if distribution_strategy == "multi_worker_mirrored":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--distribution_strategy=multi_worker_mirrored needs the TF_CONFIG "
                "environment variable describing the cluster and this worker's task"
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
        return tf.distribute.MultiWorkerMirroredStrategy()
    if not tpu:
        raise ValueError(
            "--distribution_strategy=tpu needs --tpu: 'local' on a TPU VM (Colab's "
            "TPU runtime is one), else the TPU's name or grpc:// address"
        )
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def checkpoint_dir(strategy, model_dir: str) -> str:
    """model_dir for the chief; a private scratch directory for other workers."""
    if is_chief(strategy):
        return model_dir
    resolver = strategy.cluster_resolver
    return f"{model_dir}/worker_tmp_{resolver.task_type}_{resolver.task_id}"


def per_replica_batch_size(global_batch_size, num_replicas, accumulation_steps=1) -> int:
    """Examples each replica takes per micro-batch; the split must be exact."""
    divisor = num_replicas * accumulation_steps
    if global_batch_size % divisor:
        raise ValueError(
            f"--train_batch_size={global_batch_size} must be divisible by replicas ({num_replicas}) "
            f"x --gradient_accumulation_steps ({accumulation_steps})"
        )
    return global_batch_size // divisor


class StopAgreement:
    """Whether any worker asked to stop, with the same answer on every worker.

    A stop request (SIGTERM, SIGINT) reaches one process. If that worker
    alone left the training loop, it would enter the collective checkpoint
    save while its peers entered the next step's all-reduce: a hang or a
    crash. Every worker asks at the same loop boundary and all of them get
    the OR of the requests, so all stop after the same step and write the
    same checkpoint. One scalar all-reduce per loop (TF's
    PreemptionCheckpointHandler agrees through the coordination service
    instead, but it counts its own `run` calls, restores its counter only from
    the chief's directory, and ends the process from inside its save).
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self._any = tf.function(self._count_requests, autograph=False)

    def _count_requests(self, requested):
        flags = self.strategy.run(tf.identity, args=(requested,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None)

    def any_worker(self, requested: bool) -> bool:
        """Call on every worker at the same point of the loop."""
        return bool(self._any(tf.constant(1.0 if requested else 0.0)).numpy() > 0.0)


def barrier(strategy):
    """Returns on every worker only once all of them have called it (one scalar all-reduce).

    Files one worker wrote before the call (the chief's best checkpoint) are complete when
    another reads them after it.
    """
    StopAgreement(strategy).any_worker(False)


# How long a stop request waits for the first window of steps before the process exits
# without a checkpoint (the window may never end: its first batch may never come).
FIRST_WINDOW_STOP_GRACE_S = 5.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Set by SIGTERM/SIGINT: checkpoint and stop at the next loop boundary.

    With several workers the request is shared at that boundary
    (`distribute.StopAgreement`), so all of them stop after the same step.
    Until the first window of steps has ended, the main thread may be blocked
    inside TensorFlow (compiling, or waiting for a first batch that never
    comes) where Python signal handlers do not run; then a watchdog thread
    exits the process, since nothing has been trained since the last
    checkpoint.
    """

    def __init__(self):
        self.requested = False
        # Set once signals are sure to reach `handle`: the first window ended, or training did.
        self.handled_in_loop = threading.Event()

    def handle(self, signum, frame):
        logging.warning("Received signal %d: checkpointing and stopping after this loop.", signum)
        self.requested = True


def _exit_if_first_window_stalls(request, wakeup):
    """Watchdog: exits the process when a stop signal is not honoured in the first window."""
    while not request.handled_in_loop.is_set():
        if not select.select([wakeup], [], [], 0.5)[0]:
            continue
        signals = [s for s in wakeup.recv(64) if s in _STOP_SIGNALS]
        if not signals or request.handled_in_loop.wait(FIRST_WINDOW_STOP_GRACE_S):
            continue
        logging.warning(
            "Received signal %d before the first window of steps ended (no batch yet, or "
            "still compiling): exiting without a checkpoint. Nothing trained is lost; the "
            "same command resumes from the last checkpoint, if any.",
            signals[0],
        )
        for handler in logging.get_absl_logger().handlers + std_logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(128 + signals[0])


@contextlib.contextmanager
def stop_requests():
    """A StopRequest fed by SIGTERM/SIGINT while inside; the old handlers come back after."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        # Python delivers signals to the main thread only.
        yield request
        return
    previous = {sig: signal.signal(sig, request.handle) for sig in _STOP_SIGNALS}
    # The C-level handler writes each signal's number here at once, even while the main
    # thread is blocked and its Python handler has not run.
    wakeup, wakeup_writer = socket.socketpair()
    wakeup_writer.setblocking(False)
    previous_wakeup = signal.set_wakeup_fd(wakeup_writer.fileno(), warn_on_full_buffer=False)
    watchdog = threading.Thread(
        target=_exit_if_first_window_stalls, args=(request, wakeup), daemon=True
    )
    watchdog.start()
    try:
        yield request
    finally:
        request.handled_in_loop.set()
        signal.set_wakeup_fd(previous_wakeup)
        watchdog.join()
        wakeup.close()
        wakeup_writer.close()
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
