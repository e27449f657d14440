/**
 * `deno task notebooks [notebooks/x.ipynb ...] [--results DIR] [--out DIR] [--in-place]` —
 * execute every notebook under notebooks/ headless with the Deno kernel and fail on any error.
 *
 * - The kernel: a kernelspec named `deno` is written to a project-local Jupyter data folder
 *   (`results/.jupyter/kernels/deno/`, git-ignored) and put first on `JUPYTER_PATH` for the run,
 *   so nothing is written to the user's home, it works the same for root, other users and a
 *   fresh CI clone, and it runs *this* deno binary with the kernel's working folder set to
 *   notebooks/, where deno finds the project's deno.json (import map, `npm:` packages,
 *   node_modules). `deno jupyter` has no `--config` flag; the working folder is what selects
 *   the config.
 * - The runner: notebooks/run_notebooks.py (nbclient, Debian's jupyter packages), which keeps
 *   outputs the Deno kernel sends after reporting `idle` (see that file), writes the executed
 *   copies to `<results>/notebooks/` (never over notebooks/ unless `--in-place`) and checks
 *   that no cell raised or has an error output and that every cell tagged `plot` has an
 *   image/png or Vega-Lite output. Problems name the notebook, the cell and what is wrong.
 * - The notebooks read bundles from `$PROXIMA_RESULTS`, set here to the absolute `--results`
 *   folder (default `results`).
 *
 * Exit status: 0 every notebook ran clean, 1 some notebook failed a check, 2 Jupyter's headless
 * runner is missing (the message gives the apt command).
 * @module
 */
import { REPO_ROOT } from "../lib/experiment/code_version.ts";
import { UserError } from "../lib/errors.ts";
import { runCommand } from "./boundary.ts";
import { numberFlag, parseFlags } from "./flags.ts";
import { checkOutputDir } from "./preflight.ts";

export { REPO_ROOT };

/** Where notebooks live. */
export const NOTEBOOKS_DIR = `${REPO_ROOT}/notebooks`;
/** The project-local Jupyter data folder holding the kernelspec (first on JUPYTER_PATH). */
export const JUPYTER_DATA_DIR = `${REPO_ROOT}/results/.jupyter`;
/** The headless runner. */
export const RUNNER = `${NOTEBOOKS_DIR}/run_notebooks.py`;
/** The Python that Debian's jupyter packages are installed for comes first. */
export const PYTHON_CANDIDATES: readonly string[] = ["/usr/bin/python3", "python3"];

export const APT_FIX =
  "sudo apt-get install -y jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel " +
  "jupyter-notebook (bash .ci/setup installs them)";

/** Jupyter (or a part of it) is not installed; the message gives the apt command. */
export class JupyterMissing extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "JupyterMissing";
  }
}

const dec = new TextDecoder();

