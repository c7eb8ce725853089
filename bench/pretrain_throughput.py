"""ELECTRA-Small pre-training train-step throughput: ours vs tf-models-official vs HF PyTorch.

    .venv/bin/python bench/pretrain_throughput.py      # ours_fp32, ours_bf16, tfm_noxla, hf_compile; batch 32; ~10 min on 2 cores
    .venv/bin/python bench/pretrain_throughput.py --impls=ours_fp32,ours_bf16,ours_xla,ours_noxla,tfm_xla,tfm_noxla,hf_eager,hf_compile \
        --batch_sizes=32,128 --warmup=3 --steps=10 --repeats=5        # the full table (hours on 2 cores)

Every implementation variant runs in its own child process (so peak RSS is
per implementation). Children are started one after another (so their
time-to-first-step is not contended by each other), then the parent runs
`--repeats` rounds; in each round every child runs one timed block of
`--steps` train steps while the others sit idle, and the order alternates
from round to round. Ratios ours/peer are computed round by round (blocks
adjacent in time) and their median reported, which cancels most of the
drift in load from other processes on a shared machine.

Variants (--impls, comma-separated):
  ours_fp32      electra_tf ElectraPretrainer + Trainer + AdamWeightDecay, float32, as shipped:
                 XLA by run_pretraining's default (on with a GPU/TPU, off on CPU)
  ours_bf16      the same under the keras mixed_bfloat16 policy (variables stay float32)
  ours_xla       ours fp32 with XLA forced on (--use_xla): diagnostic
  ours_noxla     ours fp32 with XLA forced off (--nouse_xla): diagnostic
  tfm_xla        official.nlp.modeling.models.ElectraPretrainer + BertEncoder (tf_keras), step jit-compiled
  tfm_noxla      the same, plain tf.function
  tfm_xla_bf16, tfm_noxla_bf16
                 the same two with the encoders under tf_keras' mixed_bfloat16 policy
                 (variables float32; the heads float32, as tf-models' sampling needs):
                 tf-models' own bf16, for ours_bf16
  hf_eager       HF transformers ElectraForMaskedLM (G) + ElectraForPreTraining (D), PyTorch eager
  hf_compile     the same with torch.compile (inductor) on the loss function (forward + backward)
  hf_eager_bf16, hf_compile_bf16
                 the same under torch.autocast(dtype=bfloat16) (weights and optimizer float32):
                 the peer's own bf16, for ours_bf16

All use the paper's ELECTRA-Small: D hidden 256 / 12 layers / 4 heads / FFN
1024 / embedding 128; G hidden 64 / 12 layers / 1 head / FFN 256, embeddings
tied with D; sequence 128; 19 masked positions per sequence; vocabulary
30522; exact-erf GELU; dropout 0.1; generator head evaluated only at the
masked positions; sampling from the generator's softmax (the peers by
Gumbel-max, ours by an exact two-level inverse CDF: the same distribution);
loss = MLM + 50 * replaced-token BCE;
AdamW (weight decay 0.01, eps 1e-6) with global-norm clipping at 1.0.
Data: random token ids (full-length sequences, two segments), masking done
in-graph inside the step for every implementation.

Output: one JSON line per timed block ("kind": "block"), one per variant
("kind": "summary"), one per ours/peer pair ("kind": "ratio"), one checking
issue #8's targets ("kind": "targets": ours_fp32 >= 1.5x the faster peer,
peak RSS <= the leaner peer's, time to first step <= every peer's), then a
table.
"""

import argparse
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ELECTRA-Small (paper) sizes.
VOCAB = 30522
SEQ = 128
MAX_PRED = 19
EMB = 128
D = dict(hidden=256, layers=12, heads=4, ffn=1024)
G = dict(hidden=64, layers=12, heads=1, ffn=256)
# BERT-vocabulary special ids.
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
FIRST_NORMAL_ID = 999

ALL_IMPLS = (
    "ours_fp32",
    "ours_bf16",
    "ours_xla",
    "ours_noxla",
    "tfm_xla",
    "tfm_noxla",
    "tfm_xla_bf16",
    "tfm_noxla_bf16",
    "hf_eager",
    "hf_compile",
    "hf_eager_bf16",
    "hf_compile_bf16",
)
# (float32 variant, its bf16 twin): same seed, data and randomness, so the loss
# difference after the same steps is what bf16 costs in accuracy.
BF16_TWINS = (
    ("ours_fp32", "ours_bf16"),
    ("tfm_xla", "tfm_xla_bf16"),
    ("tfm_noxla", "tfm_noxla_bf16"),
    ("hf_eager", "hf_eager_bf16"),
    ("hf_compile", "hf_compile_bf16"),
)
# (ours, peer group): a peer group's "best" is its faster variant in each round.
PEER_GROUPS = {
    "tf-models-official": ("tfm_xla", "tfm_noxla"),
    "HF PyTorch": ("hf_eager", "hf_compile"),
    "any peer": ("tfm_xla", "tfm_noxla", "hf_eager", "hf_compile"),
    "tf-models-official mixed_bfloat16": ("tfm_xla_bf16", "tfm_noxla_bf16"),
    "HF PyTorch bf16 autocast": ("hf_eager_bf16", "hf_compile_bf16"),
    # Diagnostics within ours: XLA forced on / off, bf16 vs fp32.
    "ours, XLA on": ("ours_xla",),
    "ours, XLA off": ("ours_noxla",),
    "ours fp32": ("ours_fp32",),
}
PEERS = PEER_GROUPS["any peer"]
TARGET_SPEEDUP = 1.5


