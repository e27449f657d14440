/**
 * The files the dashboard serves to the browser: its page (`page/`: HTML, JS, CSS) and the
 * browser builds of vega, vega-lite and vega-embed from the npm packages deno.json pins (no
 * CDN: the page loads nothing from outside the dashboard's own server).
 *
 * A package's folder is found the way Deno resolves it: `import.meta.resolve("vega")` names
 * the module file of the exact version in deno.json / deno.lock (under
 * `node_modules/.deno/vega@<version>/...` after `deno install`); the package root is the
 * nearest folder above it with that package's package.json.
 * @module
 */
import { UserError } from "../../errors.ts";
import { dirname } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

/** A file served under /vendor/: the npm package and the browser build inside it. */
export const VENDOR_FILES: Readonly<Record<string, { pkg: string; file: string }>> = {
  "vega.js": { pkg: "vega", file: "build/vega.min.js" },
  "vega-lite.js": { pkg: "vega-lite", file: "build/vega-lite.min.js" },
  "vega-embed.js": { pkg: "vega-embed", file: "build/vega-embed.min.js" },
};

/** A browser build that cannot be found; the message says how to install it. */
export class AssetError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "AssetError";
  }
}

// The specifiers are literal so that Deno resolves them through deno.json's imports.
const RESOLVED: Record<string, () => string> = {
  vega: () => import.meta.resolve("vega"),
  "vega-lite": () => import.meta.resolve("vega-lite"),
  "vega-embed": () => import.meta.resolve("vega-embed"),
};

/** The folder of an installed npm package (its package.json names it). */
export async function packageDir(pkg: string): Promise<string> {
  let url: string;
  try {
    url = RESOLVED[pkg]();
  } catch (e) {
    throw new AssetError(`${pkg}: cannot resolve (${(e as Error).message}) — run \`deno install\``);
  }
  if (!url.startsWith("file:")) {
    throw new AssetError(
      `${pkg}: resolves to ${url}, not a file — the dashboard serves the package's browser ` +
        `build from node_modules; run \`deno install\` (deno.json has "nodeModulesDir": "auto")`,
    );
  }
  let dir = dirname(fromFileUrl(url));
  for (;;) {
    try {
      const j = JSON.parse(await Deno.readTextFile(`${dir}/package.json`));
      if (j?.name === pkg) return dir;
    } catch { /* no package.json here */ }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new AssetError(`${pkg}: no package.json above ${fromFileUrl(url)} — run \`deno install\``);
}

/** Paths of every vendor file (checked to exist), by the name it is served under. */
export async function vendorPaths(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, { pkg, file }] of Object.entries(VENDOR_FILES)) {
    const path = `${await packageDir(pkg)}/${file}`;
    const st = await Deno.stat(path).catch(() => null);
    if (!st?.isFile) {
      throw new AssetError(
        `${path}: missing — ${pkg}'s browser build; run \`deno install\` to fetch the npm ` +
          `packages deno.json pins`,
      );
    }
    out.set(name, path);
  }
  return out;
}

/** The page's own files (served at /, /app.js, /style.css). */
export const PAGE_FILES: Readonly<Record<string, { file: string; type: string }>> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

/** The path of a page file. */
export function pagePath(file: string): string {
  return fromFileUrl(new URL(`./page/${file}`, import.meta.url));
}