/** The first Python of {@link PYTHON_CANDIDATES} that imports every module in `modules`. */
export async function findPython(modules: readonly string[]): Promise<string> {
  const tried: string[] = [];
  for (const py of PYTHON_CANDIDATES) {
    try {
      const r = await new Deno.Command(py, {
        args: ["-c", `import ${modules.join(", ")}`],
        stdout: "null",
        stderr: "piped",
      }).output();
      if (r.success) return py;
      tried.push(`${py}: ${dec.decode(r.stderr).trim().split("\n").at(-1)}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      tried.push(`${py}: not found`);
    }
  }
  throw new JupyterMissing(
    `no Python with ${modules.join(", ")} (${tried.join("; ")}) — fix: ${APT_FIX}`,
  );
}

/** The kernelspec: run this deno's Jupyter kernel with notebooks/ as its working folder. */
export function kernelSpec(
  denoPath = Deno.execPath(),
  cwd = NOTEBOOKS_DIR,
): Record<string, unknown> {
  return {
    // sh: `deno jupyter` takes no --config and Jupyter starts kernels in the notebook's
    // folder; `cd` pins the folder (and so deno.json) whatever that is. "$0" is a label.
    argv: [
      "/bin/sh",
      "-c",
      'cd "$1" && exec "$2" jupyter --kernel --conn "$3"',
      "proxima-deno-kernel",
      cwd,
      denoPath,
      "{connection_file}",
    ],
    display_name: "Deno (Proxima)",
    language: "typescript",
    metadata: { proxima: { repo: REPO_ROOT } },
  };
}

/**
 * Write the `deno` kernelspec under `dataDir/kernels/deno/` (atomically: concurrent runs never
 * see half a file) and return `dataDir`, the folder to put first on JUPYTER_PATH.
 */
export async function installKernelspec(dataDir = JUPYTER_DATA_DIR): Promise<string> {
  const dir = `${dataDir}/kernels/deno`;
  await Deno.mkdir(dir, { recursive: true });
  const text = JSON.stringify(kernelSpec(), null, 2) + "\n";
  const tmp = `${dir}/.kernel.json.${Deno.pid}.${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, `${dir}/kernel.json`);
  return dataDir;
}

/** The environment for Jupyter processes: our kernelspec first, the results root. */
export function jupyterEnv(dataDir: string, results: string): Record<string, string> {
  const prev = Deno.env.get("JUPYTER_PATH");
  return {
    JUPYTER_PATH: prev ? `${dataDir}:${prev}` : dataDir,
    PROXIMA_RESULTS: absolute(results),
    // debugpy (imported by ipykernel) warns about frozen modules on every start.
    PYDEVD_DISABLE_FILE_VALIDATION: "1",
  };
}

export function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`.replace(/\/\.\//g, "/");
}

/** The notebooks under notebooks/, sorted. */
export async function listNotebooks(dir = NOTEBOOKS_DIR): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".ipynb")) out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

export interface NotebookRunOptions {
  /** Notebooks to run (default: every notebooks/*.ipynb). */
  notebooks?: string[];
  /** Results root the notebooks read (PROXIMA_RESULTS; default "results"). */
  results?: string;
  /** Folder for the executed copies (default `<results>/notebooks`). */
  out?: string;
  /** Write the executed notebooks over the inputs (all inputs must be in one folder). */
  inPlace?: boolean;
  /** Seconds a cell may run (default 600). */
  timeoutS?: number;
  /** Quiet period after each cell's barrier (ms, default 100). */
  quietMs?: number;
  /** Plain nbclient without the idle-trap fix (tests show it loses outputs). */
  noIdleFix?: boolean;
  /** Extra environment for the kernels. */
  env?: Record<string, string>;
  /** "inherit" prints the runner's lines as they come; "piped" returns them. */
  output?: "inherit" | "piped";
}

/** One cell of a runner report. */
export interface CellReport {
  index: number;
  first_line: string;
  tags: string[];
  /** MIME types of its display outputs, `stream/stdout`, `error`. */
  outputs: string[];
  /** Outputs that arrived after the cell's `idle` and were kept. */
  late: number;
}

/** One notebook of a runner report. */
export interface NotebookReport {
  notebook: string;
  executed: string;
  ok: boolean;
  problems: string[];
  seconds: number;
  late_outputs: number;
  unrouted_outputs: number;
  cells: CellReport[];
}

export interface NotebookRunResult {
  code: number;
  /** The runner's output ("" when printed through). */
  output: string;
  reports: NotebookReport[];
}

/** Install the kernelspec and run the headless runner over the notebooks. */
export async function runNotebooks(opts: NotebookRunOptions = {}): Promise<NotebookRunResult> {
  const python = await findPython(["nbclient", "nbformat", "jupyter_client"]);
  const dataDir = await installKernelspec();
  const results = opts.results ?? "results";
  const notebooks = opts.notebooks?.length ? opts.notebooks.map(absolute) : await listNotebooks();
  if (notebooks.length === 0) throw new UserError(`no notebooks (*.ipynb) in ${NOTEBOOKS_DIR}`);
  let out = absolute(opts.out ?? `${results}/notebooks`);
  if (opts.inPlace) {
    const dirs = new Set(notebooks.map((n) => n.replace(/\/[^/]+$/, "")));
    if (dirs.size !== 1) {
      throw new UserError("notebooks: --in-place: the notebooks must be in one folder");
    }
    out = [...dirs][0];
  }
  const reportDir = await Deno.makeTempDir({ prefix: "proxima-notebooks-" });
  const report = `${reportDir}/report.json`;
  try {
    const args = [
      RUNNER,
      "--out",
      out,
      "--report",
      report,
      "--label-root",
      REPO_ROOT,
      "--timeout",
      String(opts.timeoutS ?? 600),
      "--quiet-ms",
      String(opts.quietMs ?? 100),
      ...(opts.noIdleFix ? ["--no-idle-fix"] : []),
      ...notebooks,
    ];
    const piped = opts.output === "piped";
    const r = await new Deno.Command(python, {
      args,
      cwd: REPO_ROOT,
      // NO_COLOR: plain text/plain outputs (no ANSI escapes) in the executed copies.
      env: { ...jupyterEnv(dataDir, results), NO_COLOR: "1", ...(opts.env ?? {}) },
      stdout: piped ? "piped" : "inherit",
      stderr: piped ? "piped" : "inherit",
    }).output();
    const output = piped ? dec.decode(r.stdout) + dec.decode(r.stderr) : "";
    let reports: NotebookReport[] = [];
    try {
      reports = JSON.parse(await Deno.readTextFile(report));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return { code: r.code, output, reports };
  } finally {
    await Deno.remove(reportDir, { recursive: true });
  }
}

const HELP = `Usage: deno task notebooks [NOTEBOOK ...] [options]

Executes notebooks (default: every notebooks/*.ipynb) headless with the Deno kernel and checks
every cell: none may raise or show an error, and every cell tagged "plot" must have an
image/png or Vega-Lite output. Exits non-zero naming the notebook, the cell and the problem.

  --results DIR     results root the notebooks read (PROXIMA_RESULTS; default results)
  --out DIR         where the executed copies go (default <results>/notebooks)
  --in-place        write the executed notebooks over the inputs instead
  --timeout S       seconds a cell may run (default 600)
  --quiet-ms N      after each cell, wait until the kernel has been quiet this long (default 100)
  --no-idle-fix     plain nbclient, which loses outputs the kernel sends after "idle"

Needs Debian's Jupyter runner: ${APT_FIX}.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags("notebooks", argv, {
    results: { type: "string" },
    out: { type: "string" },
    "in-place": { type: "boolean" },
    timeout: { type: "string" },
    "quiet-ms": { type: "string" },
    "no-idle-fix": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, { allowPositionals: true });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const num = (name: string, v: string | undefined) => numberFlag("notebooks", name, v, { min: 0 });
  // Before Python and the kernel start: the notebooks exist, the output folder is writable.
  for (const nb of positionals) {
    const st = await Deno.stat(nb).catch(() => null);
    if (!st?.isFile || !nb.endsWith(".ipynb")) {
      throw new UserError(
        `notebooks: ${nb}: ${
          !st ? "no such file" : !st.isFile ? "is a folder" : "not a .ipynb file"
        }`,
        { fix: "give notebook files, e.g. notebooks/kl.ipynb (or none: every notebooks/*.ipynb)" },
      );
    }
  }
  if (values.out !== undefined) await checkOutputDir("notebooks", "--out", values.out);
  try {
    const r = await runNotebooks({
      notebooks: positionals,
      results: values.results,
      out: values.out,
      inPlace: values["in-place"],
      timeoutS: num("timeout", values.timeout),
      quietMs: num("quiet-ms", values["quiet-ms"]),
      noIdleFix: values["no-idle-fix"],
      output: "inherit",
    });
    return r.code;
  } catch (e) {
    if (e instanceof JupyterMissing) {
      console.error(`notebooks: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) await runCommand(() => main(Deno.args));
