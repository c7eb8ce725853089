"""Counter-based random numbers: a hash of (key, element index).

TF's stateless RNG ops expand to ~1000 HLO instructions per call site under
XLA (Philox rounds), and a pre-training step has dozens of sites (every
dropout, the masking, the sampling, every seed derivation): compiling them
took most of a minute for a two-layer model. Hashing a counter with the
murmur3 finalizer gives uniforms that XLA fuses into the consumer, and lets
each example draw from its own key (its global index), which makes a step's
randomness independent of how the batch is split across replicas.

Keys are uint32 scalars, or [batch] vectors giving each example its own
stream: dropout, masking and sampling draw per example from (step key, global
example index), so neither the replica nor the accumulation micro-batch an
example lands in changes its randomness.

Dropout masks (`keep_mask`) are compiled with XLA even inside a graph that
is not: as separate TF kernels the hash's ~20 integer ops per element cost
more than TF's Philox kernel, fused they cost an eighth of it (bench/RESULTS.md).
TensorFlow's TPU build (tensorflow-tpu) cannot compile XLA for the CPU, so
there the mask is the same hash as plain TF kernels (the same bits).
"""

import functools

import tensorflow as tf

_GOLDEN = 0x9E3779B9


def _u32(value):
    return tf.constant(value, tf.uint32)


def mix32(x):
    """The murmur3 32-bit finalizer: a bijective avalanche hash of uint32 values."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))
    x = x * _u32(0x85EBCA6B)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(13)))
    x = x * _u32(0xC2B2AE35)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))


def key_from_seed(seed):
    """A uint32 key from an integer seed tensor of shape [2] (e.g. Generator.make_seeds)."""
    seed = tf.cast(seed, tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(seed, 0xFFFFFFFF), tf.uint32)
    return mix32(low[0] + mix32(low[1] + _u32(_GOLDEN)))


def _mix32_int(x: int) -> int:
    """mix32 of a Python int, in Python: the same uint32 arithmetic, no graph ops."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


def fold(key, data):
    """A new key for sub-stream `data` (a Python int or an integer tensor)."""
    if tf.is_tensor(data):
        salt = mix32(tf.cast(data, tf.uint32) * _u32(_GOLDEN) + _u32(0x632BE5AB))
    else:
        # Every dropout site folds in its own constant: hashing it here keeps
        # a dozen ops per site out of the step's graph (and its tracing).
        salt = _u32(_mix32_int((data & 0xFFFFFFFF) * _GOLDEN + 0x632BE5AB))
    return mix32(tf.bitwise.bitwise_xor(key, salt))


def uniform(shape, key):
    """Uniform [0, 1) float32 of static `shape`.

    `key` is a scalar, or a [shape[0]] vector giving each row its own stream.
    """
    shape = [int(d) for d in shape]
    row_size = 1
    for d in shape[1:]:
        row_size *= d
    key = tf.convert_to_tensor(key, tf.uint32)
    if key.shape.rank == 0:
        counter = tf.reshape(tf.range(shape[0] * row_size, dtype=tf.int32), shape)
        keys = key
    else:
        counter = tf.reshape(tf.range(row_size, dtype=tf.int32), [1] + shape[1:])
        keys = tf.reshape(key, [shape[0]] + [1] * (len(shape) - 1))
    return _counter_uniform(counter, keys)


def uniform_like(x, key):
    """Uniform [0, 1) float32 with the (possibly dynamic) shape of `x`; `key` as in `uniform`."""
    key = tf.convert_to_tensor(key, tf.uint32)
    shape = tf.shape(x)
    if key.shape.rank == 0:
        return _counter_uniform(tf.reshape(tf.range(tf.size(x, out_type=tf.int32)), shape), key)
    row_shape = shape[1:]
    counter = tf.reshape(tf.range(tf.reduce_prod(row_shape)), tf.concat([[1], row_shape], 0))
    keys = tf.reshape(key, tf.concat([[-1], tf.ones_like(row_shape)], 0))
    return _counter_uniform(counter, keys)


def _counter_uniform(counter, key):
    bits = mix32(mix32(tf.cast(counter, tf.uint32) * _u32(_GOLDEN) + key) + key)
    # The top 24 bits fill a float32 mantissa exactly.
    return tf.cast(tf.bitwise.right_shift(bits, _u32(8)), tf.float32) * (1.0 / (1 << 24))


def keep_mask(x, rate, key):
    """Boolean mask of x's shape, True with probability 1 - rate; `key` as in `uniform`."""
    if x.shape.is_fully_defined() and host_compiles_xla():
        return _compiled_keep_mask(tuple(x.shape), float(rate), key)
    return uniform_like(x, key) >= rate


@functools.cache
def host_compiles_xla() -> bool:
    """Whether XLA compiles for this machine's CPU: not in TensorFlow's TPU build."""
    with tf.init_scope():
        try:
            _compiled_keep_mask((1,), 0.5, _u32(0))
        # The TPU build says NotFoundError ("could not find registered transfer manager for
        # platform Host"); any failure of this one tiny kernel means the same on unseen hosts.
        except tf.errors.OpError:
            return False
    return True


@tf.function(jit_compile=True, autograph=False)
def _compiled_keep_mask(shape, rate, key):
    return uniform(shape, key) >= rate
