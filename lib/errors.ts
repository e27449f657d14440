/**
 * The errors a user can cause, as types every layer can throw and every command's boundary
 * (cli/boundary.ts) knows: such an error is printed as its message alone (which names the
 * input, the cause and the fix) and the command exits 2. Any other error is a bug in Proxima
 * and keeps its stack.
 *
 * They sit at the bottom of the layers so that the loaders (safetensors, Hugging Face
 * folders, tokenizers) can throw them without reaching up.
 *
 * @example
 * ```ts
 * throw new InputError("model.safetensors", "is a Git LFS pointer, not the weights",
 *   "run `git lfs pull` in the folder");
 * ```
 * @module
 */

/**
 * Bad input the user can fix: a flag, a config key, a file or a folder. The message names the
 * input, the cause and, unless {@link UserError.fix} is given apart, the fix.
 */
export class UserError extends Error {
  /** The fix, when it is not already in the message (the boundary prints it after). */
  fix?: string;
  constructor(message: string, options?: ErrorOptions & { fix?: string }) {
    super(message, options);
    this.name = "UserError";
    if (options?.fix) this.fix = options.fix;
  }
}

/** Bad command-line use (an unknown flag, a value out of range): printed as is, exit 2. */
export class UsageError extends UserError {
  constructor(message: string, options?: ErrorOptions & { fix?: string }) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * A file or folder the user gave that cannot be used (missing, truncated, not what it should
 * be): the message is `<where>: <path>: <cause>` and {@link UserError.fix} says what to do.
 * The model loaders throw it, so `generate`, `train` and `sweep` refuse it alike.
 */
export class InputError extends UserError {
  constructor(
    /** Who read it, e.g. "safetensors" or "loadHfTokenizer". */
    readonly where: string,
    /** The file or folder. */
    readonly path: string,
    /** What is wrong with it. */
    readonly problem: string,
    fix: string,
    /** `message`: the whole message, when it is worded otherwise. */
    options?: ErrorOptions & { message?: string },
  ) {
    super(options?.message ?? `${where}: ${path}: ${problem}`, { ...options, fix });
    this.name = "InputError";
  }
}

/** First bytes of a Git LFS pointer file (what a clone without `git lfs` holds). */
const LFS_MAGIC = "version https://git-lfs.github.com/spec";

/** Whether `head` (the first bytes of a file) is a Git LFS pointer instead of the content. */
export function isLfsPointer(head: Uint8Array): boolean {
  if (head.length < LFS_MAGIC.length) return false;
  return new TextDecoder().decode(head.subarray(0, LFS_MAGIC.length)) === LFS_MAGIC;
}

/** The error for a Git LFS pointer found where a file's content should be. */
export function lfsPointerError(where: string, path: string): InputError {
  return new InputError(
    where,
    path,
    "is a Git LFS pointer (a small text file), not the file itself: the clone was made " +
      "without Git LFS",
    "run `git lfs install && git lfs pull` in the model's folder (or download it with " +
      "`huggingface-cli download`)",
  );
}
