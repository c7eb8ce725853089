"""Mean pairwise cosine of a saved encoder's token vectors on KJV (1 = collapsed)."""

import sys

import numpy as np

sys.path.insert(0, "/work/main")
from electra_tf.data import pretraining_input
from electra_tf.model.encoder import ElectraEncoder

batch = next(
    iter(
        pretraining_input.pretraining_dataset(
            "/work/runs/kjv/tfr64/pretrain_data.tfrecord*", 64, 32, is_training=False
        )
    )
)
for d in sys.argv[1:]:
    enc = ElectraEncoder.from_pretrained(d)
    x = enc(batch).numpy()[batch["input_mask"].numpy().astype(bool)]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    idx = np.random.default_rng(0).choice(len(xn), 2000, replace=False)
    cos = xn[idx] @ xn[idx].T
    print(d, f"mean pairwise cosine {cos[np.triu_indices(2000, 1)].mean():.3f}")
