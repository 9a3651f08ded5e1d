"""Pinned CPU numerics: the same command gives the same bits on every x86-64 CPU with AVX2.

Which kernels a CPU run uses is decided at run time by the CPU, not by the code: ATen dispatches its vectorised
kernels (log_softmax, silu, ...) to the widest ISA it finds (AVX-512 where there is one), MKL picks a GEMM code path
per CPU, and oneDNN likewise. Each choice changes the last bits of a result, and RL sampling turns last bits into
other trajectories, so a claim measured on one CPU can flip on another. Pinned (the default), every job runs the
AVX2 path of all three, which every x86-64 CPU of the last decade has:

    ATEN_CPU_CAPABILITY=avx2       ATen's CPU kernels at AVX2 (read on first dispatch)
    MKL_CBWR=AVX2,STRICT           MKL's conditional numerical reproducibility: the AVX2 branch, strict mode
                                   (results independent of memory alignment and thread count)
    ONEDNN_MAX_CPU_ISA=AVX2        oneDNN (mkldnn) kernels no wider than AVX2

and torch's deterministic algorithms on. The variables are read when the libraries first run a kernel, so they are
set when `repro` is imported, before any repro module imports torch (repro/__init__.py); a variable the user set
is left as it is and reported. `REPRO_NUMERICS=native` turns the pinning off (each CPU's fastest kernels; the
numbers then depend on the CPU); every run's provenance records which was in effect and what ATen really used.
The thread count did not change these kernels' bits in our measurements (1 vs 2 threads, docs/numerics.md); it is
recorded too. Cost and the table of CPUs met so far: docs/numerics.md.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import MutableMapping
from typing import Any

SWITCH = "REPRO_NUMERICS"  # "pinned" (default) or "native"
PINNED: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def wanted(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Whether this process should pin (REPRO_NUMERICS unset or "pinned"); a ValueError names a bad value."""
    value = environ.get(SWITCH, "pinned").strip().lower()
    if value not in ("pinned", "native"):
        raise ValueError(f"{SWITCH}={value!r}: use pinned (the default: the same bits on every AVX2 CPU) or native")
    return value == "pinned"


def pin_environment(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set the pinned variables the user has not set; returns whether pinning is on. Call before torch runs."""
    if not wanted(environ):
        return False
    for name, value in PINNED.items():
        environ.setdefault(name, value)
    return True


def use_deterministic_torch() -> None:
    """torch's deterministic algorithms, when pinned (warn-only: an op without one says so instead of failing)."""
    if wanted():
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def state() -> dict[str, Any]:
    """What this process runs with: the switch, each variable's value, the kernels ATen really dispatches to, threads."""
    import torch

    pinned = wanted() and all(os.environ.get(k) == v for k, v in PINNED.items())
    return {
        "pinned": pinned,
        "switch": os.environ.get(SWITCH, "pinned"),
        "env": {name: os.environ.get(name) for name in PINNED},
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


def kernel_fingerprints() -> dict[str, str]:
    """sha256 (first 16 hex digits) of the kernels a tiny model's step is made of, on fixed seeded inputs: cheap
    (well under a second) and enough to tell two CPUs' numerics apart."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1000, generator=g)  # [64, 1000]: a tail that is not a multiple of any vector width
    w = torch.randn(384, 1000, generator=g)  # [384, 1000]
    q, k, v = (torch.randn(2, 4, 33, 16, generator=g) for _ in range(3))  # [B, heads, T, d]
    outputs = {
        "log_softmax": torch.log_softmax(x, dim=-1),
        "silu": F.silu(x),
        "linear": F.linear(x, w),
        "matmul": x @ w.T,
        "rms_norm": x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6),
        "exp_sum": x.exp().sum(-1),
        "sdpa": F.scaled_dot_product_attention(q, k, v, is_causal=True),
    }
    return {name: _digest(t) for name, t in outputs.items()}


def _digest(tensor: Any) -> str:
    return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()[:16]
