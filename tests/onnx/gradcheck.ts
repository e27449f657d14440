/**
 * Central finite-difference gradient check in float64 through ONNX Runtime.
 * loss = Σ y ⊙ w with a fixed random w, so every output element is weighted.
 */
import { type Dim, Graph, type Value } from "../../lib/onnx/graph.ts";
import { gradients } from "../../lib/onnx/autodiff.ts";
import { compile, tensor } from "../../lib/onnx/session.ts";
import { Rng } from "../../lib/rng.ts";

export interface InputSpec {
  /** Declared shape (may be symbolic, to exercise symbolic broadcasting). */
  shape: Dim[];
  /** Concrete shape fed at run time (defaults to `shape` when it is all numbers). */
  feed?: number[];
  /** Sample |x| in [lo, hi] with random sign (default [0.1, 1.5]); `positive` drops the sign. */
  lo?: number;
  hi?: number;
  positive?: boolean;
  /** Not differentiated (e.g. an index tensor): fixed int64 values. */
  ints?: number[];
}

export interface GradcheckResult {
  maxRelError: number;
  perInput: number[];
}

export async function gradcheck(
  build: (g: Graph, xs: Value[]) => Value,
  specs: InputSpec[],
  seed = 0,
): Promise<GradcheckResult> {
  const rng = new Rng(seed);
  const feeds = specs.map((s) => {
    const shape = s.feed ?? (s.shape as number[]);
    if (s.ints) return tensor("int64", shape, s.ints);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const mag = (s.lo ?? 0.1) + rng.uniform() * ((s.hi ?? 1.5) - (s.lo ?? 0.1));
      data[j] = s.positive || rng.uniform() < 0.5 ? mag : -mag;
    }
    return tensor("float64", shape, data);
  });
  const declare = (g: Graph) =>
    specs.map((s, i) => g.input(`x${i}`, s.ints ? "int64" : "float64", s.shape));
  const feedMap = Object.fromEntries(feeds.map((t, i) => [`x${i}`, t]));

  // Pass 1: the output's concrete shape, to draw w.
  const probe = new Graph("probe");
  probe.output(build(probe, declare(probe)), "y");
  const yShape = [...(await (await compile(probe)).run(feedMap)).y.dims];
  const w = tensor(
    "float64",
    yShape,
    new Rng(seed + 1).fillNormal(new Float64Array(yShape.reduce((a, b) => a * b, 1))),
  );

  const g = new Graph("gradcheck");
  const xs = declare(g);
  const y = build(g, xs);
  const wv = g.input("w", "float64", y.shape);
  const loss = g.reduceSum(g.mul(y, wv));
  g.output(loss, "loss");
  const diff = specs.map((s, i) => (s.ints ? undefined : xs[i])).filter((v): v is Value => !!v);
  gradients(g, loss, diff).forEach((d, i) => g.output(d, `d_${diff[i].name}`));
  const session = await compile(g);
  const analytic = await session.run({ ...feedMap, w });

  const h = 1e-6;
  const perInput: number[] = [];
  for (const x of diff) {
    const data = feeds[xs.indexOf(x)].data as Float64Array;
    const a = analytic[`d_${x.name}`].data as Float64Array;
    let maxDiff = 0, scale = 0;
    for (let j = 0; j < data.length; j++) {
      const orig = data[j];
      data[j] = orig + h;
      const lp = ((await session.run({ ...feedMap, w })).loss.data as Float64Array)[0];
      data[j] = orig - h;
      const lm = ((await session.run({ ...feedMap, w })).loss.data as Float64Array)[0];
      data[j] = orig;
      const numeric = (lp - lm) / (2 * h);
      maxDiff = Math.max(maxDiff, Math.abs(numeric - a[j]));
      scale = Math.max(scale, Math.abs(numeric), Math.abs(a[j]));
    }
    if (a.length !== data.length) {
      throw new Error(`gradient of ${x} has ${a.length} values, input ${data.length}`);
    }
    perInput.push(scale === 0 ? maxDiff : maxDiff / scale);
  }
  return { maxRelError: Math.max(0, ...perInput), perInput };
}
