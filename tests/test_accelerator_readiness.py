"""What a CPU machine can check of the TPU path: asking for a TPU where there is none.

(float16 with dynamic loss scaling through an overflow, and XLA / MirroredStrategy over two
logical devices against one device for pre-training and fine-tuning, are in
tests/test_distributed.py.)
"""

import os
import pathlib
import subprocess
import sys

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
CREATE_TPU_STRATEGY = """
from electra_tf.training import setup
try:
    setup.create_strategy("tpu", tpu="local")
except Exception as e:
    print(f"{type(e).__name__}: {e}")
"""


def test_asking_for_a_tpu_where_there_is_none_gives_one_line_naming_the_fix():
    # A subprocess: TPUClusterResolver connects the eager context to a cluster, which would
    # leak into the other tests of this process.
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", CREATE_TPU_STRATEGY],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, message = proc.stdout.strip().split(": ", 1)
    assert kind == "SetupError"  # what the runners turn into a usage error, no traceback
    assert "\n" not in message
    assert message.startswith("--distribution_strategy=tpu --tpu=local: TensorFlow 2.20.0 ")
    assert "finds no TPU" in message
    assert "pip install tensorflow-tpu==2.20.0" in message
    assert "--distribution_strategy=default" in message


def test_dropout_masks_are_the_same_bits_where_the_host_compiles_no_xla():
    import tensorflow as tf

    from electra_tf.training import stateless_random

    # This CPU build compiles XLA for the host, so keep_mask takes its compiled path here;
    # TensorFlow's TPU build cannot (make test-notebook runs it) and takes uniform_like's.
    assert stateless_random.host_compiles_xla()
    x = tf.zeros([4, 8, 16])
    key = tf.constant([3, 5, 7, 11], tf.uint32)
    compiled = stateless_random.keep_mask(x, 0.1, key)
    as_tf_kernels = stateless_random.uniform_like(x, key) >= 0.1
    assert compiled.numpy().tolist() == as_tf_kernels.numpy().tolist()
    assert 0.8 < compiled.numpy().mean() < 0.98
