"""Finding, restoring and re-writing the checkpoints of a pre-training model_dir."""

import re

import tensorflow as tf
from absl import logging

# The checkpoint's name for the tf.data iterator (the input position).
INPUT_POSITION = "input_pipeline"


class CheckpointError(RuntimeError):
    """The latest checkpoint cannot be restored; the message says how to recover."""


def checkpoint_step(path):
    """The step a checkpoint of this runner holds (its number), 0 for none.

    >>> checkpoint_step("runs/electra_small/ckpt-2000")
    2000
    """
    return int(path.rsplit("-", 1)[1]) if path else 0


def latest_checkpoint(model_dir):
    """The checkpoint to resume from: the one model_dir's `checkpoint` file names, or None.

    Raises CheckpointError when that checkpoint's index is missing, or when
    ckpt-N files are there but the `checkpoint` state file is missing, empty
    or unreadable (tf.train.latest_checkpoint would then return None and the
    run would silently start over, overwriting them).
    """
    try:
        state = tf.train.get_checkpoint_state(model_dir)
    except ValueError:  # TF's answer to a state file naming no checkpoint (an empty one)
        state = None
    if state is None or not state.model_checkpoint_path:
        _check_no_orphan_checkpoints(model_dir)
        return None
    path = state.model_checkpoint_path
    if not tf.io.gfile.exists(f"{path}.index"):
        raise CheckpointError(_cannot_resume(path, f"{path}.index does not exist"))
    return path


def _check_no_orphan_checkpoints(model_dir):
    steps = sorted(
        int(match.group(1))
        for path in tf.io.gfile.glob(f"{model_dir}/ckpt-*.index")
        if (match := re.search(r"ckpt-(\d+)\.index$", path))
    )
    if not steps:
        return
    state_file = f"{model_dir}/checkpoint"
    problem = "is unreadable or empty" if tf.io.gfile.exists(state_file) else "is missing"
    listed = ", ".join(f"ckpt-{step}" for step in steps)
    raise CheckpointError(
        f"{state_file} {problem}, but {model_dir} holds checkpoints ({listed}); starting over "
        f"would overwrite them. To resume from the latest, write the line "
        f"'model_checkpoint_path: \"ckpt-{steps[-1]}\"' to {state_file} (or name an "
        "earlier intact ckpt-N there); to start over, use a new --model_dir. "
        "Nothing was deleted."
    )


def restore_checkpoint(path, training_objects, input_iterator=None):
    """Restores `path`, or raises CheckpointError naming the damaged checkpoint and the fix.

    `input_iterator` gets the input position when the checkpoint holds one;
    a converted checkpoint (electra_tf.convert) holds none, and the data then
    starts from the beginning of its order.
    """
    try:
        status = tf.train.Checkpoint(**training_objects).restore(path)
        status.assert_existing_objects_matched().expect_partial()
        if input_iterator is None:
            return
        if any(name.startswith(f"{INPUT_POSITION}/") for name, _ in tf.train.list_variables(path)):
            tf.train.Checkpoint(**{INPUT_POSITION: input_iterator}).restore(
                path
            ).assert_existing_objects_matched().expect_partial()
        else:
            logging.warning("%s holds no input position: the data starts from the beginning.", path)
    # TF's reader raises IndexError on a truncated file, OpErrors on bad checksums
    # or missing data files, AssertionError when objects are absent.
    except (tf.errors.OpError, AssertionError, IndexError, ValueError) as e:
        reason = f"{type(e).__name__}: {str(e).strip()}"
        raise CheckpointError(_cannot_resume(path, reason)) from None


def _cannot_resume(path, reason):
    files = sorted(tf.io.gfile.glob(f"{path}.*"))
    directory = path.rsplit("/", 1)[0]
    return (
        f"Cannot resume from the latest checkpoint {path}: {' '.join(reason.split())} "
        f"Its files: {', '.join(files) or 'none'} (a checkpoint is {path}.index and "
        f"{path}.data-*); they are damaged or missing, or were written by another version. "
        f"To resume from an earlier checkpoint, move {path}.* out of {directory} and point "
        f"model_checkpoint_path in {directory}/checkpoint at an intact ckpt-N listed there; "
        "to start over, use a new --model_dir. Nothing was deleted."
    )


def save_again(manager, checkpoint, step):
    """Writes the checkpoint of `step`, also when the manager has written one for it; its path.

    The two_stage switch changes the model without a step: the manager would
    skip a second save at the same step, and a run resumed from that
    checkpoint would start in stage one and switch again.
    """
    path = manager.save(checkpoint_number=step, check_interval=False)
    if path is None:
        path = checkpoint.write(f"{manager.directory}/ckpt-{step}")
    return path
