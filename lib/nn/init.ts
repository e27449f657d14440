/**
 * Weight initialisers shared by the models, all drawing from the one seeded {@link Rng}.
 * @module
 */
import type { Rng } from "../rng.ts";

/**
 * Orthogonal init (Saxe et al. 2014), as torch.nn.init.orthogonal_: QR-decompose a
 * Gaussian matrix, fix the signs by diag(R), scale by `gain`. Returns a [rows, cols]
 * row-major matrix whose rows (or columns, whichever are fewer) are orthonormal × gain.
 *
 * @example
 * ```ts
 * const w = orthogonal(4, 64, Math.SQRT2, new Rng(1)); // CleanRL's hidden-layer init
 * ```
 */
export function orthogonal(rows: number, cols: number, gain: number, rng: Rng): Float64Array {
  // Work on the tall orientation (m ≥ n), then transpose back if needed.
  const tall = rows >= cols, m = tall ? rows : cols, n = tall ? cols : rows;
  const a = new Float64Array(m * n); // column-major: column j at a[j*m .. j*m+m)
  rng.fillNormal(a);
  // Modified Gram–Schmidt QR: columns of `a` become Q; r_jj signs are folded in.
  for (let j = 0; j < n; j++) {
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < m; i++) dot += a[k * m + i] * a[j * m + i];
      for (let i = 0; i < m; i++) a[j * m + i] -= dot * a[k * m + i];
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += a[j * m + i] ** 2;
    norm = Math.sqrt(norm);
    // Q·sign(diag R): with Gram–Schmidt r_jj = norm > 0, so Q's column is a/‖a‖ as is.
    for (let i = 0; i < m; i++) a[j * m + i] /= norm;
  }
  const out = new Float64Array(rows * cols);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < m; i++) {
      if (tall) out[i * cols + j] = gain * a[j * m + i];
      else out[j * cols + i] = gain * a[j * m + i];
    }
  }
  return out;
}
