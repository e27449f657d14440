/**
 * The environment Proxima adds for the processes it starts to do its own work (a sweep's trial
 * workers, stage processes, the RL bench's worker): {@link childEnv}.
 *
 * glibc's malloc is asked to back its large blocks with transparent huge pages
 * (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`: madvise(MADV_HUGEPAGE) on the memory it maps), so a
 * process that fills gigabytes of fresh memory (ORT's pre-packed weights and arenas, big typed
 * arrays) takes one page fault per 2 MiB instead of per 4 KiB. Where page faults are costly (a
 * VM that backs each new guest page: here ~10 µs each) that is the bulk of a session's build:
 * the 0.5B sampler's session 16.3 s -> 7.5 s alone, the RL bench's set-up ~2-3 s shorter, its
 * peak RSS within 0.3 %. Numbers are unchanged: only where pages come from differs. glibc reads
 * the tunable at start-up only, hence the child's environment; a process started by hand gets
 * it by setting the variable itself. `PROXIMA_THP=0` leaves the environment alone.
 *
 * @module
 */

/** The glibc tunable that asks malloc for transparent huge pages. */
export const THP_TUNABLE = "glibc.malloc.hugetlb=1";

/** An env variable, or undefined (unset, or no permission to read it). */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Variables to add to a child's environment (Deno.Command's `env`, which extends the
 * inherited one): GLIBC_TUNABLES with {@link THP_TUNABLE} appended to the parent's tunables,
 * unless they set `glibc.malloc.hugetlb` already or `PROXIMA_THP=0`. Empty elsewhere than Linux.
 *
 * @example
 * ```ts
 * new Deno.Command(Deno.execPath(), { args, env: { ...childEnv(), OMP_NUM_THREADS: "2" } });
 * ```
 */
export function childEnv(): Record<string, string> {
  if (Deno.build.os !== "linux" || env("PROXIMA_THP") === "0") return {};
  const have = env("GLIBC_TUNABLES") ?? "";
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(have)) return {};
  return { GLIBC_TUNABLES: have ? `${have}:${THP_TUNABLE}` : THP_TUNABLE };
}
