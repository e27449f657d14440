/** Shared by the report tests: synthetic trial bundles, in memory and on disk. */
import { stableJson } from "../../lib/json.ts";
import { writeManifest } from "../../lib/experiment/bundle.ts";
import { trialId } from "../../lib/experiment/spec.ts";
import { flattenConfig, type MetricsRow, type TrialBundle } from "../../lib/report/bundles.ts";

export interface FakeTrial {
  task?: string;
  config: Record<string, unknown>;
  rows: MetricsRow[];
  metrics?: Record<string, number | null>;
}

/** An in-memory TrialBundle (swept values at `sweptKeys`). */
export function memTrial(t: FakeTrial, sweptKeys: string[], id: string): TrialBundle {
  const flat = flattenConfig(t.config);
  const columns = [...new Set(t.rows.flatMap((r) => Object.keys(r)))].filter((c) =>
    t.rows.some((r) => typeof r[c] === "number")
  );
  return {
    dir: `/mem/${id}`,
    id,
    experiment: "mem",
    task: t.task ?? "CartPole-v1",
    codeVersion: "test",
    config: t.config,
    flat,
    seed: typeof flat.seed === "number" ? flat.seed : null,
    summary: { metrics: t.metrics ?? {} },
    rows: t.rows,
    columns,
    bundleHash: id.padEnd(64, "0"),
    swept: Object.fromEntries(sweptKeys.map((k) => [k, flat[k]])),
    env: null,
  };
}

/**
 * Write a trial bundle the way the runner does (config.json = identity, folder named by its
 * trial id, manifest.json last); returns its folder.
 */
export async function writeFakeBundle(expDir: string, t: FakeTrial): Promise<string> {
  const identity = { task: t.task ?? "sentiment", config: t.config, code_version: "test" };
  const dir = `${expDir}/${trialId(identity)}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, stableJson(identity));
  await Deno.writeTextFile(
    `${dir}/metrics.jsonl`,
    t.rows.map((r) => JSON.stringify(r)).join("\n") + "\n",
  );
  await Deno.writeTextFile(`${dir}/summary.json`, stableJson({ metrics: t.metrics ?? {} }));
  await Deno.writeTextFile(`${dir}/env.json`, stableJson({ deno: Deno.version.deno }));
  await writeManifest(dir);
  return dir;
}

/**
 * A sentiment-like β sweep: β ∈ betas × seeds, `updates` rows each with kl_ref, rm_score,
 * gold_score, clipfrac, entropy, explained_variance (deterministic arithmetic, no RNG), and
 * named metrics rm_score, gold_score, kl.
 */
export function sentimentTrials(
  betas: number[],
  seeds: number[],
  updates = 3,
): FakeTrial[] {
  const out: FakeTrial[] = [];
  for (const beta of betas) {
    for (const seed of seeds) {
      const rows: MetricsRow[] = [];
      for (let u = 1; u <= updates; u++) {
        const kl = (u * 0.1) / (1 + 10 * beta) + seed * 0.001;
        rows.push({
          update: u,
          step: u * 32,
          kl_ref: kl,
          rm_score: u * 0.2 + seed * 0.01,
          gold_score: u * 0.1 - beta + seed * 0.02,
          clipfrac: 0.01 * u,
          entropy: 2 - 0.1 * u,
          explained_variance: 0.1 * u,
          episodic_return: null,
        });
      }
      const last = rows.at(-1)!;
      out.push({
        task: "sentiment",
        config: { seed, updates, ppo: { kl: { beta }, lr: 1e-4 } },
        rows,
        metrics: {
          rm_score: last.rm_score as number,
          gold_score: last.gold_score as number,
          kl: last.kl_ref as number,
        },
      });
    }
  }
  return out;
}

export async function tempDir(prefix: string): Promise<string> {
  return await Deno.makeTempDir({ prefix: `proxima-report-${prefix}-` });
}

/** PNG width/height from the IHDR chunk after checking the 8-byte signature. */
export function pngHeader(bytes: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!sig.every((b, i) => bytes[i] === b)) throw new Error("PNG signature missing");
  if (new TextDecoder().decode(bytes.subarray(12, 16)) !== "IHDR") {
    throw new Error("IHDR is not the first chunk");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}

/** The text content of every <text> element of an SVG (entities decoded). */
export function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([\s\S]*?)<\/text>/g)].map((m) =>
    m[1].replace(/<[^>]+>/g, "").replaceAll("&lt;", "<").replaceAll("&gt;", ">")
      .replaceAll("&amp;", "&").replaceAll("&quot;", '"').replaceAll("&#39;", "'")
  );
}
