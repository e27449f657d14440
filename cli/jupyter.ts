/**
 * `deno task jupyter [jupyter options]` — install the Deno kernel and open Jupyter on
 * notebooks/.
 *
 * The kernelspec is the one `deno task notebooks` uses (see cli/notebooks.ts): named `deno`,
 * written to the project-local `results/.jupyter/` and put first on `JUPYTER_PATH` for the
 * server, running this deno with notebooks/ as its working folder (so the project's deno.json,
 * import map and node_modules are used). JupyterLab is opened when it is installed, else the
 * classic Notebook (Debian's `jupyter-notebook`). `PROXIMA_RESULTS` is passed to the kernels
 * (default: the absolute `results/`).
 *
 * Other options go to Jupyter as they are (`deno task jupyter --no-browser --port 8890`);
 * `--print-command` prints what would run and exits. As root, `--allow-root` is added.
 * @module
 */
import {
  absolute,
  findPython,
  installKernelspec,
  jupyterEnv,
  JupyterMissing,
  NOTEBOOKS_DIR,
  REPO_ROOT,
} from "./notebooks.ts";
import { UserError } from "../lib/errors.ts";
import { runCommand } from "./boundary.ts";

export const FRONTEND_APT_FIX = "sudo apt-get install -y jupyter-notebook python3-ipykernel " +
  "(bash .ci/setup installs it); or pip install jupyterlab";

export interface Frontend {
  python: string;
  /** Python module to run with -m. */
  module: "jupyterlab" | "notebook";
}

/** JupyterLab if some candidate Python has it, else the classic Notebook. */
export async function findFrontend(): Promise<Frontend> {
  try {
    return { python: await findPython(["jupyterlab"]), module: "jupyterlab" };
  } catch (e) {
    if (!(e instanceof JupyterMissing)) throw e;
  }
  try {
    return { python: await findPython(["notebook"]), module: "notebook" };
  } catch (e) {
    if (!(e instanceof JupyterMissing)) throw e;
    throw new JupyterMissing(
      `Jupyter is not installed (no Python with jupyterlab or notebook) — fix: ${FRONTEND_APT_FIX}`,
    );
  }
}

const isRoot = () => Deno.uid?.() === 0;

/** The command line: the frontend on notebooks/, the user's options after ours. */
export function jupyterArgs(frontend: Frontend, userArgs: readonly string[]): string[] {
  const has = (...names: string[]) =>
    userArgs.some((a) => names.some((n) => a === n || a.startsWith(`${n}=`)));
  const args = ["-m", frontend.module];
  if (!has("--notebook-dir", "--ServerApp.root_dir", "--NotebookApp.notebook_dir")) {
    args.push(`--notebook-dir=${NOTEBOOKS_DIR}`);
  }
  if (isRoot() && !has("--allow-root")) args.push("--allow-root");
  return [...args, ...userArgs];
}

/** A notebook folder given to Jupyter must exist: refused before anything is installed. */
async function checkNotebookDir(userArgs: readonly string[]): Promise<void> {
  const flags = ["--notebook-dir", "--ServerApp.root_dir", "--NotebookApp.notebook_dir"];
  for (let i = 0; i < userArgs.length; i++) {
    const a = userArgs[i];
    const flag = flags.find((f) => a === f || a.startsWith(`${f}=`));
    if (!flag) continue;
    const dir = a === flag ? userArgs[i + 1] : a.slice(flag.length + 1);
    const st = dir === undefined ? null : await Deno.stat(dir).catch(() => null);
    if (!st?.isDirectory) {
      throw new UserError(
        `jupyter: ${flag} ${dir ?? ""}: ${
          dir === undefined ? "needs a folder" : st ? "is a file, not a folder" : "no such folder"
        }`,
        { fix: `give ${flag} an existing folder (default: notebooks/)` },
      );
    }
  }
}

const HELP = `Usage: deno task jupyter [--print-command] [jupyter options]

Installs the Deno kernel (kernelspec "deno" in results/.jupyter/, first on JUPYTER_PATH) and
opens JupyterLab, or the classic Notebook, on notebooks/. Options other than --print-command
go to Jupyter, e.g. --no-browser --port 8890. Kernels read bundles from $PROXIMA_RESULTS
(default results/). Needs: ${FRONTEND_APT_FIX}.`;

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  const printOnly = argv.includes("--print-command");
  const userArgs = argv.filter((a) => a !== "--print-command");
  await checkNotebookDir(userArgs);
  let frontend: Frontend;
  try {
    frontend = await findFrontend();
  } catch (e) {
    if (e instanceof JupyterMissing) {
      console.error(`jupyter: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const dataDir = await installKernelspec();
  const env = jupyterEnv(
    dataDir,
    Deno.env.get("PROXIMA_RESULTS") ?? absolute(`${REPO_ROOT}/results`),
  );
  const args = jupyterArgs(frontend, userArgs);
  const shown = [frontend.python, ...args].map((a) => /[\s"'$]/.test(a) ? JSON.stringify(a) : a);
  console.log(`kernel: ${dataDir}/kernels/deno/kernel.json (deno ${Deno.version.deno})`);
  console.log(
    `${printOnly ? "would run" : "running"}: ` +
      Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ") + ` ${shown.join(" ")}`,
  );
  if (printOnly) return 0;
  const child = new Deno.Command(frontend.python, {
    args,
    cwd: REPO_ROOT,
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches Jupyter through the terminal (it asks before shutting down): wait for it.
  // A SIGTERM sent to this process alone is passed on, so Jupyter shuts down cleanly.
  Deno.addSignalListener("SIGINT", () => {});
  Deno.addSignalListener("SIGTERM", () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  });
  const status = await child.status;
  return status.code;
}

if (import.meta.main) await runCommand(() => main(Deno.args));
