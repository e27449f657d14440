/** ONNX export for transformers.js: layout, I/O names and shapes, and greedy parity with Proxima. */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { AutoModelForCausalLM, AutoTokenizer, env, pipeline } from "@huggingface/transformers";
import { encodePairs, makeCorpus } from "../../lib/nn/corpus.ts";
import { exportOnnx } from "../../lib/nn/export.ts";
import { type GptConfig, initGpt } from "../../lib/nn/gpt.ts";
import { saveHfFolder } from "../../lib/nn/hf.ts";
import { generate, GptDecoder } from "../../lib/nn/sample.ts";
import { SftTrainer } from "../../lib/nn/sft.ts";
import {
  BYTE_EOS_ID,
  BYTE_VOCAB_SIZE,
  byteDecode,
  byteEncode,
  makeByteTokenizer,
} from "../../lib/nn/tokenizer.ts";
import { tensor } from "../../lib/onnx/session.ts";
import { Rng } from "../../lib/rng.ts";
import { withTmp } from "./helpers.ts";

const cfg: GptConfig = {
  vocabSize: BYTE_VOCAB_SIZE,
  nPositions: 64,
  nEmbd: 64,
  nLayer: 2,
  nHead: 4,
};
const H = cfg.nHead, hd = cfg.nEmbd / cfg.nHead;

Deno.test("exportOnnx: onnx/model.onnx with transformers.js' gpt2 I/O; its prefill equals GptDecoder", async () => {
  await withTmp("proxima_export_", async (root) => {
    const params = initGpt(cfg, new Rng(3), "float32");
    await saveHfFolder(`${root}/m`, cfg, params, makeByteTokenizer({ modelMaxLength: 64 }));
    const path = await exportOnnx(`${root}/m`);
    assert.equal(path, `${root}/m/onnx/model.onnx`);
    const gen = JSON.parse(await Deno.readTextFile(`${root}/m/generation_config.json`));
    assert.deepEqual(gen, { bos_token_id: 256, eos_token_id: 256, pad_token_id: 256 });
    const config = JSON.parse(await Deno.readTextFile(`${root}/m/config.json`));
    assert.equal(config.use_cache, true);

    const s = await ort.InferenceSession.create(path);
    const meta = (list: readonly ort.InferenceSession.ValueMetadata[]) =>
      Object.fromEntries(
        list.map((m) => [m.name, m.isTensor ? `${m.type}[${m.shape.join(",")}]` : "?"]),
      );
    const pastShape = `float32[batch_size,${H},past_sequence_length,${hd}]`;
    const presentShape = `float32[batch_size,${H},total_sequence_length,${hd}]`;
    assert.deepEqual(meta(s.inputMetadata), {
      input_ids: "int64[batch_size,sequence_length]",
      attention_mask: "int64[batch_size,total_sequence_length]",
      position_ids: "int64[batch_size,sequence_length]",
      "past_key_values.0.key": pastShape,
      "past_key_values.0.value": pastShape,
      "past_key_values.1.key": pastShape,
      "past_key_values.1.value": pastShape,
    });
    assert.deepEqual(meta(s.outputMetadata), {
      logits: `float32[batch_size,sequence_length,${cfg.vocabSize}]`,
      "present.0.key": presentShape,
      "present.0.value": presentShape,
      "present.1.key": presentShape,
      "present.1.value": presentShape,
    });

    // Prefill of one left-padded row from an empty cache, as transformers.js feeds it
    // (position id 1 on padding), against Proxima's decoder (0 there).
    const prompt = byteEncode("abc d"), W = prompt.length + 2;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: tensor("int64", [1, W], [256, 256, ...prompt]),
      attention_mask: tensor("int64", [1, W], [0, 0, ...prompt.map(() => 1)]),
      position_ids: tensor("int64", [1, W], [1, 1, ...prompt.map((_, i) => i)]),
    };
    for (let i = 0; i < cfg.nLayer; i++) {
      for (const k of ["key", "value"]) {
        feeds[`past_key_values.${i}.${k}`] = tensor("float32", [1, H, 0, hd]);
      }
    }
    const out = await s.run(feeds);
    assert.deepEqual(out["present.1.value"].dims, [1, H, W, hd]);
    const last = (out.logits.data as Float32Array).subarray((W - 1) * cfg.vocabSize);
    const dec = await GptDecoder.get(cfg, "float32");
    const st = await dec.start(params, [[1, 2], prompt], { padTokenId: 256, capacity: W });
    const ours = st.logits.subarray(cfg.vocabSize);
    const err = Math.max(...Array.from(last, (v, i) => Math.abs(v - ours[i])));
    assert.ok(err < 1e-5, `logits differ by ${err}`);
  });
});

