/**
 * Plain-text tables and number formatting for the sweep summary.
 * @module
 */

/** Format a metric or swept value compactly (4 significant digits, integers as they are). */
export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2).replace(/\.?0+e/, "e");
    return String(Number(v.toPrecision(4)));
  }
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** Columns padded to their widest cell; numbers right-aligned. */
export function formatTable(headers: string[], rows: string[][]): string {
  const width = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const numeric = headers.map((_, i) =>
    rows.length > 0 && rows.every((r) => /^(-|[-+]?[\d.]+(e[-+]?\d+)?( s)?)$/.test(r[i] ?? "-"))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => (numeric[i] ? c.padStart(width[i]) : c.padEnd(width[i]))).join("  ")
      .trimEnd();
  return [line(headers), line(width.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