# ----------------------------------------------------------------------------------------------
# Analytic model FLOPs and machine peak.
# ----------------------------------------------------------------------------------------------


def model_flops_per_step(batch, seq=SEQ, max_pred=MAX_PRED):
    """Training FLOPs (forward + backward = 3 x forward, 2 FLOPs per MAC) of one G+D step.

    Matmul parameters per layer: 4 h^2 (Q, K, V, output) + 2 h f (FFN); per
    encoder also the embedding projection e x h. Attention: QK^T and AV are
    2 * L^2 * h MACs per sequence per layer. D head (h x h dense + h x 1) on
    every token; G head (h_g x e dense + e x V output) only on the masked
    positions. Embedding gathers, softmax, layer norms, GELU and the
    optimizer are not counted (the usual MFU convention).
    """
    tokens = batch * seq
    masked = batch * max_pred

    def encoder(cfg):
        h, f, n = cfg["hidden"], cfg["ffn"], cfg["layers"]
        dense = 6 * tokens * (n * (4 * h * h + 2 * h * f) + EMB * h)
        attention = 3 * n * batch * 2 * (2 * seq * seq * h)
        return dense + attention

    d_head = 6 * tokens * (D["hidden"] * D["hidden"] + D["hidden"])
    g_head = 6 * masked * (G["hidden"] * EMB + EMB * VOCAB)
    return encoder(D) + encoder(G) + d_head + g_head


def cpu_peak():
    """(peak fp32 FLOP/s, peak bf16 FLOP/s, description) of this CPU, from /proc/cpuinfo.

    cores x clock x FLOPs/cycle/core. FLOPs/cycle for fp32 FMA: AVX-512 with
    two full-width FMA pipes (Zen 5, Intel Xeon SP with 2 FMA units) = 2 pipes
    x 16 lanes x 2 = 64; Zen 4 executes 512-bit ops on 256-bit pipes = 32;
    AVX2 with 2 FMA pipes = 32. bf16 (AVX512_BF16 VDPBF16PS / AMX) is taken
    as 2x fp32 when avx512_bf16 is present (AMX, where present, is far
    higher; we do not count it). The clock is the one /proc/cpuinfo reports
    (in a VM usually the nominal/TSC clock; turbo may be higher, so the
    true peak can be higher and MFU lower).
    """
    info = open("/proc/cpuinfo").read()
    flags = set()
    mhz, family, vendor, model_name = None, None, "", ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and mhz is None:
            mhz = float(value)
        elif key == "cpu family" and family is None:
            family = int(value)
        elif key == "vendor_id" and not vendor:
            vendor = value
        elif key == "model name" and not model_name:
            model_name = value
    cores = len(os.sched_getaffinity(0))
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family == 0x19:
            fpc, why = 32, "Zen 4: AVX-512 on 256-bit pipes, 2 FMA x 8 lanes x 2"
        else:
            fpc, why = (
                64,
                (
                    "AVX-512, 2 full-width FMA pipes x 16 fp32 lanes x 2 FLOPs"
                    + (" (AMD family 0x1A = Zen 5)" if family == 0x1A else "")
                ),
            )
    elif "avx2" in flags and "fma" in flags:
        fpc, why = 32, "AVX2, 2 FMA pipes x 8 lanes x 2"
    else:
        fpc, why = 8, "SSE, no FMA"
    ghz = (mhz or 2000.0) / 1000.0
    fp32 = cores * ghz * 1e9 * fpc
    bf16 = fp32 * (2 if "avx512_bf16" in flags else 1)
    desc = (
        f"{model_name}, {cores} cores x {ghz:.3f} GHz (cpuinfo) x {fpc} fp32 FLOPs/cycle "
        f"[{why}] = {fp32 / 1e9:.0f} GFLOP/s fp32; bf16 peak taken as "
        f"{bf16 / 1e9:.0f} GFLOP/s"
    )
    return fp32, bf16, desc


# Dense (non-sparse) peak FLOP/s of common GPUs: (fp32 non-tensor-core, bf16 tensor core).
GPU_PEAKS = {
    "H200": (67e12, 989e12),
    "H100": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
    "L4": (30e12, 121e12),
    "A10": (31e12, 125e12),
    "V100": (15.7e12, 125e12),
}


def gpu_peak(name):
    for key, peaks in GPU_PEAKS.items():
        if key in name:
            return (
                peaks[0],
                peaks[1],
                f"{name}: table peak fp32 {peaks[0] / 1e12:.0f} / bf16 {peaks[1] / 1e12:.0f} TFLOP/s",
            )
    return None, None, f"{name}: peak unknown (pass --peak_tflops)"


# ----------------------------------------------------------------------------------------------
# Children: one implementation each. Protocol on stdin/stdout, one JSON object per line.
# ----------------------------------------------------------------------------------------------


