/**
 * Headless rendering: Vega-Lite spec → Vega → SVG (a vega View with renderer "none") → PNG
 * (@resvg/resvg-js). No browser, no canvas, no system font lookup: the font is one file
 * loaded explicitly (DejaVu Sans, from the fonts-dejavu-core package that `.ci/setup`
 * installs), so the PNG's text renders the same on every machine. Set `PROXIMA_FONT` to a
 * .ttf/.otf file to use another one.
 *
 * @example
 * ```ts
 * import { renderChart } from "./render.ts";
 * const { svg, png } = await renderChart(spec);
 * await Deno.writeFile("plot.png", png);
 * ```
 * @module
 */
import * as vl from "vega-lite";
import * as vega from "vega";
import { Resvg } from "@resvg/resvg-js";
import type { TopLevelSpec } from "vega-lite";
import { UserError } from "../errors.ts";

/** Where the font is looked for, first found wins (after `$PROXIMA_FONT`). */
export const FONT_CANDIDATES: readonly string[] = [
  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
  "/usr/share/fonts/dejavu/DejaVuSans.ttf",
  "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/** The family name of the default font (what SVG text asks for and resvg provides). */
export const DEFAULT_FONT_FAMILY = "DejaVu Sans";

export interface RenderOptions {
  /** A font file (default: `$PROXIMA_FONT`, then {@link FONT_CANDIDATES}). */
  fontFile?: string;
  /** Its family name (default "DejaVu Sans"). */
  fontFamily?: string;
  /** PNG pixels per SVG pixel (default 2: sharp on high-DPI screens and in papers). */
  scale?: number;
  /** Background colour (default white: transparent PNGs read badly in dark viewers). */
  background?: string;
}

/** A font could not be found or loaded; the message says how to get one. */
export class FontError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "FontError";
  }
}

/** The font file to render with; throws a {@link FontError} naming the paths tried. */
export function findFontFile(explicit?: string): string {
  const env = Deno.env.get("PROXIMA_FONT");
  const tried = explicit ? [explicit] : env ? [env] : [...FONT_CANDIDATES];
  for (const p of tried) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* try the next */ }
  }
  throw new FontError(
    `no font to render plot text: ${tried.join(", ")} ${tried.length === 1 ? "is" : "are"} ` +
      `missing — install fonts-dejavu-core (.ci/setup does: apt-get install fonts-dejavu-core) ` +
      `or set PROXIMA_FONT=/path/to/a/font.ttf`,
  );
}

/**
 * Compile a Vega-Lite spec to Vega with the report's font and background, and render it to
 * an SVG string. Throws (with vega's message) on an invalid spec.
 */
export async function renderSvg(spec: TopLevelSpec, opts: RenderOptions = {}): Promise<string> {
  const family = opts.fontFamily ?? DEFAULT_FONT_FAMILY;
  const withConfig = {
    ...spec,
    background: opts.background ?? "white",
    config: { ...(spec.config ?? {}), font: family },
  } as TopLevelSpec;
  let view: vega.View;
  try {
    view = new vega.View(vega.parse(vl.compile(withConfig).spec), { renderer: "none" });
  } catch (e) {
    // vega-lite's messages for a bad spec can be bare TypeErrors; say what failed.
    const mark = JSON.stringify((spec as { mark?: unknown }).mark ?? null);
    throw new Error(
      `not a valid Vega-Lite spec (mark ${mark}): ${(e as Error).message}`,
      { cause: e },
    );
  }
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterise an SVG with the report's font (loaded from its file; no system fonts). */
export function svgToPng(svg: string, opts: RenderOptions = {}): Uint8Array {
  const fontFile = findFontFile(opts.fontFile);
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: opts.scale ?? 2 },
    background: opts.background ?? "white",
    font: {
      fontFiles: [fontFile],
      loadSystemFonts: false,
      defaultFontFamily: opts.fontFamily ?? DEFAULT_FONT_FAMILY,
      sansSerifFamily: opts.fontFamily ?? DEFAULT_FONT_FAMILY,
    },
  });
  return resvg.render().asPng();
}

/** Render a Vega-Lite spec to SVG text and PNG bytes. */
export async function renderChart(
  spec: TopLevelSpec,
  opts: RenderOptions = {},
): Promise<{ svg: string; png: Uint8Array }> {
  // Look for the font first, so a missing font fails before any rendering work.
  const fontFile = findFontFile(opts.fontFile);
  const svg = await renderSvg(spec, opts);
  return { svg, png: svgToPng(svg, { ...opts, fontFile }) };
}

/** Width and height from a PNG's IHDR chunk; throws if `bytes` is not a PNG. */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 24 || !sig.every((b, i) => bytes[i] === b)) {
    throw new Error("not a PNG (bad signature)");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") {
    throw new Error("not a PNG (first chunk is not IHDR)");
  }
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}
