/**
 * `save_steps` on the `lm` task: a 4-update run with `save_steps 2` leaves
 * `checkpoints/checkpoint-2/` and `checkpoint-4/`, folders that transformers loads (and, with
 * LoRA, a PEFT adapter peft loads): Proxima's forward on the folders this test writes equals
 * the logits transformers / peft computed on the same runs' folders
 * (fixtures/hf/check_lm_checkpoints.py -> proxima-out/lm_checkpoints_reference.json), and the
 * tokenizer files came along. In a sweep the bundle keeps them (`save_total_limit`: the newest).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Graph } from "../../lib/onnx/graph.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { loadModelFolder } from "../../lib/nn/checkpoint.ts";
import { type DecoderConfig, decoderForward, decoderShapes } from "../../lib/nn/decoder.ts";
import { applyLora, type LoraConfig, loraShapes } from "../../lib/nn/lora.ts";
import { loadPeftAdapter } from "../../lib/nn/peft.ts";
import { loadHfTokenizer } from "../../lib/nn/hf_tokenizer.ts";
import type { FloatArray } from "../../lib/nn/sample.ts";
import { sweep, visibleBundles } from "../experiment/helpers.ts";
import { listCheckpoints } from "../../lib/tasks/train_hooks.ts";
import {
  CHECK_IDS,
  CHECK_TOKENS,
  checkpointRunConfig,
  makeCheckpointInputs,
  makeLmCheckpoints,
} from "../fixtures/hf/make_lm_checkpoints.ts";

const FIXTURE = new URL(
  "../fixtures/hf/proxima-out/lm_checkpoints_reference.json",
  import.meta.url,
);
type Ref = { logsumexp: number[]; logits: number[][]; sha256: string; tokenizer_ids?: number[] };

/** logsumexp and the CHECK_IDS logits at every position of CHECK_TOKENS (float32 forward). */
async function forward(
  cfg: DecoderConfig,
  params: Record<string, FloatArray>,
  lora?: { cfg: LoraConfig; adapters: Record<string, FloatArray> },
): Promise<{ logsumexp: number[]; logits: number[][] }> {
  const g = new Graph("ckpt_logits");
  const shapes = decoderShapes(cfg), ad = lora ? loraShapes(shapes, lora.cfg) : {};
  const all = { ...shapes, ...ad };
  const inp = Object.fromEntries(
    Object.entries(all).map(([n, { shape }]) => [n, g.input(n, "float32", shape)]),
  );
  const p = lora ? applyLora(g, lora.cfg, inp, inp) : inp;
  g.output(decoderForward(g, cfg, p, g.input("tokens", "int64", ["B", "T"])).logits, "logits");
  const values = { ...params, ...lora?.adapters };
  const out = await (await compile(g)).run({
    ...Object.fromEntries(
      Object.entries(all).map(([n, { shape }]) => [n, tensor("float32", shape, values[n])]),
    ),
    tokens: tensor("int64", [1, CHECK_TOKENS.length], CHECK_TOKENS),
  });
  const lg = out.logits.data as Float32Array, V = cfg.vocabSize;
  const logsumexp: number[] = [], logits: number[][] = [];
  for (let t = 0; t < CHECK_TOKENS.length; t++) {
    const row = lg.subarray(t * V, (t + 1) * V);
    let m = -Infinity, z = 0;
    for (const v of row) m = Math.max(m, v);
    for (const v of row) z += Math.exp(v - m);
    logsumexp.push(m + Math.log(z));
    logits.push(CHECK_IDS.map((i) => row[i]));
  }
  return { logsumexp, logits };
}

const maxDiff = (a: { logsumexp: number[]; logits: number[][] }, b: typeof a) =>
  Math.max(
    ...a.logsumexp.map((v, i) => Math.abs(v - b.logsumexp[i])),
    ...a.logits.flatMap((row, t) => row.map((v, i) => Math.abs(v - b.logits[t][i]))),
  );
const sha = async (path: string) =>
  createHash("sha256").update(await Deno.readFile(path)).digest("hex");

