/**
 * The LM train step's memory, counted at planning from its graph (lib/onnx/graph_memory.ts):
 * the step createLmProblem compiles (the same policy, inputs, loss and optimizer split, from
 * lib/ppo/lm_scoring.ts and lib/ppo/train_step.ts: the same nodes), its symbolic dims bound to
 * a trial's shape — rows b, sequence S, response columns R, LoRA or full, the head's chunks —
 * with shapes only: no weights, no ORT session.
 *
 * A 0.5B model's graph is built at 1 and 2 layers of its real widths and the count extrapolated
 * linearly in the layers: every layer adds the same nodes of the same shapes, so
 * f(L) = f(1) + (L − 1)·(f(2) − f(1)) (tests/tasks/memory_train_test.ts checks it at 3 layers
 * against a 3-layer build).
 *
 * The step's outputs are written into buffers the trainer owns (the gradients in the split
 * optimizer mode, the next params and state in the graph mode: lib/onnx/trainer.ts), and its
 * parameters are fed from them: both are counted by the estimate's weights and optimizer
 * terms, not here.
 *
 * @example
 * ```ts
 * const c = countLmTrainStep({ model, rows: 16, seqLen: 43, responseLen: 32, ppo });
 * c.peak; // bytes of the step's intermediates alive at once
 * ```
 * @module
 */
import { buildGradStep, buildTrainStep, type TrainStepSpec } from "../onnx/train_graph.ts";
import { SPLIT_MIN } from "../onnx/train_split.ts";
import { graphMemory } from "../onnx/graph_memory.ts";
import { type DecoderConfig, decoderShapes, hiddenSize, trunkShapes } from "../nn/decoder.ts";
import { headShapes } from "../nn/heads.ts";
import { type LoraConfig, loraShapes } from "../nn/lora.ts";
import { isCriticFree, type PpoConfig } from "../ppo/config.ts";
import { ppoTrainStepSpec } from "../ppo/train_step.ts";
import { lmTrainInputs, lmTrainPolicy, VALUE_MODEL_PREFIX } from "../ppo/lm_scoring.ts";

/** The shape of one train step (one minibatch). */
export interface LmTrainShape {
  model: DecoderConfig;
  /** Rows of a minibatch. */
  rows: number;
  /** Sequence columns S (prompt + response). */
  seqLen: number;
  /** Response columns R with the head at the response only (chunked); absent: all S columns. */
  responseLen?: number;
  lora?: LoraConfig;
  /** A separate value trunk's config (a critic's `value_model` other than "shared"). */
  valueModel?: DecoderConfig;
  /** The PPO config the step's loss is built from. */
  ppo: PpoConfig;
}

/** What {@link countLmTrainStep} counts, in bytes. */
export interface LmTrainCount {
  /** Most intermediate bytes alive at once during the step. */
  peak: number;
  /** Forward intermediates the backward reads (included in `peak`). */
  kept: number;
}

/**
 * The train step's spec at `layers` layers (the value trunk, if any, at as many), as
 * createLmProblem builds it (rows B, sequence S and response columns T symbolic, as there:
 * the count binds them); `split`: the trainer's mode (lib/onnx/trainer.ts "auto": split
 * from SPLIT_MIN trainable values).
 */
export function lmTrainStepSpec(
  s: LmTrainShape,
  layers: number,
): { spec: TrainStepSpec; split: boolean } {
  const model = { ...s.model, nLayer: layers } as DecoderConfig;
  const valueCfg = s.valueModel &&
    ({ ...s.valueModel, nLayer: layers, prefix: VALUE_MODEL_PREFIX } as DecoderConfig);
  const critic = !isCriticFree(s.ppo);
  // The parameters as createLmProblem splits them: trunks trained or frozen under adapters.
  const trunk = { ...decoderShapes(model), ...(critic && valueCfg ? trunkShapes(valueCfg) : {}) };
  const head = critic ? headShapes(hiddenSize(valueCfg ?? model)) : {};
  const params = s.lora ? { ...loraShapes(trunk, s.lora), ...head } : { ...trunk, ...head };
  const layout = {
    model,
    valueCfg: critic ? valueCfg : undefined,
    lora: s.lora,
    logitsAt: s.responseLen !== undefined,
    ...(s.responseLen !== undefined ? { maxT: s.responseLen } : {}),
  };
  const spec = ppoTrainStepSpec({
    cfg: s.ppo,
    dtype: "float32",
    params,
    ...(s.lora ? { frozen: trunk } : {}),
    inputs: lmTrainInputs("B", "S", "T"),
    positions: ["B", "T"],
    reference: true,
    numActions: s.model.vocabSize,
    maxTokens: s.responseLen,
    policy: lmTrainPolicy(layout, critic),
  });
  const trainable = Object.values(params).reduce((a, p) => a + p.shape.reduce((x, y) => x * y), 0);
  return { spec, split: trainable >= SPLIT_MIN };
}

/** Count the step at `layers` layers. */
export function countLmTrainStepAt(s: LmTrainShape, layers: number): LmTrainCount {
  const { spec, split } = lmTrainStepSpec(s, layers);
  // The backward starts where the loss ends (autodiff appends it).
  let backwardFrom = 0;
  const loss = spec.loss;
  spec.loss = (g, p, b, hp) => {
    const out = loss(g, p, b, hp);
    backwardFrom = g.nodes.length;
    return out;
  };
  const g = split ? buildGradStep(spec).graph : buildTrainStep(spec);
  const R = s.responseLen ?? s.seqLen;
  const dims = { B: s.rows, S: s.seqLen, T: R };
  const m = graphMemory(g, { dims, backwardFrom, fedOutputs: true });
  return { peak: m.peak, kept: m.kept };
}

/**
 * The step at the model's layers, from builds at 1 and 2 layers (see the module doc); a model
 * of 1 or 2 layers is built as it is.
 */
export function countLmTrainStep(s: LmTrainShape): LmTrainCount {
  const L = s.model.nLayer;
  if (L <= 2) return countLmTrainStepAt(s, L);
  const one = countLmTrainStepAt(s, 1), two = countLmTrainStepAt(s, 2);
  return {
    peak: one.peak + (L - 1) * (two.peak - one.peak),
    kept: one.kept + (L - 1) * (two.kept - one.kept),
  };
}
