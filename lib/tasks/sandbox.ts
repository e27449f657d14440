/**
 * A sandbox for generated code: one ES module run in a Deno Worker with NO permissions and a
 * time limit. Nothing the code does can reach the host: reading or writing files, the network,
 * subprocesses, environment variables, FFI and system info are all denied
 * (`deno: { permissions: "none" }`, which needs the `worker-options` unstable feature, enabled
 * in deno.json), and a worker still running at the time limit is terminated (V8 stops it even
 * inside `while (true) {}`).
 *
 * Protocol: the worker runs a fixed harness; the code is sent at once, and the harness says
 * "started" when it receives it: the clock starts then, so the limit measures the code, not the
 * worker's start-up (which has its own, generous limit). The harness imports the code as a module (a `data:` URL, `text/javascript` or `text/jsx`), takes
 * its default export — calling it (and awaiting the result) when it is a function — and posts
 * the value back; it must be structured-cloneable (plain data). Every failure becomes a result,
 * never an exception: `{ ok: false, error }` for code that throws, fails to parse, is denied a
 * permission or returns something uncloneable; `{ ok: false, timedOut: true }` at the limit.
 *
 * JSX: with `jsx: true` the module is transpiled by Deno as JSX (classic runtime, so a
 * `/** @jsx h *\/` pragma picks the factory); {@link runComponentInSandbox} adds a tiny
 * runtime (`h(type, props, ...children) -> { type, props, children }`) and calls a component.
 *
 * @example
 * ```ts
 * await runInSandbox("export default 6 * 7;"); // { ok: true, result: 42, timedOut: false, ms }
 * await runInSandbox('export default await Deno.readTextFile("/etc/passwd");');
 * // { ok: false, error: 'NotCapable: Requires read access to "/etc/passwd", ...', timedOut: false }
 * await runInSandbox("while (true) {}", { timeoutMs: 200 }); // { ok: false, timedOut: true, ... }
 * ```
 * @module
 */

/** What {@link runInSandbox} returns (it never throws for anything the code does). */
export interface SandboxResult {
  /** The code ran and its (default export's) value came back. */
  ok: boolean;
  /** The value, when ok. */
  result?: unknown;
  /** Why not, when not ok (the error's text, colour codes removed). */
  error?: string;
  /** The code was still running at the time limit and the worker was terminated. */
  timedOut: boolean;
  /** Milliseconds from the worker receiving the code to the answer (or to the limit). */
  ms: number;
}

/** Options of {@link runInSandbox}. */
export interface SandboxOptions {
  /** Time limit for the code, from when the worker receives it (default 1000 ms). */
  timeoutMs?: number;
  /** Transpile the module as JSX (default false: plain JavaScript). */
  jsx?: boolean;
  /** Limit for the worker to start (default 10 000 ms; a busy machine can be slow). */
  startTimeoutMs?: number;
}

/** The harness every sandbox worker runs (fixed code: says started, imports, answers once). */
const HARNESS = `
self.onmessage = async (e) => {
  self.onmessage = null; // one run per worker
  self.postMessage({ started: true });
  let answer;
  try {
    const m = await import(e.data);
    let v = m.default;
    if (typeof v === "function") v = await v();
    answer = { ok: true, result: v };
  } catch (err) {
    answer = { ok: false, error: String(err && err.stack ? err.stack : err) };
  }
  try {
    self.postMessage(answer);
  } catch (err) {
    self.postMessage({ ok: false, error: "the result cannot be sent back: " + String(err) });
  }
};
`;

const dataUrl = (mediaType: string, text: string) =>
  `data:${mediaType};base64,${base64(new TextEncoder().encode(text))}`;

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

// deno-lint-ignore no-control-regex
const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");

/**
 * Run `source` (an ES module) in a Worker with no permissions; its default export (called if a
 * function, awaited) is the result. See the module doc for the protocol.
 */
