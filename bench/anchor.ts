/**
 * The benchmarks' anchor: PyTorch 2.13 (a venv with torch 2.13.0+cpu, transformers and TRL, built
 * by `bash scripts/anchor_env.sh` at .venv-anchor/, or $PROXIMA_TORCH_PYTHON) under glibc's tuned allocator
 * (MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=1073741824: freed memory stays in the heap
 * instead of being unmapped and faulted in again, which made torch's GPT-2-small step 5.4 s ->
 * 3.2 s in issue 16), OMP_WAIT_POLICY=PASSIVE and the same thread count as Proxima.
 *
 * {@link LineChild} drives a long-lived process over a line protocol (one JSON object per
 * line), so a bench alternates the two sides in rounds on a shared, noisy machine; it reads the
 * child's RSS from /proc and kills it above a limit.
 * @module
 */

import { UserError } from "../lib/errors.ts";

/** The anchor environment is missing or broken: a user's set-up problem, not a bench bug. */
export class AnchorMissingError extends UserError {
  override name = "AnchorMissingError";
}

/** Where `bash scripts/anchor_env.sh` builds the anchor's venv. */
export const ANCHOR_VENV: string = new URL("../.venv-anchor/", import.meta.url).pathname;

/**
 * The anchor's interpreter: $PROXIMA_TORCH_PYTHON, else the project's .venv-anchor/bin/python.
 * Throws {@link AnchorMissingError} naming the command that builds it when neither exists.
 */
export function anchorPython(): string {
  const fromEnv = Deno.env.get("PROXIMA_TORCH_PYTHON");
  const python = fromEnv ?? `${ANCHOR_VENV}bin/python`;
  try {
    if (Deno.statSync(python).isFile) return python;
  } catch { /* reported below */ }
  throw new AnchorMissingError(
    fromEnv
      ? `PROXIMA_TORCH_PYTHON=${fromEnv}: no such interpreter
  fix: point it at a venv's ` +
        `bin/python with torch 2.13, or unset it and run: bash scripts/anchor_env.sh`
      : `the benchmarks' anchor (PyTorch 2.13 + transformers + TRL) is not built: ${python} ` +
        `does not exist
  fix: bash scripts/anchor_env.sh   (a one-time venv at .venv-anchor/; ` +
        `or set PROXIMA_TORCH_PYTHON to an interpreter that has them)`,
  );
}

/** The tuned glibc allocator settings of the anchor. */
export const TUNED_MALLOC: Record<string, string> = {
  MALLOC_MMAP_THRESHOLD_: "1073741824",
  MALLOC_TRIM_THRESHOLD_: "1073741824",
};

/** The anchor's environment for `threads` threads. */
export function anchorEnv(threads: number): Record<string, string> {
  const t = String(threads);
  return {
    OMP_NUM_THREADS: t,
    MKL_NUM_THREADS: t,
    OPENBLAS_NUM_THREADS: t,
    OMP_WAIT_POLICY: "PASSIVE",
    ...TUNED_MALLOC,
  };
}

/** One line describing the anchor, for bench output. */
export function anchorLine(meta: Record<string, unknown>, threads: number): string {
  return `anchor: PyTorch ${meta.torch} (${anchorPython()}), MALLOC_MMAP_THRESHOLD_=` +
    `MALLOC_TRIM_THRESHOLD_=1073741824, OMP_WAIT_POLICY=PASSIVE, ${threads} threads on both ` +
    `sides; warm-up excluded; the sides alternate in rounds`;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A markdown table. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)]
    .join("\n");
}

/** A child killed from outside the bench (the OOM killer): a message naming the fix, no stack. */
export class ChildKilledError extends UserError {
  override name = "ChildKilledError";
}

/** A child process answering one JSON line per command line, with an RSS watchdog. */
export class LineChild {
  private lines: AsyncIterator<string>;
  private writer: WritableStreamDefaultWriter<Uint8Array>;
  private stderr = "";
  private watch?: ReturnType<typeof setInterval>;
  killedFor?: string;

