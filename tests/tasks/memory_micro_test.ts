/**
 * The memory estimate with `ppo.micro_batches` (lib/tasks/memory.ts): the train step is counted
 * at one piece's rows, the trainer holds a scratch gradient, and a refusal names the smallest
 * micro_batches that fits (only counts that split every minibatch evenly).
 */
import assert from "node:assert/strict";
import {
  ARENA_GROWTH,
  estimateLmMemory,
  fittingMicroBatches,
  memoryProblem,
} from "../../lib/tasks/memory.ts";
import { countLmTrainStep } from "../../lib/tasks/memory_train.ts";
import { parsePpoConfig } from "../../lib/ppo/config.ts";

const model = { vocabSize: 10, nPositions: 16, nEmbd: 4, nLayer: 1, nHead: 2 };
const N = 10 * 4 + 16 * 4 + (4 + 4 + 4 * 12 + 12 + 16 + 4 + 4 + 4 + 4 * 16 + 16 + 16 * 4 + 4) + 8;
// The lm task's head at the response only (responseLen): its scoring pass stays under the
// train step's arena, so the whole estimate follows the step (without it the 8-row scoring
// pass, which micro-batches do not split, is the floor: the rollout part).
const input = { model, batch: 8, minibatches: 2, seqLen: 5, responseLen: 3 };
const at = (microBatches: number) => estimateLmMemory({ ...input, microBatches });
const keys = { batch: "batch", minibatches: "ppo.minibatches", seqLen: "max_new_tokens" };

Deno.test("estimateLmMemory counts one micro-batch's rows and the scratch gradient", () => {
  const one = at(1), two = at(2), four = at(4);
  const ppo = parsePpoConfig({});
  // 8 rows, 2 minibatches of 4; 2 pieces of 2 rows, 4 of 1.
  for (const [e, rows] of [[two, 2], [four, 1]] as const) {
    const step = countLmTrainStep({ model, rows, seqLen: 5, responseLen: 3, ppo });
    assert.equal(e.parts.activations, step.peak * (1 + ARENA_GROWTH));
    // The split trainer (forced): params, gradients, m, v and the scratch gradient.
    assert.equal(e.parts.optimizer, 4 * 5 * N);
  }
  assert.ok(four.parts.activations < two.parts.activations);
  assert.ok(two.parts.activations < one.parts.activations);
  assert.equal(two.parts.weights, one.parts.weights);
});

Deno.test("memoryProblem names the smallest ppo.micro_batches that fits", () => {
  const one = at(1), two = at(2), four = at(4);
  assert.ok(four.bytes < two.bytes && two.bytes < one.bytes);
  // Room for 4 pieces, not for 2: 4 (3 does not split 4 rows).
  const p = memoryProblem(one, keys, four.bytes, input)!;
  assert.equal(p.key, "ppo.micro_batches");
  assert.match(p.fix, /^set ppo\.micro_batches to 4 \(the smallest that fits: estimated/);
  assert.equal(fittingMicroBatches(input, two.bytes)?.micro, 2);
  // Nothing fits: the usual fixes (no count named), and a fitting estimate is no problem.
  const none = memoryProblem(one, keys, four.bytes - 1, input)!;
  assert.ok(!/set ppo\.micro_batches/.test(none.fix), none.fix);
  assert.equal(fittingMicroBatches(input, four.bytes - 1), null);
  assert.equal(memoryProblem(one, keys, one.bytes, input), null);
});