export function runInSandbox(source: string, opts: SandboxOptions = {}): Promise<SandboxResult> {
  const timeoutMs = opts.timeoutMs ?? 1000;
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  if (!(timeoutMs > 0) || !(startTimeoutMs > 0)) {
    throw new RangeError(`runInSandbox: time limits must be > 0 (got ${timeoutMs})`);
  }
  const code = dataUrl(opts.jsx ? "text/jsx" : "text/javascript", source);
  const worker = new Worker(dataUrl("text/javascript", HARNESS), {
    type: "module",
    name: "proxima-sandbox",
    deno: { permissions: "none" },
  } as WorkerOptions);
  return new Promise<SandboxResult>((resolve) => {
    let startedAt = -1, done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (r: Omit<SandboxResult, "ms">) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      worker.terminate();
      resolve({ ...r, ms: startedAt < 0 ? 0 : performance.now() - startedAt });
    };
    timer = setTimeout(
      () => finish({ ok: false, timedOut: false, error: "the sandbox worker did not start" }),
      startTimeoutMs,
    );
    worker.onmessage = (e: MessageEvent) => {
      const d = e.data as { started?: boolean; ok?: boolean; result?: unknown; error?: string };
      if (d?.started && startedAt < 0) {
        clearTimeout(timer);
        startedAt = performance.now();
        timer = setTimeout(
          () =>
            finish({ ok: false, timedOut: true, error: `time limit of ${timeoutMs} ms reached` }),
          timeoutMs,
        );
      } else if (d?.ok === true) finish({ ok: true, result: d.result, timedOut: false });
      else finish({ ok: false, timedOut: false, error: stripAnsi(String(d?.error)) });
    };
    // An uncaught error outside the import (e.g. thrown from a timer) also ends the run.
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      finish({ ok: false, timedOut: false, error: stripAnsi(String(e.message)) });
    };
    // Sent at once (queued until the harness listens; waiting for a "ready" message from the
    // worker first lost that message now and then under `deno test`).
    worker.postMessage(code);
  });
}

/** An element as the sandbox's JSX runtime builds it. */
export interface SandboxElement {
  type: string;
  props: Record<string, unknown>;
  children: unknown[];
}

/** True for a value shaped like {@link SandboxElement} (what a component must return). */
export function isElementLike(v: unknown): v is SandboxElement {
  if (typeof v !== "object" || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.type === "string" && typeof e.props === "object" && e.props !== null &&
    Array.isArray(e.children);
}

/** The JSX runtime prepended to components: classic factory `h`, fragments as `"#fragment"`. */
export const JSX_SHIM = "/** @jsx h */\n/** @jsxFrag Fragment */\n" +
  "const Fragment = '#fragment';\n" +
  "const h = (type, props, ...children) => ({ type: typeof type === 'function' ? " +
  "type.name || 'anonymous' : type, props: props ?? {}, children: children.flat() });\n";

/**
 * Run a generated component in the sandbox: {@link JSX_SHIM}, then `code` (which must declare
 * `name`), then `export default () => name({})`. `ok` only when the call returns an element
 * ({@link isElementLike}); a component that returns anything else gets `ok: false` with why.
 *
 * @example
 * ```ts
 * await runComponentInSandbox(" const SaveButton = () => <button>Save</button>;", "SaveButton");
 * // { ok: true, result: { type: "button", props: {}, children: ["Save"] }, timedOut: false, ms }
 * ```
 */
export async function runComponentInSandbox(
  code: string,
  name: string,
  opts: Omit<SandboxOptions, "jsx"> = {},
): Promise<SandboxResult> {
  if (!/^[A-Za-z_$][\w$]*$/.test(name)) {
    throw new Error(`runComponentInSandbox: ${JSON.stringify(name)} is not an identifier`);
  }
  const source = `${JSX_SHIM}${code}\n;export default () => ${name}({});\n`;
  const r = await runInSandbox(source, { ...opts, jsx: true });
  if (r.ok && !isElementLike(r.result)) {
    return {
      ok: false,
      result: r.result,
      error: `the component returned ${JSON.stringify(r.result)}, not an element`,
      timedOut: false,
      ms: r.ms,
    };
  }
  return r;
}
