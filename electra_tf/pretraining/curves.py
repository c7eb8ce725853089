"""Pre-training learning curves: read back from TensorBoard logs, summarized and plotted."""

from collections.abc import Sequence

import tensorflow as tf
from tensorflow.core.util import event_pb2

CURVE_METRICS = (
    "disc_auc",
    "disc_accuracy",
    "disc_loss",
    "masked_lm_accuracy",
    "sampled_masked_lm_accuracy",
    "masked_lm_loss",
    "learning_rate",
    "train_flops",
    "replaced_fraction",
)


def read_windows(event_dir: str) -> list[dict]:
    """One row per logged window, ordered by step: {"step", "wall_time", metric: value}."""
    windows: dict[int, dict] = {}
    for path in sorted(tf.io.gfile.glob(f"{event_dir}/events.out.tfevents.*")):
        # TFRecordDataset, not summary_iterator: that one prints a deprecation warning to users.
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag in CURVE_METRICS:
                    row = windows.setdefault(
                        event.step, {"step": event.step, "wall_time": event.wall_time}
                    )
                    row[value.tag] = float(tf.make_ndarray(value.tensor))
    return [windows[step] for step in sorted(windows)]


def plot_curve(windows: Sequence[dict], path: str, title: str, base_rate: float = None) -> None:
    """Disc AUC and masked-LM accuracy against steps, as a small PNG."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(
            "Plotting the learning curve needs matplotlib "
            "(pip install -r requirements-experiments.txt)"
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [w["step"] for w in windows]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(steps, [w.get("disc_auc") for w in windows], label="discriminator AUC")
    ax.plot(steps, [w.get("disc_accuracy") for w in windows], label="discriminator accuracy")
    ax.plot(steps, [w.get("masked_lm_accuracy") for w in windows], label="generator MLM accuracy")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="AUC of a coin flip")
    if base_rate is not None:
        ax.axhline(
            base_rate,
            color="grey",
            lw=0.8,
            ls="--",
            label=f"accuracy of 'all original' ({base_rate:.2f})",
        )
    ax.set_xlabel("step")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def describe(windows: Sequence[dict]) -> str:
    """One line on what the last window's numbers mean."""
    first, last = windows[0], windows[-1]
    base_rate = 1.0 - last["replaced_fraction"]
    return (
        f"Step {last['step']}: the discriminator ranks a replaced token above an original "
        f"one {100 * last['disc_auc']:.0f}% of the time (disc_auc {last['disc_auc']:.3f}; "
        f"0.5 is chance, {first['disc_auc']:.3f} at step {first['step']}) and labels "
        f"{100 * last['disc_accuracy']:.1f}% of tokens right against "
        f"{100 * base_rate:.1f}% for answering 'original' everywhere; the generator "
        f"fills masked tokens correctly {100 * last['masked_lm_accuracy']:.0f}% of the time."
    )
