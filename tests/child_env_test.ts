/** childEnv (lib/child_env.ts): huge pages asked of glibc in the processes Proxima starts. */
import assert from "node:assert/strict";
import { childEnv, THP_TUNABLE } from "../lib/child_env.ts";

/** Run `fn` with the given variables set (undefined: unset), then restore them. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      x === undefined ? Deno.env.delete(k) : Deno.env.set(k, x);
    }
  };
  set(vars);
  try {
    return fn();
  } finally {
    set(old);
  }
}

Deno.test({
  name: "childEnv: the THP tunable added to the parent's tunables, unless set or turned off",
  ignore: Deno.build.os !== "linux",
  fn() {
    const env = (tunables?: string, thp?: string) =>
      withEnv({ GLIBC_TUNABLES: tunables, PROXIMA_THP: thp }, childEnv);
    assert.equal(THP_TUNABLE, "glibc.malloc.hugetlb=1");
    assert.deepEqual(env(), { GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" });
    assert.deepEqual(env("glibc.malloc.arena_max=2"), {
      GLIBC_TUNABLES: "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
    });
    // The caller's own choice wins, wherever it sits in the list.
    assert.deepEqual(env("glibc.malloc.hugetlb=0"), {});
    assert.deepEqual(env("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"), {});
    assert.deepEqual(env(undefined, "0"), {});
    assert.deepEqual(env(undefined, "1"), { GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" });
  },
});

Deno.test({
  name: "childEnv: a child started with it sees the tunables (the parent's kept)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const env = withEnv(
      { GLIBC_TUNABLES: "glibc.malloc.arena_max=2", PROXIMA_THP: undefined },
      childEnv,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "console.log(Deno.env.get('GLIBC_TUNABLES'))"],
      env,
    }).output();
    assert.ok(out.success);
    assert.equal(
      new TextDecoder().decode(out.stdout).trim(),
      "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
    );
  },
});
