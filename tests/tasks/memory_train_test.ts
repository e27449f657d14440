/**
 * The LM train step counted at planning (lib/tasks/memory_train.ts): the graph it counts is
 * the one createLmProblem compiles, and its count is linear in the layers (the extrapolation
 * from 1 and 2 layers is exact).
 */
import assert from "node:assert/strict";
import type { LlamaConfig } from "../../lib/nn/llama_config.ts";
import { loraDefaults } from "../../lib/nn/decoder.ts";
import { buildGradStep, buildTrainStep } from "../../lib/onnx/train_graph.ts";
import { createLmProblem } from "../../lib/ppo/lm_problem.ts";
import { LmPpoSchema } from "../../lib/tasks/byte_lm.ts";
import {
  countLmTrainStep,
  countLmTrainStepAt,
  type LmTrainShape,
  lmTrainStepSpec,
} from "../../lib/tasks/memory_train.ts";

/** A Qwen2-shaped toy: GQA, QKV biases, a tied head. */
const MODEL: LlamaConfig = {
  family: "llama",
  modelType: "qwen2",
  vocabSize: 40,
  hiddenSize: 16,
  intermediateSize: 24,
  nLayer: 3,
  nHead: 4,
  nKvHead: 2,
  headDim: 4,
  maxPositions: 64,
  rmsNormEps: 1e-6,
  ropeTheta: 1e4,
  ropeScaling: { type: "default" },
  qkvBias: true,
  oBias: false,
  mlpBias: false,
  qkNorm: false,
  tieWordEmbeddings: true,
};
const grpo = LmPpoSchema.parse({ advantage: "grpo", minibatches: 1 });
const gae = LmPpoSchema.parse({ advantage: "gae", minibatches: 1 });

Deno.test("countLmTrainStep: the count is linear in the layers (3 layers = f(1) + 2·(f(2) − f(1)))", () => {
  const shapes: LmTrainShape[] = [
    { model: MODEL, rows: 4, seqLen: 12, responseLen: 10, ppo: grpo },
    { model: MODEL, rows: 3, seqLen: 9, responseLen: 5, ppo: gae },
    {
      model: MODEL,
      rows: 2,
      seqLen: 7,
      ppo: grpo,
      lora: { r: 2, alpha: 4, ...loraDefaults(MODEL) },
    },
  ];
  for (const s of shapes) {
    const [one, two, three] = [1, 2, 3].map((L) => countLmTrainStepAt(s, L));
    assert.ok(two.peak > one.peak && two.kept > one.kept, "a layer adds memory");
    assert.equal(three.peak, one.peak + 2 * (two.peak - one.peak));
    assert.equal(three.kept, one.kept + 2 * (two.kept - one.kept));
    // A 3-layer model is counted from builds at 1 and 2 layers: the same numbers.
    assert.deepEqual(countLmTrainStep(s), three);
  }
});

Deno.test("lmTrainStepSpec: the step counted is the one createLmProblem compiles", async () => {
  for (const ppo of [grpo, gae]) {
    const problem = await createLmProblem({
      model: MODEL,
      task: { prompts: () => [[1, 2]], score: () => [0] },
      cfg: ppo,
      seed: 1,
      batch: 1,
      maxNewTokens: 6,
      eosTokenId: 1,
      padTokenId: 0,
      logitsAtResponse: true,
    });
    const { spec, split } = lmTrainStepSpec(
      { model: MODEL, rows: 1, seqLen: 8, responseLen: 6, ppo },
      MODEL.nLayer,
    );
    assert.equal(split, problem.trainer.mode === "split");
    const build = split ? (s: typeof spec) => buildGradStep(s).graph : buildTrainStep;
    // The same nodes in the same order, of the same shapes.
    const nodes = (s: typeof spec) =>
      build(s).nodes.map((n) => `${n.op}(${n.inputs.join()}) -> ${n.outputs.join()}`);
    assert.deepEqual(nodes(spec), nodes(problem.trainer.spec));
    assert.deepEqual(Object.keys(spec.batch), Object.keys(problem.trainer.spec.batch));
    assert.deepEqual(spec.params, problem.trainer.spec.params);
    problem.release();
  }
});

Deno.test("lmTrainStepSpec: a chunked head's step forms no [B, T, V] tensor (critic-free or not)", () => {
  for (const ppo of [grpo, gae]) {
    const { spec, split } = lmTrainStepSpec(
      { model: MODEL, rows: 4, seqLen: 12, responseLen: 10, ppo },
      1,
    );
    const g = split ? buildGradStep(spec).graph : buildTrainStep(spec);
    // Chunks of 8 positions: the vocabulary tensors are [B, 8, V] or [B, rest, V], never the
    // concatenation of every chunk's log-softmax (log π(·), which only the exact KL reads).
    const whole = g.nodes.filter((n) =>
      n.outputs.some((o) => o.rank === 3 && o.shape[2] === MODEL.vocabSize) && n.op === "Concat"
    );
    assert.deepEqual(whole.map((n) => n.op), [], `advantage ${ppo.advantage}`);
  }
});
