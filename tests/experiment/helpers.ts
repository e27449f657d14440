/** Shared by the experiment tests: run the CLIs as subprocesses with a pinned code version. */
import { REPO_ROOT } from "../../lib/experiment/code_version.ts";
import { verifyBundle } from "../../lib/experiment/bundle.ts";

export { REPO_ROOT };

/** Trial ids must not move while a test compares runs, whatever else changes in the tree. */
export const CODE_VERSION = "test-code-version";
export const PINNED_ENV: Record<string, string> = {
  PROXIMA_CODE_VERSION: CODE_VERSION,
  PROXIMA_GIT_COMMIT: "none",
  NO_COLOR: "1",
};

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const dec = new TextDecoder();

/** Run `deno <args>` in the repo root with the pinned environment. */
export async function deno(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_ROOT,
    env: { ...PINNED_ENV, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `deno run -A cli/sweep.ts <args> --quiet`. */
export function sweep(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return deno(["run", "-A", "cli/sweep.ts", ...args, "--quiet"], env);
}

/** `deno run -A cli/verify.ts <args>`. */
export function verify(...args: string[]): Promise<CliResult> {
  return deno(["run", "-A", "cli/verify.ts", ...args]);
}

/** Visible entries of an experiment folder (bundles), each checked to be a complete bundle. */
export async function visibleBundles(expDir: string): Promise<string[]> {
  let names: string[] = [];
  try {
    names = (await Array.fromAsync(Deno.readDir(expDir))).map((e) => e.name)
      .filter((n) => !n.startsWith(".")).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  for (const n of names) {
    const v = await verifyBundle(`${expDir}/${n}`);
    if (!v.ok) {
      throw new Error(
        `visible but not a complete bundle: ${expDir}/${n}: ${JSON.stringify(v.problems)}`,
      );
    }
  }
  return names;
}

/** The per-trial failure blocks of a sweep's output: trial index -> message. */
export function failures(stdout: string): Map<number, string> {
  const out = new Map<number, string>();
  const re =
    /(?:^|\n)trial (\d+) [0-9a-f]{16} \([^\n]*\) failed:\n([\s\S]*?)(?=\n\ntrial \d+ |\n\nbundles:|\n\ninterrupted|(?![\s\S]))/g;
  for (const m of stdout.matchAll(re)) out.set(Number(m[1]), m[2]);
  return out;
}

/** Summary table rows: trial index -> status column. */
export function statuses(stdout: string): Map<number, string> {
  const lines = stdout.split("\n");
  const h = lines.findIndex((l) => /^\s*#\s+trial\s/.test(l));
  const out = new Map<number, string>();
  if (h < 0) return out;
  const cols = lines[h].trim().split(/\s{2,}/);
  const si = cols.indexOf("status");
  for (const l of lines.slice(h + 2)) {
    if (!l.trim()) break;
    const cells = l.trim().split(/\s{2,}/);
    out.set(Number(cells[0]), cells[si]);
  }
  return out;
}

export async function tempDir(prefix: string): Promise<string> {
  return await Deno.makeTempDir({ prefix: `proxima-${prefix}-` });
}

/**
 * Start `deno <args>` (repo root, pinned environment), wait until its work folder `work` holds a
 * checkpoint (`checkpoints/LATEST`), then SIGKILL it: the crash half of a kill-and-resume test.
 * Throws if no checkpoint appears within `timeoutMs`; asserts the run had not finished by then.
 */
export async function killAtFirstCheckpoint(
  args: string[],
  work: string,
  { timeoutMs = 120_000, pollMs = 5 }: { timeoutMs?: number; pollMs?: number } = {},
): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_ROOT,
    env: PINNED_ENV,
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  const deadline = Date.now() + timeoutMs;
  while (!exited && !(await Deno.stat(`${work}/checkpoints/LATEST`).catch(() => null))) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await status;
      throw new Error(`no checkpoint in ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  if (exited) throw new Error("the run finished before the kill");
  child.kill("SIGKILL");
  await status;
}