def _emit(obj):
    sys.__stdout__.write("@@" + json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def random_pool(batch, seed, n_batches=4):
    """n_batches batches of random full-length token ids, two segments, [CLS] A [SEP] B [SEP]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(FIRST_NORMAL_ID, VOCAB, size=(n_batches, batch, SEQ), dtype=np.int32)
    half = SEQ // 2
    ids[:, :, 0] = CLS
    ids[:, :, half - 1] = SEP
    ids[:, :, -1] = SEP
    mask = np.ones_like(ids)
    seg = np.zeros_like(ids)
    seg[:, :, half:] = 1
    return ids, mask, seg


def child_ours(args, bf16, xla=None):
    import functools

    import keras
    import tensorflow as tf

    import electra_tf  # noqa: F401  (selects the Keras backend)
    from electra_tf.data.tokenization import SpecialTokens
    from electra_tf.model import config as config_lib
    from electra_tf.pretraining.model import ElectraPretrainer
    from electra_tf.training import distribute
    from electra_tf.training.optimization import AdamWeightDecay, learning_rate_at
    from electra_tf.training.trainer import Trainer, accumulation_batches

    t_import = time.perf_counter()

    if bf16:
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    disc = config_lib.preset("small", vocab_size=VOCAB)
    gen = config_lib.generator_config(disc, 0.25, 1.0, untied_embeddings=False)
    assert (
        disc.hidden_size,
        disc.num_hidden_layers,
        disc.num_attention_heads,
        disc.intermediate_size,
        disc.embedding_dim,
    ) == (256, 12, 4, 1024, 128), disc
    assert (gen.hidden_size, gen.num_attention_heads, gen.intermediate_size) == (64, 1, 256), gen
    special = SpecialTokens(pad=PAD, unk=UNK, cls=CLS, sep=SEP, mask=MASK)
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(args.seed)
    with strategy.scope():
        model = ElectraPretrainer(disc, gen, special, max_predictions_per_seq=MAX_PRED)
        model.build()
        schedule = functools.partial(
            learning_rate_at,
            base_learning_rate=args.learning_rate,
            num_train_steps=1_000_000,
            num_warmup_steps=args.lr_warmup,
        )
        optimizer = AdamWeightDecay(model.trainable_variables, schedule, weight_decay_rate=0.01)
        jit_compile = distribute.use_xla(xla, strategy)
        trainer = Trainer(strategy, model, optimizer, seed=args.seed, jit_compile=jit_compile)
    # As run_pretraining sets it up: Grappler off for a CPU step without XLA.
    distribute.configure_graph_optimizer(strategy, jit_compile)
    ids, mask, seg = random_pool(args.batch, args.seed)
    data = tf.data.Dataset.from_tensor_slices(
        {"input_ids": ids, "input_mask": mask, "segment_ids": seg}
    ).repeat()
    data = accumulation_batches(data, 1).prefetch(2)
    iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: data))
    n_params = sum(int(math.prod(v.shape)) for v in model.trainable_variables)
    t_built = time.perf_counter()

    def run(n):
        sums = trainer.train(iterator, n)
        return float(sums["loss"]) / n

    return run, dict(
        t_import=t_import,
        t_built=t_built,
        params=n_params,
        xla=trainer.jit_compile,
        device=("GPU" if tf.config.list_physical_devices("GPU") else "CPU"),
    )


def child_tfm(args, xla, bf16=False):
    import tensorflow as tf
    import tf_keras
    from official.nlp.modeling import models, networks

    t_import = time.perf_counter()

    if bf16:  # the encoders; the heads below stay float32
        tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")

    def gelu(x):
        return tf.nn.gelu(x, approximate=False)

    tf_keras.utils.set_random_seed(args.seed)
    init = tf_keras.initializers.TruncatedNormal(stddev=0.02)
    common = dict(
        vocab_size=VOCAB,
        max_sequence_length=512,
        type_vocab_size=2,
        inner_activation=gelu,
        output_dropout=0.1,
        attention_dropout=0.1,
        initializer=init,
        embedding_width=EMB,
        dict_outputs=True,
    )
    disc_net = networks.BertEncoder(
        hidden_size=D["hidden"],
        num_layers=D["layers"],
        num_attention_heads=D["heads"],
        inner_dim=D["ffn"],
        **common,
    )
    gen_net = networks.BertEncoder(
        hidden_size=G["hidden"],
        num_layers=G["layers"],
        num_attention_heads=G["heads"],
        inner_dim=G["ffn"],
        embedding_layer=disc_net.get_embedding_layer(),
        **common,
    )
    # tf-models' ElectraPretrainer adds float32 Gumbel noise to the generator's
    # logits, which fails on bfloat16 logits (AddV2 bfloat16 + float): its heads
    # are built under float32, the encoders (nearly all the FLOPs) under bf16.
    tf_keras.mixed_precision.set_global_policy("float32")
    model = models.ElectraPretrainer(
        generator_network=gen_net,
        discriminator_network=disc_net,
        vocab_size=VOCAB,
        num_classes=2,
        num_token_predictions=MAX_PRED,
        mlm_activation=gelu,
        mlm_initializer=init,
        output_type="logits",
        disallow_correct=False,
    )
    optimizer = tf_keras.optimizers.AdamW(
        learning_rate=args.learning_rate, weight_decay=0.01, epsilon=1e-6, global_clipnorm=1.0
    )
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "layer_norm", "bias"])

    def mask_batch(ids, seg, mask):
        batch = tf.shape(ids)[0]
        # Uniform positions without replacement among 1..L-2 (not [CLS], not the final [SEP]).
        keys = tf.random.uniform([batch, SEQ])
        valid = (ids != CLS) & (ids != SEP)
        keys = tf.where(valid, keys, -1.0)
        _, positions = tf.math.top_k(keys, k=MAX_PRED)
        lm_ids = tf.gather(ids, positions, batch_dims=1)
        hit = tf.reduce_max(tf.one_hot(positions, SEQ, dtype=tf.int32), axis=1) > 0
        masked_ids = tf.where(hit, MASK, ids)
        return {
            "input_word_ids": masked_ids,
            "input_mask": mask,
            "input_type_ids": seg,
            "masked_lm_positions": positions,
            "masked_lm_ids": lm_ids,
            "masked_lm_weights": tf.ones([batch, MAX_PRED], tf.float32),
        }

    def step(features):
        inputs = mask_batch(features["input_ids"], features["segment_ids"], features["input_mask"])
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            weights = inputs["masked_lm_weights"]
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=inputs["masked_lm_ids"], logits=tf.cast(out["lm_outputs"], tf.float32)
            )
            mlm = tf.reduce_sum(nll * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
            real = tf.cast(inputs["input_mask"], tf.float32)
            xent = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(out["disc_label"], tf.float32),
                logits=tf.cast(out["disc_logits"], tf.float32),
            )
            disc = tf.reduce_sum(xent * real) / tf.maximum(tf.reduce_sum(real), 1.0)
            loss = mlm + 50.0 * disc
        grads = tape.gradient(loss, model.trainable_variables)
        # The encoders' poolers and the (NSP) classification head get no gradient in ELECTRA.
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None]
        )
        return loss

    compiled_step = tf.function(step, jit_compile=xla)

    @tf.function
    def train_loop(iterator, n):
        loss = compiled_step(next(iterator))
        for _ in tf.range(n - 1):
            loss += compiled_step(next(iterator))
        return loss

    ids, mask, seg = random_pool(args.batch, args.seed)
    data = (
        tf.data.Dataset.from_tensor_slices(
            {"input_ids": ids, "input_mask": mask, "segment_ids": seg}
        )
        .repeat()
        .prefetch(2)
    )
    iterator = iter(data)
    # Build the variables (and the optimizer slots) before timing the first step.
    model(mask_batch(ids[0], seg[0], mask[0]), training=False)
    n_params = sum(int(math.prod(v.shape)) for v in model.trainable_variables)
    t_built = time.perf_counter()

    def run(n):
        return float(train_loop(iterator, tf.constant(n, tf.int32))) / n

    return run, dict(
        t_import=t_import,
        t_built=t_built,
        params=n_params,
        device=("GPU" if tf.config.list_physical_devices("GPU") else "CPU"),
    )


def child_hf(args, compiled, bf16=False):
    import torch
    import torch.nn.functional as F
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    t_import = time.perf_counter()

    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    torch.manual_seed(args.seed)

    def cfg(c):
        return ElectraConfig(
            vocab_size=VOCAB,
            embedding_size=EMB,
            hidden_size=c["hidden"],
            num_hidden_layers=c["layers"],
            num_attention_heads=c["heads"],
            intermediate_size=c["ffn"],
            hidden_act="gelu",
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            max_position_embeddings=512,
            type_vocab_size=2,
        )

    disc = ElectraForPreTraining(cfg(D))
    gen = ElectraForMaskedLM(cfg(G))
    # Tie: G reads D's whole embedding block, and G's output layer is D's word-embedding table.
    gen.electra.embeddings = disc.electra.embeddings
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    disc.to(device).train()
    gen.to(device).train()
    params = list({id(p): p for m in (gen, disc) for p in m.parameters()}.values())
    no_decay = [p for p in params if p.ndim == 1]  # biases and LayerNorm
    decay = [p for p in params if p.ndim > 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.learning_rate,
        eps=1e-6,
        **({"fused": True} if device.type == "cuda" else {"foreach": True}),
    )

    def loss_fn(ids, mask, seg):
        b = ids.shape[0]
        keys = torch.rand(b, SEQ, device=ids.device)
        keys = torch.where((ids != CLS) & (ids != SEP), keys, torch.full_like(keys, -1.0))
        positions = keys.topk(MAX_PRED, dim=1).indices
        lm_ids = ids.gather(1, positions)
        masked_ids = ids.scatter(1, positions, torch.full_like(lm_ids, MASK))
        hidden = gen.electra(input_ids=masked_ids, attention_mask=mask, token_type_ids=seg)[0]
        hidden = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        logits = gen.generator_lm_head(gen.generator_predictions(hidden)).float()
        mlm = F.cross_entropy(logits.reshape(-1, VOCAB), lm_ids.reshape(-1))
        with torch.no_grad():
            u = torch.rand_like(logits)
            sampled = (logits - torch.log(-torch.log(u + 1e-9) + 1e-9)).argmax(-1)
            fake = ids.scatter(1, positions, sampled)
            labels = (fake != ids).float()
        d_logits = disc(input_ids=fake, attention_mask=mask, token_type_ids=seg).logits.float()
        real = mask.float()
        d_loss = (
            F.binary_cross_entropy_with_logits(d_logits, labels, reduction="none") * real
        ).sum() / real.sum().clamp(min=1.0)
        return mlm + 50.0 * d_loss

    fn = torch.compile(loss_fn) if compiled else loss_fn
    # Forward (and, through autograd, its backward) in bf16 where autocast allows; the
    # optimizer step stays outside, on the float32 weights.
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)
    ids, mask, seg = (
        torch.from_numpy(a).long().to(device) for a in random_pool(args.batch, args.seed)
    )
    counter = [0]

    def one_step():
        i = counter[0] % ids.shape[0]
        counter[0] += 1
        with autocast:
            loss = fn(ids[i], mask[i], seg[i])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.detach()

    n_params = sum(p.numel() for p in params)
    t_built = time.perf_counter()

    def run(n):
        total = 0.0
        for _ in range(n):
            total += float(one_step())  # syncs, like the TF loops' host read-back
        return total / n

    return run, dict(
        t_import=t_import,
        t_built=t_built,
        params=n_params,
        device=device.type.upper(),
        torch_threads=torch.get_num_threads(),
    )


def child_main(args):
    t0 = time.perf_counter()
    builders = {
        "ours_fp32": lambda: child_ours(args, bf16=False),
        "ours_bf16": lambda: child_ours(args, bf16=True),
        "ours_xla": lambda: child_ours(args, bf16=False, xla=True),
        "ours_noxla": lambda: child_ours(args, bf16=False, xla=False),
        "tfm_xla": lambda: child_tfm(args, xla=True),
        "tfm_noxla": lambda: child_tfm(args, xla=False),
        "tfm_xla_bf16": lambda: child_tfm(args, xla=True, bf16=True),
        "tfm_noxla_bf16": lambda: child_tfm(args, xla=False, bf16=True),
        "hf_eager": lambda: child_hf(args, compiled=False),
        "hf_compile": lambda: child_hf(args, compiled=True),
        "hf_eager_bf16": lambda: child_hf(args, compiled=False, bf16=True),
        "hf_compile_bf16": lambda: child_hf(args, compiled=True, bf16=True),
    }
    run, info = builders[args.child]()
    first_loss = run(1)
    t_first = time.perf_counter()
    if args.warmup > 0:
        run(args.warmup)
    t_warm = time.perf_counter()
    _emit(
        {
            "event": "ready",
            "import_s": info["t_import"] - t0,
            "build_s": info["t_built"] - info["t_import"],
            "time_to_first_step_s": t_first - info["t_import"],
            "process_to_first_step_s": t_first - t0,
            "warmup_s_per_step": (t_warm - t_first) / max(args.warmup, 1),
            "first_loss": first_loss,
            "params": info["params"],
            "device": info["device"],
            "rss_mib": _rss_mib(),
            **{k: v for k, v in info.items() if not k.startswith("t_")},
        }
    )
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            start = time.perf_counter()
            loss = run(cmd["steps"])
            _emit(
                {
                    "event": "block",
                    "seconds": time.perf_counter() - start,
                    "steps": cmd["steps"],
                    "loss": loss,
                    "rss_mib": _rss_mib(),
                }
            )
        else:
            _emit({"event": "bye", "rss_mib": _rss_mib()})
            # Skip interpreter teardown: TF/torch background threads can hang it.
            os._exit(0)
    os._exit(0)


# ----------------------------------------------------------------------------------------------
# Parent.
# ----------------------------------------------------------------------------------------------


def summarize(batch, impls, ready, blocks, final, repeats, peak32, peak16, out):
    """Summary, bf16-check and ratio records of one batch size; emits them through `out`."""
    flops = model_flops_per_step(batch)
    summaries = {}
    for impl in impls:
        rates = [b["seq_per_s"] for b in blocks[impl]]
        if not rates:
            continue
        med = statistics.median(rates)
        peak = peak16 if impl.endswith("bf16") else peak32
        s = {
            "kind": "summary",
            "impl": impl,
            "batch": batch,
            "device": ready[impl]["device"],
            "seq_per_s_median": med,
            "seq_per_s_min": min(rates),
            "seq_per_s_max": max(rates),
            "tokens_per_s_median": med * SEQ,
            "ms_per_step_median": 1000 * batch / med,
            "model_tflops_per_step": flops / 1e12,
            "achieved_gflops": flops * med / batch / 1e9,
            "mfu_vs_fp32_peak": (flops * med / batch / peak32) if peak32 else None,
            "mfu_vs_own_dtype_peak": (flops * med / batch / peak) if peak else None,
            "time_to_first_step_s": ready[impl]["time_to_first_step_s"],
            "process_to_first_step_s": ready[impl]["process_to_first_step_s"],
            "import_s": ready[impl]["import_s"],
            "peak_rss_mib": max(final[impl].get("rss_mib", 0), ready[impl]["rss_mib"]),
            "params": ready[impl]["params"],
            "first_loss": ready[impl]["first_loss"],
            "last_block_loss": blocks[impl][-1]["loss"],
            "steps_trained": 1
            + ready[impl].get("warmup", 0)
            + sum(b["steps"] for b in blocks[impl]),
        }
        summaries[impl] = s
        out(s)
    for fp32, bf16 in BF16_TWINS:
        if fp32 not in summaries or bf16 not in summaries:
            continue
        a, b = summaries[fp32], summaries[bf16]
        per_round = [
            x["seq_per_s"] / y["seq_per_s"]
            for x in blocks[bf16]
            for y in blocks[fp32]
            if x["round"] == y["round"]
        ]
        out(
            {
                "kind": "bf16_accuracy_check",
                "batch": batch,
                "fp32": fp32,
                "bf16": bf16,
                "steps_trained": a["steps_trained"],
                "first_loss_fp32": a["first_loss"],
                "first_loss_bf16": b["first_loss"],
                "first_loss_delta": b["first_loss"] - a["first_loss"],
                "last_block_loss_fp32": a["last_block_loss"],
                "last_block_loss_bf16": b["last_block_loss"],
                "last_block_loss_delta": b["last_block_loss"] - a["last_block_loss"],
                "last_block_loss_rel_delta": (b["last_block_loss"] - a["last_block_loss"])
                / a["last_block_loss"],
                "throughput_ratio_bf16_over_fp32_median": statistics.median(per_round)
                if per_round
                else None,
                "throughput_ratio_per_round": per_round,
            }
        )
    ratios = []
    for ours in ("ours_fp32", "ours_bf16"):
        if ours not in summaries:
            continue
        for group, members in PEER_GROUPS.items():
            present = [m for m in members if m in summaries and m != ours]
            # "any peer" only adds its per-round best; its members have their own groups.
            singles = [] if group == "any peer" else present
            for peer in singles + (["best"] if len(present) > 1 else []):
                per_round = []
                for r in range(repeats):
                    mine = [x["seq_per_s"] for x in blocks[ours] if x["round"] == r]
                    if peer == "best":
                        theirs = [
                            max(
                                x["seq_per_s"]
                                for m in present
                                for x in blocks[m]
                                if x["round"] == r
                            )
                        ]
                    else:
                        theirs = [x["seq_per_s"] for x in blocks[peer] if x["round"] == r]
                    if mine and theirs:
                        per_round.append(mine[0] / theirs[0])
                if per_round:
                    rec = {
                        "kind": "ratio",
                        "batch": batch,
                        "ours": ours,
                        "peer": peer if peer != "best" else f"best {group}",
                        "throughput_ratio_median": statistics.median(per_round),
                        "per_round": per_round,
                    }
                    ratios.append(rec)
                    out(rec)
    targets = check_targets(batch, summaries, ratios)
    if targets:
        out(targets)
    return summaries, ratios


def check_targets(batch, summaries, ratios):
    """Issue #8's bar for ours_fp32 against the peers that ran (None if none did)."""
    peers = {impl: s for impl, s in summaries.items() if impl in PEERS}
    if "ours_fp32" not in summaries or not peers:
        return None
    ours = summaries["ours_fp32"]
    faster = max(peers, key=lambda impl: peers[impl]["seq_per_s_median"])
    leaner = min(peers, key=lambda impl: peers[impl]["peak_rss_mib"])
    speedup = next(
        (
            r["throughput_ratio_median"]
            for r in ratios
            if r["ours"] == "ours_fp32"
            and r["peer"] == ("best any peer" if len(peers) > 1 else faster)
        ),
        None,
    )
    slowest_start = max(s["time_to_first_step_s"] for s in peers.values())
    fastest_start = min(s["time_to_first_step_s"] for s in peers.values())
    return {
        "kind": "targets",
        "batch": batch,
        "faster_peer": faster,
        "speedup_vs_faster_peer": speedup,
        "speedup_target": TARGET_SPEEDUP,
        "speedup_met": speedup is not None and speedup >= TARGET_SPEEDUP,
        "leaner_peer": leaner,
        "peak_rss_mib": ours["peak_rss_mib"],
        "leaner_peer_peak_rss_mib": peers[leaner]["peak_rss_mib"],
        "memory_met": ours["peak_rss_mib"] <= peers[leaner]["peak_rss_mib"],
        "time_to_first_step_s": ours["time_to_first_step_s"],
        "peers_time_to_first_step_s": {i: s["time_to_first_step_s"] for i, s in peers.items()},
        "time_to_first_step_met": ours["time_to_first_step_s"] <= fastest_start,
        "time_to_first_step_within_peers": ours["time_to_first_step_s"] <= slowest_start,
    }


def summarize_file(path, peak32, peak16):
    """Re-derives summaries and ratios from a --json_out file (e.g. of an interrupted run)."""
    records = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    setup = next(r for r in records if r["kind"] == "setup")
    tables = []
    for batch in sorted({r["batch"] for r in records if r["kind"] == "block"}):
        ready = {r["impl"]: r for r in records if r["kind"] == "ready" and r["batch"] == batch}
        for r in ready.values():
            r.setdefault("warmup", setup.get("warmup", 0))
        for r in records:
            r.setdefault("steps", setup.get("steps", 1))
        blocks = {
            i: [
                r
                for r in records
                if r["kind"] == "block" and r["batch"] == batch and r["impl"] == i
            ]
            for i in ready
        }
        final = {i: {"rss_mib": max([b.get("rss_mib", 0) for b in blocks[i]] + [0])} for i in ready}
        repeats = 1 + max(r["round"] for i in ready for r in blocks[i])
        summaries, ratios = summarize(
            batch,
            list(ready),
            ready,
            blocks,
            final,
            repeats,
            peak32,
            peak16,
            lambda o: print(json.dumps(o)),
        )
        tables.append((batch, summaries, ratios))
    return setup, tables


def print_tables(peak_desc, tables, header):
    print()
    print(f"Peak assumed: {peak_desc}")
    print(header)
    for batch, summaries, ratios in tables:
        print(f"\nbatch {batch}  (model FLOPs/step {model_flops_per_step(batch) / 1e12:.3f} TFLOP)")
        print(
            f"{'variant':<15} {'seq/s':>7} {'[min-max]':>13} {'tok/s':>8} {'ms/step':>8} "
            f"{'MFU':>6} {'TTFS s':>7} {'RSS MiB':>8} {'loss(last)':>10}"
        )
        for impl, s in summaries.items():
            mfu = s["mfu_vs_own_dtype_peak"]
            print(
                f"{impl:<15} {s['seq_per_s_median']:7.2f} "
                f"{s['seq_per_s_min']:6.2f}-{s['seq_per_s_max']:<6.2f} "
                f"{s['tokens_per_s_median']:8.0f} {s['ms_per_step_median']:8.0f} "
                f"{(100 * mfu if mfu else float('nan')):5.1f}% {s['time_to_first_step_s']:7.1f} "
                f"{s['peak_rss_mib']:8.0f} {s['last_block_loss']:10.4f}"
            )
        for r in ratios:
            print(
                f"  {r['ours']} / {r['peer']}: x{r['throughput_ratio_median']:.2f} "
                f"(per round: {', '.join(f'{x:.2f}' for x in r['per_round'])})"
            )
        for fp32, bf16 in BF16_TWINS:
            if fp32 in summaries and bf16 in summaries:
                a, b = summaries[fp32], summaries[bf16]
                print(
                    f"  bf16 {bf16} vs {fp32}: x{b['seq_per_s_median'] / a['seq_per_s_median']:.2f} "
                    f"seq/s (medians), loss after {a['steps_trained']} steps "
                    f"{b['last_block_loss']:.4f} vs {a['last_block_loss']:.4f} "
                    f"({100 * (b['last_block_loss'] / a['last_block_loss'] - 1):+.3f}%), "
                    f"time to first step {b['time_to_first_step_s']:.1f} vs "
                    f"{a['time_to_first_step_s']:.1f} s"
                )
        targets = check_targets(batch, summaries, ratios)
        if targets:

            def verdict(met):
                return "met" if met else "NOT met"

            speedup = targets["speedup_vs_faster_peer"]
            print(
                f"  targets: throughput x{speedup or float('nan'):.2f} vs {targets['faster_peer']} "
                f"(>= x{TARGET_SPEEDUP}: {verdict(targets['speedup_met'])}); peak RSS "
                f"{targets['peak_rss_mib']:.0f} vs {targets['leaner_peer']} "
                f"{targets['leaner_peer_peak_rss_mib']:.0f} MiB ({verdict(targets['memory_met'])}); "
                f"time to first step {targets['time_to_first_step_s']:.1f} s vs "
                + ", ".join(
                    f"{i} {t:.1f}" for i, t in targets["peers_time_to_first_step_s"].items()
                )
                + f" ({verdict(targets['time_to_first_step_met'])})"
            )


class Child:
    def __init__(self, impl, batch, args):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            f"--child={impl}",
            f"--batch={batch}",
            f"--warmup={args.warmup}",
            f"--seed={args.seed}",
            f"--device={args.device}",
            f"--learning_rate={args.learning_rate}",
            f"--lr_warmup={args.lr_warmup}",
        ]
        # A fresh inductor cache: torch.compile's time to first step is that of
        # a first run, not of a rerun that finds its kernels compiled already.
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            TF_FORCE_GPU_ALLOW_GROWTH="true",
            TORCHINDUCTOR_CACHE_DIR=os.path.join(args.log_dir, f"inductor_{impl}_b{batch}"),
            PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        self.impl, self.batch = impl, batch
        self.log = open(os.path.join(args.log_dir, f"{impl}_b{batch}.log"), "w")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=REPO,
            env=env,
        )

    def read(self):
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
            self.log.write(line)
        raise RuntimeError(
            f"{self.impl} (batch {self.batch}) exited with {self.proc.wait()}; see {self.log.name}"
        )

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        try:
            out = self.send({"cmd": "quit"})
        except Exception:  # noqa: BLE001
            out = {}
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return out


