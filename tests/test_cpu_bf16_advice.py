"""The start-up line on bf16: read from /proc/cpuinfo-format flags."""

from electra_tf.training import distribute

CPUINFO = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 fma {extra}\n\n"


def _advice(tmp_path, extra, mixed_precision):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    return distribute.cpu_bf16_advice(mixed_precision, str(path))


def test_advice_follows_the_cpu_flags_and_the_setting(tmp_path):
    assert "AVX512_BF16: --mixed_precision=bfloat16 is likely to pay" in _advice(
        tmp_path, "avx512f avx512_bf16", "none"
    )
    assert "CPU has AMX-BF16 + AVX512_BF16: --mixed_precision=bfloat16 runs native" in _advice(
        tmp_path, "avx512_bf16 amx_bf16 amx_tile", "bfloat16"
    )
    # amx_bf16 without amx_tile is not usable AMX.
    assert "AMX-BF16" not in _advice(tmp_path, "avx512_bf16 amx_bf16", "none")
    assert "unlikely to pay" in _advice(tmp_path, "avx512f", "none")
    assert "likely slower than --mixed_precision=none" in _advice(tmp_path, "avx512f", "bfloat16")
    assert "unknown" in distribute.cpu_bf16_advice("none", str(tmp_path / "missing"))
