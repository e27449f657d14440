#!/usr/bin/python3
"""PyTorch reference side of `deno task bench engine`.

Usage (must be run with Debian's /usr/bin/python3, which has python3-torch):

    /usr/bin/python3 bench/torch_ref.py matmul --threads 2 --n 1024 --dtype float32 --iters 20
    /usr/bin/python3 bench/torch_ref.py mlp --threads 2 --batch 256 --width 512 --depth 3 \
        --in 512 --out 1 --steps 50 --warmup 5 --dtype float32
    python bench/torch_ref.py serve --threads 2   # bench engine: 'mlp K' / 'matmul K' on stdin

Prints exactly ONE JSON line on stdout. Diagnostics go to stderr.

Threading: torch.set_num_threads(N) only sizes torch's OpenMP pool; the BLAS
(Debian's libopenblas0-pthread behind libblas.so.3) keeps its own pthread pool,
sized by OPENBLAS_NUM_THREADS at load time. Both env vars are therefore forced to
N here *before* torch is imported, and openblas_set_num_threads(N) is called too,
so the whole process really uses N threads.

OMP_WAIT_POLICY defaults to PASSIVE: with both pools on the same N cores, libgomp's
default spin-waiting workers steal the cores OpenBLAS' workers need; on a 2-vCPU box
this made the MLP step ~1.5x slower at the median and ~3x at the mean (huge
outliers). PASSIVE is the fairest (fastest, stable) PyTorch config for this
comparison; pass --omp-wait-policy default to measure the untuned behaviour.
"""

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(prog="torch_ref.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="case", required=True)

    def common(sp):
        sp.add_argument("--threads", type=int, required=True, help="intra-op + BLAS threads")
        sp.add_argument("--dtype", choices=["float32", "float64"], default="float32")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument(
            "--omp-wait-policy",
            choices=["PASSIVE", "ACTIVE", "default"],
            default=None,
            help="libgomp wait policy (default: $OMP_WAIT_POLICY if set, else PASSIVE)",
        )

    mm = sub.add_parser("matmul", help="time C = A @ B for n x n matrices")
    common(mm)
    mm.add_argument("--n", type=int, default=1024)
    mm.add_argument("--iters", type=int, default=20)
    mm.add_argument("--warmup", type=int, default=3)

    mlp = sub.add_parser("mlp", help="time one AdamW train step of a tanh MLP")
    common(mlp)
    mlp.add_argument("--batch", type=int, default=256)
    mlp.add_argument("--width", type=int, default=512)
    mlp.add_argument("--depth", type=int, default=3, help="number of hidden Linear+tanh layers")
    mlp.add_argument("--in", dest="in_features", type=int, default=512)
    mlp.add_argument("--out", dest="out_features", type=int, default=1)
    mlp.add_argument("--steps", type=int, default=50)
    mlp.add_argument("--warmup", type=int, default=5)

    sv = sub.add_parser(
        "serve",
        help="alternating rounds over stdin: 'mlp K' (K train steps), 'matmul K' (K products)",
    )
    common(sv)
    sv.add_argument("--n", type=int, default=1024)
    sv.add_argument("--batch", type=int, default=256)
    sv.add_argument("--width", type=int, default=512)
    sv.add_argument("--depth", type=int, default=3)
    sv.add_argument("--in", dest="in_features", type=int, default=512)
    sv.add_argument("--out", dest="out_features", type=int, default=1)
    sv.add_argument("--warmup", type=int, default=5)

    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be >= 1")
    for name in ("n", "iters", "batch", "width", "depth", "in_features", "out_features", "steps"):
        if getattr(a, name, 1) < 1:
            p.error(f"--{name.replace('_features', '')} must be >= 1")
    if a.warmup < 0:
        p.error("--warmup must be >= 0")
    return a


def blas_info(threads):
    """Find the BLAS actually mapped into this process; pin OpenBLAS' thread count."""
    info = {"blas": "unknown"}
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if line.strip() else ""
                if path.startswith("/") and ("blas" in path or "lapack" in path or "mkl" in path):
                    libs.add(path)
    except OSError:
        pass
    info["blas_libs"] = sorted(libs)
    openblas = [p for p in libs if "libopenblas" in os.path.basename(p)]
    if openblas:
        try:
            import ctypes

            lib = ctypes.CDLL(openblas[0])
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_set_num_threads(ctypes.c_int(threads))
            info["blas"] = "openblas"
            info["blas_config"] = lib.openblas_get_config().decode().strip()
            info["blas_core"] = lib.openblas_get_corename().decode().strip()
            info["blas_threads"] = int(lib.openblas_get_num_threads())
        except (OSError, AttributeError) as e:  # pragma: no cover - diagnostics only
            info["blas"] = "openblas?"
            info["blas_error"] = str(e)
    elif any("mkl" in p for p in libs):
        info["blas"] = "mkl"
    return info


def stats_ms(times_s):
    ms = [t * 1e3 for t in times_s]
    return statistics.median(ms), statistics.fmean(ms), min(ms)


def run_matmul(a, torch, dt):
    n = a.n
    g = torch.Generator().manual_seed(a.seed)
    A = torch.randn(n, n, generator=g, dtype=dt)
    B = torch.randn(n, n, generator=g, dtype=dt)
    with torch.no_grad():
        for _ in range(a.warmup):
            C = A @ B
        times = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            C = A @ B
            times.append(time.perf_counter() - t0)
    med, mean, mn = stats_ms(times)
    flop = 2.0 * n ** 3
    return {
        "case": "matmul",
        "n": n,
        "dtype": a.dtype,
        "iters": a.iters,
        "ms": med,
        "ms_mean": mean,
        "ms_min": mn,
        "gflops": flop / (med / 1e3) / 1e9,
        "gflops_best": flop / (mn / 1e3) / 1e9,
        "checksum": float(C[0, 0]),
    }


def make_mlp_step(a, torch, dt):
    """The MLP train step of the `mlp` case: (step function returning the loss, n_params)."""
    nn = torch.nn
    torch.manual_seed(a.seed)
    layers = []
    fan_in = a.in_features
    for _ in range(a.depth):
        layers += [nn.Linear(fan_in, a.width), nn.Tanh()]
        fan_in = a.width
    layers.append(nn.Linear(fan_in, a.out_features))
    model = nn.Sequential(*layers).to(dt)
    params = [p for p in model.parameters()]
    g = torch.Generator().manual_seed(a.seed + 1)
    x = torch.randn(a.batch, a.in_features, generator=g, dtype=dt)
    y = torch.randn(a.batch, a.out_features, generator=g, dtype=dt)
    opt = torch.optim.AdamW(
        params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=False
    )

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    return step, sum(p.numel() for p in params)


def serve(a, torch, dt, meta):
    """Print {"ready": ...}, then answer 'mlp K' / 'matmul K' lines with per-call times (ms)."""
    step, n_params = make_mlp_step(a, torch, dt)
    g = torch.Generator().manual_seed(a.seed)
    A = torch.randn(a.n, a.n, generator=g, dtype=dt)
    B = torch.randn(a.n, a.n, generator=g, dtype=dt)

    def product():
        with torch.no_grad():
            return A @ B

    for _ in range(a.warmup):
        step()
        product()
    sys.stdout.write(json.dumps({"ready": True, "params": n_params, **meta}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if len(cmd) != 2 or cmd[0] not in ("mlp", "matmul"):
            res = {"error": f"bad command: {line.strip()}"}
        else:
            ms, loss = [], None
            for _ in range(int(cmd[1])):
                t0 = time.perf_counter()
                loss = step() if cmd[0] == "mlp" else product()
                ms.append((time.perf_counter() - t0) * 1e3)
            res = {"ms": ms, **({"loss": loss.item()} if cmd[0] == "mlp" else {})}
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()
    return 0


def run_mlp(a, torch, dt):
    nn = torch.nn
    torch.manual_seed(a.seed)
    layers = []
    fan_in = a.in_features
    for _ in range(a.depth):
        layers += [nn.Linear(fan_in, a.width), nn.Tanh()]
        fan_in = a.width
    layers.append(nn.Linear(fan_in, a.out_features))
    model = nn.Sequential(*layers).to(dt)
    params = [p for p in model.parameters()]
    n_params = sum(p.numel() for p in params)

    # Fixed batch, generated once (not timed).
    g = torch.Generator().manual_seed(a.seed + 1)
    x = torch.randn(a.batch, a.in_features, generator=g, dtype=dt)
    y = torch.randn(a.batch, a.out_features, generator=g, dtype=dt)

    opt = torch.optim.AdamW(
        params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=False
    )
    mse = nn.functional.mse_loss

    def step():
        opt.zero_grad(set_to_none=True)
        loss = mse(model(x), y)  # mean over batch * out
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    first_loss = None
    for _ in range(a.warmup):
        loss = step()
        if first_loss is None:
            first_loss = float(loss)
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
        if first_loss is None:
            first_loss = float(loss)  # after timing, so the sync is not counted
    med, mean, mn = stats_ms(times)
    return {
        "case": "mlp",
        "ms_per_step": med,
        "ms_mean": mean,
        "ms_min": mn,
        "params": n_params,
        "final_loss": float(loss),  # loss computed in the last step (before its update)
        "first_loss": first_loss,
        "batch": a.batch,
        "width": a.width,
        "depth": a.depth,
        "in": a.in_features,
        "out": a.out_features,
        "steps": a.steps,
        "warmup": a.warmup,
        "dtype": a.dtype,
    }


def import_torch(a, script):
    """Pin BLAS/OpenMP threads and the OpenMP wait policy, then import torch.

    The environment must be set before `import torch` (OpenMP and OpenBLAS read it at load).
    Returns (torch, policy), or (None, policy) after printing why torch cannot be imported.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    policy = a.omp_wait_policy or os.environ.get("OMP_WAIT_POLICY") or "PASSIVE"
    if policy == "default":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = policy
    try:
        import torch
    except ImportError as e:
        print(
            f"{script}: cannot import torch with {sys.executable}: {e}. "
            "Run with /usr/bin/python3 (Debian python3-torch).",
            file=sys.stderr,
        )
        return None, policy
    return torch, policy


def main(argv):
    a = parse_args(argv)
    torch, policy = import_torch(a, "torch_ref.py")
    if torch is None:
        return 3
    torch.set_num_threads(a.threads)
    info = blas_info(a.threads)
    dt = getattr(torch, a.dtype)
    if a.case == "serve":
        meta = {
            "threads": a.threads,
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": policy,
            "torch": torch.__version__,
            "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            **info,
        }
        return serve(a, torch, dt, meta)
    res = run_matmul(a, torch, dt) if a.case == "matmul" else run_mlp(a, torch, dt)
    res.update(
        {
            "threads": a.threads,
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": policy,
            "torch": torch.__version__,
            **info,
        }
    )
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
