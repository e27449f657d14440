#!/usr/bin/env python3
"""PyTorch side of `deno task bench scale`: train steps and greedy rollouts of a real-size model.

Run with the venv that has torch 2.13 and transformers (bench/scale.ts starts it as
`.venv-anchor/bin/python bench/scale_ref.py ...` with the tuned glibc allocator,
MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824, and N threads):

    python bench/scale_ref.py --folder DIR --batch FILE --threads 2 [--adapter DIR]

- `--folder`: a transformers model folder written by Proxima (config.json + model.safetensors),
  so both sides train the SAME weights; `--adapter`: a PEFT LoRA folder written by Proxima
  (the adapters are trained, the base is frozen), loaded with peft's PeftModel.
- `--batch`: JSON {"tokens": [[...]], "targets": [[...]], "prompts": [[...]]}.
- Train step (same math as Proxima's): logits of the model on `tokens`, loss = mean token cross
  entropy against `targets` over all B*T positions, backward, clip_grad_norm_(1.0), AdamW
  (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on every trainable tensor). The
  model is in eval mode (no dropout); `--optim` picks torch's AdamW implementation: "default"
  (what AdamW() gives on CPU: the per-tensor loop), "foreach" or "fused".
- Rollout: transformers' `generate`, greedy, left-padded `prompts`, exactly N new tokens
  (no EOS), KV cache, under torch.inference_mode(), on the folder's weights (adapters off).

Protocol (stdout, one JSON line each): first {"ready": true, "torch", "transformers", ...};
then per stdin line: "train K" -> {"ms": [K step times], "loss": [K losses]};
"generate N [R]" -> {"ms": wall time, "tokens": [[N new ids] per prompt]} (the first R
prompts, default all); "quit" or EOF ends.
"""

import argparse
import contextlib
import json
import os
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scale_ref.py", description=__doc__.splitlines()[0])
    p.add_argument("--folder", required=True)
    p.add_argument("--batch", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--adapter", default=None)
    p.add_argument("--optim", choices=["default", "foreach", "fused"], default="default")
    p.add_argument("--lr", type=float, default=1e-3)
    return p.parse_args(argv)


def main(argv):
    a = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    t0 = time.perf_counter()
    import torch
    import transformers

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    model = transformers.AutoModelForCausalLM.from_pretrained(a.folder, dtype=torch.float32)
    if a.adapter:
        import peft

        model = peft.PeftModel.from_pretrained(model, a.adapter, is_trainable=True)
    model.eval()  # no dropout; autograd still on
    with open(a.batch) as f:
        batch = json.load(f)
    tokens = torch.tensor(batch["tokens"], dtype=torch.long)
    targets = torch.tensor(batch["targets"], dtype=torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    kw = {"foreach": True} if a.optim == "foreach" else {"fused": True} if a.optim == "fused" else {}
    opt = torch.optim.AdamW(
        params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, **kw
    )
    ce = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=tokens).logits
        loss = ce(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return float(loss)

    prompts = batch.get("prompts", [])

    def left_padded(ps):
        W = max(len(p) for p in ps)
        ids = torch.tensor([[0] * (W - len(p)) + p for p in ps], dtype=torch.long)
        mask = torch.tensor([[0] * (W - len(p)) + [1] * len(p) for p in ps], dtype=torch.long)
        return ids, mask, W

    def generate(n, rows=None):
        ids, mask, W = left_padded(prompts[:rows])
        gen = model.generation_config
        gen.eos_token_id = None
        gen.pad_token_id = 0
        # Rollouts use the base weights (Proxima's side generates from the model folder).
        base = model.disable_adapter() if a.adapter else contextlib.nullcontext()
        with torch.inference_mode(), base:
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                generation_config=gen,
            )
        return out[:, W:].tolist()

    out = sys.stdout
    out.write(
        json.dumps(
            {
                "ready": True,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "threads": torch.get_num_threads(),
                "optim": a.optim,
                "trainable": sum(p.numel() for p in params),
                "load_ms": (time.perf_counter() - t0) * 1e3,
                "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            }
        )
        + "\n"
    )
    out.flush()
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        try:
            if cmd[0] == "train" and len(cmd) == 2:
                ms, losses = [], []
                for _ in range(int(cmd[1])):
                    t = time.perf_counter()
                    losses.append(step())
                    ms.append((time.perf_counter() - t) * 1e3)
                res = {"ms": ms, "loss": losses}
            elif cmd[0] == "generate" and len(cmd) in (2, 3):
                t = time.perf_counter()
                toks = generate(int(cmd[1]), int(cmd[2]) if len(cmd) == 3 else None)
                res = {"ms": (time.perf_counter() - t) * 1e3, "tokens": toks}
            else:
                res = {"error": f"bad command: {line.strip()}"}
        except Exception as e:  # reported to the driver, which fails with it
            res = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(res) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
