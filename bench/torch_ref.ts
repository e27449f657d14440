/**
 * Launcher for the PyTorch reference benchmark (bench/torch_ref.py).
 *
 * The script must run under Debian's /usr/bin/python3 (python3-torch 1.13); the
 * `python3` on PATH may be a different interpreter without torch.
 *
 * Needs `--allow-run=/usr/bin/python3`.
 */
import { fileURLToPath } from "node:url";

/** One JSON object as printed by bench/torch_ref.py. */
export interface TorchResult {
  [key: string]: unknown;
}

/** Interpreter that has Debian's python3-torch. */
export const TORCH_PYTHON = "/usr/bin/python3";

/** Absolute path of bench/torch_ref.py. */
export const TORCH_REF_PY: string = fileURLToPath(new URL("./torch_ref.py", import.meta.url));

const TAIL_CHARS = 2000;
const decoder = new TextDecoder();

function tail(s: string, n = TAIL_CHARS): string {
  const t = s.trimEnd();
  return t.length > n ? `…${t.slice(-n)}` : t;
}

function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
}

function threadEnv(threads: number): Record<string, string> {
  const t = String(threads);
  return { OMP_NUM_THREADS: t, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t };
}

/**
 * Runs bench/torch_ref.py with /usr/bin/python3; throws a clear Error (naming the
 * command, exit code and stderr tail) if python/torch is missing or the run fails.
 *
 * `args` maps option names (with or without leading `--`) to values, e.g.
 * `{ n: 1024, dtype: "float32", iters: 20 }` → `--n 1024 --dtype float32 --iters 20`.
 * The child gets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS (and MKL_NUM_THREADS) = threads.
 */
export async function runTorch(
  caseName: string,
  args: Record<string, string | number>,
  threads: number,
): Promise<TorchResult> {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`runTorch: threads must be a positive integer, got ${threads}`);
  }
  const argv = [TORCH_REF_PY, caseName, "--threads", String(threads)];
  for (const [k, v] of Object.entries(args)) {
    argv.push(k.startsWith("--") ? k : `--${k}`, String(v));
  }
  const env = threadEnv(threads);
  const cmdline = [
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    TORCH_PYTHON,
    ...argv,
  ].map(shellQuote).join(" ");

  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(TORCH_PYTHON, {
      args: argv,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? `${TORCH_PYTHON} not found (install Debian python3 and python3-torch)`
      : String(e);
    throw new Error(`PyTorch reference could not be started: ${why}\n  command: ${cmdline}`, {
      cause: e,
    });
  }
  const stdout = decoder.decode(out.stdout);
  const stderr = decoder.decode(out.stderr);
  if (!out.success) {
    const hint = /No module named ['"]?torch/.test(stderr)
      ? `\n  hint: ${TORCH_PYTHON} cannot import torch; install Debian's python3-torch`
      : "";
    throw new Error(
      `PyTorch reference failed (exit code ${out.code}${
        out.signal ? `, signal ${out.signal}` : ""
      })` +
        `\n  command: ${cmdline}${hint}\n  stderr (tail):\n${tail(stderr) || "(empty)"}`,
    );
  }
  const lines = stdout.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  const last = lines.at(-1);
  let parsed: unknown;
  try {
    parsed = last === undefined ? undefined : JSON.parse(last);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(
      `PyTorch reference printed no JSON object\n  command: ${cmdline}` +
        `\n  stdout (tail):\n${tail(stdout) || "(empty)"}\n  stderr (tail):\n${
          tail(stderr) || "(empty)"
        }`,
    );
  }
  return parsed as TorchResult;
}

let availability: Promise<boolean> | undefined;

/** true if /usr/bin/python3 can import torch (result cached per process). */
export function torchAvailable(): Promise<boolean> {
  availability ??= (async () => {
    try {
      const out = await new Deno.Command(TORCH_PYTHON, {
        args: ["-c", "import torch"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output();
      return out.success;
    } catch {
      return false;
    }
  })();
  return availability;
}
