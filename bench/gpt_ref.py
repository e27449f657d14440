#!/usr/bin/python3
"""PyTorch reference side of `deno task bench gpt`: one AdamW train step of a GPT-2.

Usage (Debian's /usr/bin/python3, which has python3-torch 1.13):

    /usr/bin/python3 bench/gpt_ref.py --threads 2 --batch 8 --seq 64 --embd 128 --layers 2 \
        --heads 4 --vocab 256 --steps 50 --warmup 5

The model is the math of lib/nn/gpt.ts (and HF GPT2LMHeadModel without dropout): token +
position embeddings, pre-LayerNorm blocks (fused qkv Linear, causal softmax attention with
1/sqrt(hd) scaling, tanh-GELU MLP of width 4d), final LayerNorm, LM head tied to the token
embedding. Loss: mean token cross entropy over all B*T positions (full causal LM loss).
AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on every tensor, as Proxima's
adamw), global grad-norm clip 1.0. Fixed random batch, generated once (not timed).

Prints exactly ONE JSON line on stdout. Threading as in bench/torch_ref.py: OMP/OpenBLAS
thread counts forced to --threads before torch is imported, OMP_WAIT_POLICY=PASSIVE unless
set otherwise. --foreach uses torch's multi-tensor AdamW (default: the
per-tensor loop, foreach=False, as bench/torch_ref.py).

--serve (used by bench/gpt.ts, so both sides are timed in alternating rounds on a noisy
machine): builds the model twice from the same init, once per optimizer variant ("loop" =
foreach=False, "foreach" = foreach=True), prints one JSON line {"ready": true, ...}, then
answers each stdin line "run <variant> <steps>" with one JSON line {"variant", "ms" (median
of the steps), "loss"}; "quit" (or EOF) ends it.
"""

import argparse
import json
import math
import os
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(prog="gpt_ref.py", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--embd", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE", "default"], default=None)
    p.add_argument("--foreach", action="store_true", help="multi-tensor AdamW")
    p.add_argument("--serve", action="store_true", help="alternating-rounds protocol on stdin")
    a = p.parse_args(argv)
    for n in ("threads", "batch", "seq", "embd", "layers", "heads", "vocab", "steps"):
        if getattr(a, n) < 1:
            p.error(f"--{n} must be >= 1")
    if a.embd % a.heads:
        p.error("--embd must be divisible by --heads")
    return a


def build(torch, a):
    nn, F = torch.nn, torch.nn.functional
    d, H = a.embd, a.heads
    hd = d // H

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(d, eps=1e-5)
            self.c_attn = nn.Linear(d, 3 * d)
            self.c_proj = nn.Linear(d, d)
            self.ln_2 = nn.LayerNorm(d, eps=1e-5)
            self.c_fc = nn.Linear(d, 4 * d)
            self.mlp_proj = nn.Linear(4 * d, d)

        def forward(self, x, causal):
            B, T, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
            q = q.view(B, T, H, hd).transpose(1, 2)
            k = k.view(B, T, H, hd).transpose(1, 2)
            v = v.view(B, T, H, hd).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            att = att.masked_fill(~causal[:T, :T], float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, d)
            x = x + self.c_proj(y)
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(a.vocab, d)
            self.wpe = nn.Embedding(a.seq, d)
            self.h = nn.ModuleList([Block() for _ in range(a.layers)])
            self.ln_f = nn.LayerNorm(d, eps=1e-5)
            self.register_buffer("causal", torch.ones(a.seq, a.seq, dtype=torch.bool).tril())
            for n, p in self.named_parameters():  # GPT-2 init
                if n.endswith("bias"):
                    nn.init.zeros_(p)
                elif "ln_" in n:
                    nn.init.ones_(p)
                else:
                    std = 0.02 / math.sqrt(2 * a.layers) if n.endswith("proj.weight") else 0.02
                    nn.init.normal_(p, 0.0, std)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            for blk in self.h:
                x = blk(x, self.causal)
            return self.ln_f(x) @ self.wte.weight.t()  # tied head

    return GPT()


def main(argv):
    a = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_ref import blas_info, import_torch, stats_ms

    torch, policy = import_torch(a, "gpt_ref.py")
    if torch is None:
        return 3
    torch.set_num_threads(a.threads)
    info = blas_info(a.threads)
    g = torch.Generator().manual_seed(a.seed + 1)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)

    def make_step(foreach):
        torch.manual_seed(a.seed)  # same init for every variant
        model = build(torch, a)
        params = list(model.parameters())
        opt = torch.optim.AdamW(
            params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=foreach
        )
        ce = torch.nn.functional.cross_entropy

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = ce(logits.view(-1, a.vocab), y.view(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return loss

        return step, sum(p.numel() for p in params)

    def timed(step, n):
        times, loss = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            loss = step()
            times.append(time.perf_counter() - t0)
        return times, float(loss)

    meta = {
        "threads": a.threads,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": policy,
        "torch": torch.__version__,
        **info,
    }
    if a.serve:
        steps = {v: make_step(v == "foreach")[0] for v in ("loop", "foreach")}
        for step in steps.values():
            timed(step, a.warmup)
        sys.stdout.write(json.dumps({"ready": True, **meta}) + "\n")
        sys.stdout.flush()
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] != "run" or len(cmd) != 3 or cmd[1] not in steps:
                sys.stdout.write(json.dumps({"error": f"bad command: {line.strip()}"}) + "\n")
            else:
                times, loss = timed(steps[cmd[1]], int(cmd[2]))
                med = stats_ms(times)[0]
                sys.stdout.write(json.dumps({"variant": cmd[1], "ms": med, "loss": loss}) + "\n")
            sys.stdout.flush()
        return 0

    step, n_params = make_step(a.foreach)
    timed(step, a.warmup)
    times, last = timed(step, a.steps)
    med, mean, mn = stats_ms(times)
    res = {
        "case": "gpt",
        "foreach": a.foreach,
        "ms_per_step": med,
        "ms_mean": mean,
        "ms_min": mn,
        "params": n_params,
        "final_loss": last,
        **meta,
    }
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