def cpu_model_name():
    """The CPU's model name from /proc/cpuinfo, with its bf16 / AMX flags."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return None
    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
        [],
    )
    extra = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{name} [{' '.join(extra) or 'no avx512_bf16/amx'}]"


def load_average():
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def detect_device(requested):
    if requested != "auto":
        return requested
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode == 0 and out.stdout.strip():
            return "gpu"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "cpu"


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch_sizes", default="32", help="comma-separated global batch sizes")
    p.add_argument(
        "--impls",
        default="ours_fp32,ours_bf16,tfm_noxla,hf_compile",
        help="comma-separated variants, of: " + ",".join(ALL_IMPLS) + " (the default: "
        "ours and each peer at its best setting on CPU; ~10 minutes on 2 cores)",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after the first step")
    p.add_argument("--steps", type=int, default=2, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks (rounds) per variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning_rate", type=float, default=5e-4)
    p.add_argument("--lr_warmup", type=int, default=10, help="LR warmup steps (ours' schedule)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--peak_tflops", type=float, default=None, help="override fp32 peak")
    p.add_argument("--log_dir", default=None, help="children's stderr (default: a temp dir)")
    p.add_argument(
        "--start",
        default="sequential",
        choices=["sequential", "parallel"],
        help="start the children one after another (clean time-to-first-step) or all "
        "at once (shorter wall time; their first steps then contend)",
    )
    p.add_argument("--json_out", default=None, help="also append the JSON lines to this file")
    # Child mode (internal).
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument(
        "--summarize",
        default=None,
        help="only re-derive the summaries and table from this --json_out file",
    )
    args = p.parse_args()
    if args.child:
        return child_main(args)
    if args.summarize:
        peak32, peak16, peak_desc = cpu_peak() if args.device != "gpu" else (None, None, "")
        setup, tables = summarize_file(args.summarize, peak32, peak16)
        print_tables(
            setup.get("peak", peak_desc), tables, f"from {args.summarize}: {setup.get('argv')}"
        )
        return 0

    import tempfile

    args.device = detect_device(args.device)
    args.log_dir = args.log_dir or tempfile.mkdtemp(prefix="electra_bench_")
    os.makedirs(args.log_dir, exist_ok=True)
    if args.device == "gpu":
        name = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[0]
        )
        peak32, peak16, peak_desc = gpu_peak(name)
    else:
        peak32, peak16, peak_desc = cpu_peak()
    if args.peak_tflops:
        peak32, peak16 = args.peak_tflops * 1e12, args.peak_tflops * 1e12
        peak_desc += f" (overridden: {args.peak_tflops} TFLOP/s)"
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    json_file = open(args.json_out, "a") if args.json_out else None

    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    cpu_model = cpu_model_name()

    def out(obj):
        # Every line carries what a reader needs to trust it on its own.
        obj = {
            **obj,
            "cpu_model": cpu_model,
            "load_average": obj.get("load_average") or load_average(),
            "command": command,
        }
        line = json.dumps(obj)
        print(line, flush=True)
        if json_file:
            json_file.write(line + "\n")
            json_file.flush()

    out(
        {
            "kind": "setup",
            "device": args.device,
            "start": args.start,
            "peak": peak_desc,
            "impls": impls,
            "warmup": args.warmup,
            "steps": args.steps,
            "repeats": args.repeats,
            "load_average": load_average(),
            "log_dir": args.log_dir,
            "argv": sys.argv[1:],
        }
    )
    tables = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        ready, blocks, children = {}, {i: [] for i in impls}, {}
        try:
            started = {}
            if args.start == "parallel":  # all at once: shorter wall time, contended TTFS
                started = {impl: Child(impl, batch, args) for impl in impls}
            for impl in impls:  # sequential: time-to-first-step is not contended by siblings
                child = started.get(impl) or Child(impl, batch, args)
                try:
                    ready[impl] = {**child.read(), "warmup": args.warmup}
                    children[impl] = child
                except RuntimeError as e:
                    out({"kind": "error", "impl": impl, "batch": batch, "error": str(e)})
                    child.log.close()
                    continue
                out({"kind": "ready", "impl": impl, "batch": batch, **ready[impl]})
            order = list(children)
            for r in range(args.repeats):
                for impl in order if r % 2 == 0 else order[::-1]:
                    if impl not in children:
                        continue
                    try:
                        res = children[impl].send({"cmd": "run", "steps": args.steps})
                    except (OSError, RuntimeError) as e:
                        # E.g. killed for memory: every child stays resident, so at large
                        # batches run fewer variants per invocation.
                        out(
                            {
                                "kind": "error",
                                "impl": impl,
                                "batch": batch,
                                "error": f"{type(e).__name__}: {e}; exit code {children[impl].proc.wait()}",
                            }
                        )
                        children.pop(impl).log.close()
                        continue
                    sps = res["steps"] / res["seconds"]
                    rec = {
                        "kind": "block",
                        "impl": impl,
                        "batch": batch,
                        "round": r,
                        "steps": res["steps"],
                        "s_per_step": res["seconds"] / res["steps"],
                        "seq_per_s": sps * batch,
                        "loss": res["loss"],
                        "load_average": load_average(),
                    }
                    blocks[impl].append(rec)
                    out(rec)
        finally:
            final = {impl: c.close() for impl, c in children.items()}

        summaries, ratios = summarize(
            batch, list(children), ready, blocks, final, args.repeats, peak32, peak16, out
        )
        tables.append((batch, summaries, ratios))

    print_tables(
        peak_desc,
        tables,
        f"warmup {args.warmup} steps, {args.repeats} rounds x "
        f"{args.steps} timed steps per variant; load average now {load_average()}",
    )


if __name__ == "__main__":
    sys.exit(main())