Deno.test("transformers.js greedy generation on the exported folder equals Proxima's greedy tokens", async () => {
  await withTmp("proxima_export_", async (root) => {
    // A model that has learned something (SFT on the shipped corpus), so greedy choices are
    // clear-cut and the generations are worth reading.
    const corpus = makeCorpus({ seed: 1 });
    const sft = await SftTrainer.create(cfg, initGpt(cfg, new Rng(1), "float32"), {
      hparams: { lr: 3e-3, weight_decay: 0, max_grad_norm: 1 },
    });
    await sft.fit(encodePairs(corpus.train), { steps: 200, batchSize: 16, rng: new Rng(2) });
    const params = Object.fromEntries(
      Object.entries(sft.params()).map(([k, v]) => [k, Float32Array.from(v)]),
    );
    await saveHfFolder(`${root}/m`, cfg, params, makeByteTokenizer({ modelMaxLength: 64 }));
    await exportOnnx(`${root}/m`);

    env.allowRemoteModels = false; // nothing may come from the hub
    const opts = { local_files_only: true, session_options: { intraOpNumThreads: 2 } };
    const model = await AutoModelForCausalLM.from_pretrained(`${root}/m`, opts);
    const tok = await AutoTokenizer.from_pretrained(`${root}/m`, { local_files_only: true });
    const ours = (prompts: number[][]) =>
      generate({ cfg, params }, prompts, {
        maxNewTokens: 16,
        temperature: 0,
        eosTokenId: BYTE_EOS_ID,
        padTokenId: BYTE_EOS_ID,
        rng: new Rng(0),
      });
    /** transformers.js' new tokens per row, cut after the first EOS. */
    const theirs = (seqs: bigint[][], width: number) =>
      seqs.map((row) => {
        const r = row.slice(width).map(Number), e = r.indexOf(BYTE_EOS_ID);
        return e < 0 ? r : r.slice(0, e + 1);
      });

    const prompts = [
      ...corpus.heldOut.slice(0, 3).map((p) => p.prompt),
      "swap gold owl:",
      "xyz? ", // off-distribution: whatever the model says, both must say it
    ];
    let correct = 0;
    for (const p of prompts) {
      const enc = tok(p);
      assert.deepEqual(enc.input_ids.tolist()[0].map(Number), byteEncode(p));
      const seqs = await model.generate({ ...enc, max_new_tokens: 16, do_sample: false });
      const js =
        theirs((seqs as unknown as { tolist(): bigint[][] }).tolist(), byteEncode(p).length)[0];
      const px = (await ours([byteEncode(p)])).responses[0];
      console.log(`  ${JSON.stringify(p)} -> ${JSON.stringify(byteDecode(px))}`);
      assert.deepEqual(js, px, `prompt ${JSON.stringify(p)}`);
      const want = corpus.heldOut.find((h) => h.prompt === p)?.response;
      if (want !== undefined && byteDecode(px, { skipSpecialTokens: true }) === want) correct++;
    }
    assert.ok(correct >= 2, `only ${correct} of 3 held-out prompts answered right`);

    // A left-padded batch of prompts of different lengths.
    tok.padding_side = "left";
    const batch = prompts.slice(0, 4);
    const enc = tok(batch, { padding: true });
    const width = enc.input_ids.dims[1];
    const seqs = await model.generate({ ...enc, max_new_tokens: 16, do_sample: false });
    const px = await ours(batch.map((p) => byteEncode(p)));
    assert.deepEqual(
      theirs((seqs as unknown as { tolist(): bigint[][] }).tolist(), width),
      px.responses,
    );

    // The text-generation pipeline reads the same folder.
    const gen = await pipeline("text-generation", `${root}/m`, opts);
    const [res] = await gen(prompts[0], { max_new_tokens: 16, do_sample: false }) as {
      generated_text: string;
    }[];
    const first = (await ours([byteEncode(prompts[0])])).responses[0];
    assert.equal(res.generated_text, prompts[0] + byteDecode(first, { skipSpecialTokens: true }));
  });
});