Deno.test({
  name:
    "lm save_steps 2: checkpoint-2/ and checkpoint-4/ load in transformers (and the LoRA adapter in peft) with Proxima's logits",
  sanitizeResources: false,
  async fn() {
    const ref = JSON.parse(await Deno.readTextFile(FIXTURE)) as Record<string, Ref>;
    assert.deepEqual(ref.check_tokens, CHECK_TOKENS);
    assert.deepEqual(ref.check_ids, CHECK_IDS);
    const root = await Deno.makeTempDir({ prefix: "proxima_lm_checkpoints_" });
    await makeLmCheckpoints(root);
    assert.deepEqual(await listCheckpoints(`${root}/full/checkpoints`), [2, 4]);
    assert.deepEqual(await listCheckpoints(`${root}/lora/checkpoints`), [2]);
    const got: Record<string, Awaited<ReturnType<typeof forward>>> = {};
    for (const name of ["full/checkpoint-2", "full/checkpoint-4", "lora/checkpoint-2"]) {
      const [run, ck] = name.split("/"), dir = `${root}/${run}/checkpoints/${ck}`;
      const m = await loadModelFolder(dir, { dtype: "float32" });
      got[name] = await forward(m.cfg, m.params);
      // The same bytes transformers loaded: only the forward passes can differ (float32 sums
      // in another order). On another CPU the training may round differently: then the
      // folders are not the same bytes, and the logits agree to the training's rounding.
      const same = (await sha(`${dir}/model.safetensors`)) === ref[name].sha256;
      const d = maxDiff(got[name], ref[name]);
      assert.ok(d < (same ? 1e-4 : 2e-3), `${name}: Proxima vs transformers logits differ by ${d}`);
      const tok = await loadHfTokenizer(dir);
      assert.deepEqual(tok.encode("Hello world!"), ref[name].tokenizer_ids);
    }
    // Training moved the policy between the two checkpoints (the check above has teeth).
    assert.ok(maxDiff(got["full/checkpoint-2"], got["full/checkpoint-4"]) > 1e-2);
    // LoRA: the PEFT adapter over the starting policy gives peft's logits and the merged ones.
    const base = await loadModelFolder(`${root}/policy`, { dtype: "float32" });
    const { lora, adapters } = await loadPeftAdapter(
      `${root}/lora/checkpoints/checkpoint-2/adapter`,
    );
    const viaAdapter = await forward(base.cfg, base.params, { cfg: lora, adapters });
    const d = maxDiff(viaAdapter, ref["lora/checkpoint-2/adapter"]);
    assert.ok(d < 2e-3, `adapter: Proxima vs peft logits differ by ${d}`);
    assert.ok(maxDiff(viaAdapter, got["lora/checkpoint-2"]) < 1e-4);
    await Deno.remove(root, { recursive: true });
  },
});

Deno.test({
  name:
    "lm save_steps in a sweep: the bundle keeps checkpoints/checkpoint-N/ and its manifest hashes them",
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "proxima_lm_save_sweep_" });
    await makeCheckpointInputs(root);
    const lib = new URL("../../lib/experiment/mod.ts", import.meta.url).href;
    const cfg = checkpointRunConfig(root, { updates: 3, save_steps: 1, save_total_limit: 2 });
    await Deno.writeTextFile(
      `${root}/exp.ts`,
      `import { defineExperiment, grid } from ${JSON.stringify(lib)};\n` +
        `export default defineExperiment({ name: "ck", task: "lm", base: ${
          JSON.stringify(cfg)
        }, sweep: grid({ seed: [1] }), metrics: ["reward"] });\n`,
    );
    const r = await sweep([`${root}/exp.ts`, "--results", `${root}/results`, "--jobs", "1"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [bundle] = await visibleBundles(`${root}/results/ck`);
    const dir = `${root}/results/ck/${bundle}`;
    // save_total_limit 2: checkpoint-1 went when checkpoint-3 came; no temporary folder left.
    assert.deepEqual(await listCheckpoints(`${dir}/checkpoints`), [2, 3]);
    const manifest = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
    for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
      assert.ok(`checkpoints/checkpoint-2/${f}` in manifest.files, f);
    }
    // The final export and the update-N run checkpoints: as before (only hf/ and the final state).
    assert.ok("checkpoints/hf/policy/model.safetensors" in manifest.files);
    assert.ok(
      !Object.keys(manifest.files).some((f) => f.includes("update-") || f.includes(".tmp-")),
    );
    await Deno.remove(root, { recursive: true });
  },
});
