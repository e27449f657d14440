/**
 * Rewrite README.md's methods table from the method records (lib/ppo/methods), then format it:
 *
 *   deno run -A scripts/methods_readme.ts
 */
import { withMethodsTable } from "../lib/report/methods_readme.ts";

const path = new URL("../README.md", import.meta.url);
await Deno.writeTextFile(path, withMethodsTable(await Deno.readTextFile(path)));
await new Deno.Command(Deno.execPath(), { args: ["fmt", path.pathname] }).output();
