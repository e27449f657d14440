/**
 * Typed readers of a config file's keys ({@link ConfigKeys}), shared by the config.json reader
 * (`hf_config.ts`) and each family's config reader (`families/*.ts`): every error names the
 * folder, the file, the key and a fix.
 *
 * @module
 */
import { folderError, MODEL_CONFIG, type Where } from "./hf_folder.ts";

/** Typed readers of config.json keys; each error names the key and a fix. */
export class ConfigKeys {
  constructor(
    readonly c: Record<string, unknown>,
    readonly w: Where,
    readonly file = MODEL_CONFIG,
  ) {}

  /** An error about `key`: what is wrong and the fix. */
  bad(key: string, what: string, fix: string): Error {
    return folderError(this.w, this.file, `key "${key}": ${what}`, fix);
  }

  /** Whether `key` is present and not null. */
  has(key: string): boolean {
    return this.c[key] !== undefined && this.c[key] !== null;
  }

  /** A positive integer; `def` when absent or null (required when `def` is undefined). */
  int(key: string, def?: number): number {
    const v = this.c[key];
    if ((v === undefined || v === null) && def !== undefined) return def;
    if (!Number.isInteger(v) || (v as number) < 1) {
      throw this.bad(
        key,
        `expected a positive integer, got ${JSON.stringify(v)}`,
        `set "${key}" to the model's value`,
      );
    }
    return v as number;
  }

  /** A positive number; `def` when absent. */
  num(key: string, def?: number, v: unknown = this.c[key]): number {
    if ((v === undefined || v === null) && def !== undefined) return def;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      throw this.bad(
        key,
        `expected a positive number, got ${JSON.stringify(v)}`,
        `set "${key}" to the model's value`,
      );
    }
    return v;
  }

  /** A boolean; `def` when absent or null. */
  bool(key: string, def: boolean): boolean {
    const v = this.c[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== "boolean") {
      throw this.bad(key, `expected true or false, got ${JSON.stringify(v)}`, `set "${key}"`);
    }
    return v;
  }
}
