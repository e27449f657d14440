/**
 * Small file-system helpers every layer uses.
 * @module
 */

/** Whether `path` exists (any other error than "not found" is rethrown). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