  private constructor(
    readonly label: string,
    private readonly child: Deno.ChildProcess,
    readonly cmd: string,
    maxRssGb?: number,
  ) {
    this.lines = readLines(child.stdout);
    this.writer = child.stdin.getWriter();
    (async () => {
      for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.stderr = (this.stderr + c).slice(-4000);
      }
    })().catch(() => {});
    if (maxRssGb) {
      this.watch = setInterval(() => {
        const rss = this.status().VmRSS ?? 0;
        if (rss > maxRssGb * 1e9) {
          this.killedFor = `RSS ${(rss / 1e9).toFixed(1)} GB > ${maxRssGb} GB`;
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }
      }, 200);
    }
  }

  /** Start `exe args` with exactly `env` (plus PATH/HOME); `maxRssGb` arms the watchdog. */
  static spawn(
    label: string,
    exe: string,
    args: string[],
    env: Record<string, string>,
    maxRssGb?: number,
  ): LineChild {
    const cmd = [...Object.entries(env).map(([k, v]) => `${k}=${v}`), exe, ...args].join(" ");
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(exe, {
        args,
        env,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      throw new Error(`${label} could not be started (${e}); command: ${cmd}`);
    }
    return new LineChild(label, child, cmd, maxRssGb);
  }

  /** /proc/<pid>/status memory fields in bytes (VmRSS, VmHWM, ...). */
  status(): Record<string, number> {
    try {
      const s = Deno.readTextFileSync(`/proc/${this.child.pid}/status`);
      const out: Record<string, number> = {};
      for (const m of s.matchAll(/^(Vm\w+):\s+(\d+) kB/gm)) out[m[1]] = Number(m[2]) * 1024;
      return out;
    } catch {
      return {};
    }
  }

  /** Reset the peak RSS (VmHWM) to the current RSS (Linux clear_refs). */
  resetPeak(): void {
    Deno.writeTextFileSync(`/proc/${this.child.pid}/clear_refs`, "5");
  }

  /** The next JSON line; a clear error (with the command and stderr) if the child ended. */
  async read(): Promise<Record<string, unknown>> {
    const r = await this.lines.next();
    if (r.done) {
      const st = await this.child.status;
      if (st.signal === "SIGKILL" && !this.killedFor) {
        // Not our watchdog: on Linux that is the kernel's OOM killer (the machine, not this
        // child's limit, ran out of memory), which is no bug of the child's.
        throw new ChildKilledError(
          `${this.label} was killed (SIGKILL) by something other than the bench's RSS watchdog: ` +
            "most likely the machine ran out of memory (the kernel's OOM killer: see dmesg); " +
            "rerun when other jobs hold less memory, or run that shape's sides one after the " +
            `other (--rl-sequential NAME); command: ${this.cmd}`,
        );
      }
      throw new Error(
        `${this.label} ended (exit ${st.code}${
          this.killedFor ? `, killed: ${this.killedFor}` : ""
        }); command: ${this.cmd}\n${this.stderr.slice(-2000)}`,
      );
    }
    const obj = JSON.parse(r.value);
    if (obj.error) throw new Error(`${this.label}: ${obj.error}`);
    return obj;
  }

  /** Send one command line and read its answer. */
  async ask(cmd: string): Promise<Record<string, unknown>> {
    try {
      await this.writer.write(new TextEncoder().encode(cmd + "\n"));
    } catch {
      // The child is gone (e.g. killed by the watchdog): read() says how it ended.
    }
    return await this.read();
  }

  async close(): Promise<void> {
    if (this.watch !== undefined) clearInterval(this.watch);
    await this.writer.write(new TextEncoder().encode("quit\n")).catch(() => {});
    await this.writer.close().catch(() => {});
    await this.child.status;
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line.startsWith("{")) yield line;
    }
  }
}
