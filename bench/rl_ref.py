#!/usr/bin/env python3
"""TRL side of `deno task bench rl`: GRPO updates with TRL's GRPOTrainer, one at a time on request.

Run with the anchor venv (torch 2.13, transformers, TRL, peft: `bash scripts/anchor_env.sh`);
bench/rl.ts starts it as `.venv-anchor/bin/python bench/rl_ref.py ...` with the tuned glibc
allocator (MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=1073741824) and N threads:

    python bench/rl_ref.py --folder DIR --prompts FILE.jsonl --threads 2 --completions 32 \
        --group 4 --new-tokens 32 --updates 5 [--lora-r 16] [--micro-batches 1]

The work matches Proxima's `lm` trial of the bench: the same model folder (float32), the same
plain prompts (no chat template), `--completions` responses per update in groups of `--group`,
exactly one optimizer step per update (steps_per_generation 1, num_iterations 1: no old-policy
pass), at most `--new-tokens` sampled tokens at temperature 1, reward = response length in
tokens, loss_type "grpo" (per-response means), ε 0.2, β 0.04 with k3 in the loss (the reference:
a frozen copy, or the base with the adapter off under LoRA), AdamW lr 1e-6, eps 1e-8, no weight
decay, clip 1.0, gradient checkpointing off. LoRA: r, alpha 2r, dropout 0, the seven
projections.

Protocol (stdout, one JSON line each): {"phase": "setup", "setup_ms", ...} when training begins
(process start to the first update: imports, model and reference load, trainer set-up); then
each stdin line "next" runs one update and answers {"update", "ms", "generation", "scoring",
"training", "tokens"} (ms; tokens = sampled tokens); "quit" or EOF ends the process.
"""

import argparse
import json
import os
import sys
import time

T0 = time.perf_counter()


def parse_args(argv):
    p = argparse.ArgumentParser(prog="rl_ref.py", description=__doc__.splitlines()[0])
    p.add_argument("--folder", required=True)
    p.add_argument("--prompts", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--completions", type=int, required=True)
    p.add_argument("--group", type=int, required=True)
    p.add_argument("--new-tokens", type=int, required=True)
    p.add_argument("--updates", type=int, required=True)
    p.add_argument("--lora-r", type=int, default=0)
    p.add_argument("--micro-batches", type=int, default=1)
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


# The protocol's channel: the real stdout; everything else (the Trainer prints its log dicts)
# goes to stderr.
PROTOCOL = sys.stdout
sys.stdout = sys.stderr


def emit(obj):
    PROTOCOL.write(json.dumps(obj) + "\n")
    PROTOCOL.flush()


def main(argv):
    a = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import tempfile

    import torch
    import transformers
    import trl
    from datasets import Dataset

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    with open(a.prompts) as f:
        prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
    per_update = a.completions // a.group
    # Enough rows for every update without a second epoch's reshuffle mattering.
    rows = [{"prompt": prompts[i % len(prompts)]} for i in range(per_update * (a.updates + 1))]
    dataset = Dataset.from_list(rows)
    tok = transformers.AutoTokenizer.from_pretrained(a.folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(a.folder, dtype=torch.float32)
    peft_config = None
    if a.lora_r:
        import peft

        peft_config = peft.LoraConfig(
            r=a.lora_r,
            lora_alpha=2 * a.lora_r,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        )

    def length_reward(completions, completion_ids=None, **_):
        return [float(len(c)) for c in completion_ids]

    out = a.out or tempfile.mkdtemp(prefix="proxima_rl_ref_")
    args = trl.GRPOConfig(
        output_dir=out,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=1,
        max_steps=a.updates,
        # --micro-batches m: one generation of `completions`, trained in m passes of
        # completions / m rows with their gradients accumulated into one optimizer step.
        per_device_train_batch_size=a.completions // a.micro_batches,
        gradient_accumulation_steps=a.micro_batches,
        steps_per_generation=a.micro_batches,
        num_iterations=1,
        num_generations=a.group,
        max_completion_length=a.new_tokens,
        temperature=1.0,
        top_p=1.0,
        beta=0.04,
        epsilon=0.2,
        loss_type="grpo",
        learning_rate=1e-6,
        lr_scheduler_type="constant",
        warmup_steps=0,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        max_grad_norm=1.0,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
    )
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=length_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        peft_config=peft_config,
    )

    # Phase timers: generation (`_generate`), scoring (the rest of generate-and-score: the
    # reference pass, rewards, advantages), training (the rest of the step).
    phases = {"generation": 0.0, "scoring": 0.0, "tokens": 0}
    gen, gen_score = trainer._generate, trainer._generate_and_score_completions

    def timed_generate(*args, **kw):
        t = time.perf_counter()
        r = gen(*args, **kw)
        phases["generation"] += (time.perf_counter() - t) * 1e3
        phases["tokens"] += sum(len(c) for c in r[1])
        return r

    def timed_gen_score(*args, **kw):
        t = time.perf_counter()
        g0 = phases["generation"]
        r = gen_score(*args, **kw)
        phases["scoring"] += (time.perf_counter() - t) * 1e3 - (phases["generation"] - g0)
        return r

    trainer._generate = timed_generate
    trainer._generate_and_score_completions = timed_gen_score

    class Lines(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            emit(
                {
                    "phase": "setup",
                    "setup_ms": (time.perf_counter() - T0) * 1e3,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "trl": trl.__version__,
                    "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
                }
            )

        def on_step_begin(self, args, state, control, **kw):
            line = sys.stdin.readline()
            if not line or line.strip() == "quit":
                PROTOCOL.flush()
                os._exit(0)
            phases.update(generation=0.0, scoring=0.0, tokens=0)
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            ms = (time.perf_counter() - self.t) * 1e3
            emit(
                {
                    "update": state.global_step,
                    "ms": ms,
                    "generation": phases["generation"],
                    "scoring": phases["scoring"],
                    "training": ms - phases["generation"] - phases["scoring"],
                    "tokens": phases["tokens"],
                }
            )

    trainer.add_callback(Lines())
    trainer.train()
    # Every update ran: wait for the driver's last line, then end.
    sys.stdin.readline()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as e:  # reported to the driver, which fails with it
        emit({"error": f"{type(e).__name__}: {e}"})
        raise
