/**
 * The dashboard's HTTP server: the page, the vega browser builds, a JSON API over
 * {@link ResultsWatcher}, and a Server-Sent Events stream (`/api/events`) that tells the page
 * what changed each time the results folder is polled (new metric rows, trials that started
 * or finished). Read-only: every route is GET (or HEAD); nothing is written anywhere.
 *
 * API (JSON):
 * - `/api/experiments`: every experiment with its trials (status, swept values, seed, final
 *   metrics, bundle hash, rows so far).
 * - `/api/charts?experiment=E&trials=a,b&metric=m&band=std|ci95|none&diagnostics=id`: the
 *   Vega-Lite specs of the curve, the KL–reward frontier and one trial's diagnostics.
 * - `/api/rows?experiment=E&trial=T&from=N`: a trial's metrics rows from index N.
 * - `/api/eval?experiment=E&trial=T`: its evaluation samples before and after training.
 * - `/api/tables`: the `reproduce` paper tables the bundles present allow.
 *
 * @example
 * ```ts
 * const d = await startDashboard({ root: "results", hostname: "127.0.0.1", port: 0 });
 * console.log(d.url);
 * await d.close();
 * ```
 * @module
 */
import type { BandKind } from "../charts.ts";
import { type Change, ResultsWatcher } from "./data.ts";
import { chartSet, evalView, paperTables } from "./views.ts";
import { PAGE_FILES, pagePath, vendorPaths } from "./assets.ts";

export interface DashboardOptions {
  /** A results root or one experiment folder. */
  root: string;
  hostname: string;
  /** 0 = any free port. */
  port: number;
  /** How often the results folder is rescanned (default 500 ms). */
  pollMs?: number;
}

/** A running dashboard. */
export interface Dashboard {
  /** `http://host:port/`. */
  url: string;
  port: number;
  watcher: ResultsWatcher;
  /** Stop polling, end the event streams and the server. */
  close(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

const BANDS: readonly BandKind[] = ["std", "ci95", "none"];

/** Start the dashboard (the results folder is checked and scanned first). */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const watcher = new ResultsWatcher(opts.root);
  await watcher.check();
  const vendor = await vendorPaths();
  await watcher.refresh();

  const clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const enc = new TextEncoder();
  let seq = 0;
  const send = (event: Record<string, unknown>) => {
    const msg = enc.encode(`id: ${++seq}\ndata: ${JSON.stringify(event)}\n\n`);
    for (const c of clients) {
      try {
        c.enqueue(msg);
      } catch {
        clients.delete(c);
      }
    }
  };

  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const poll = async () => {
    try {
      const changes = await watcher.refresh();
      for (const ch of changes) send(eventOf(watcher, ch));
    } catch (e) {
      send({ type: "error", message: (e as Error).message });
    }
    if (!stopped) timer = setTimeout(poll, opts.pollMs ?? 500);
  };
  timer = setTimeout(poll, opts.pollMs ?? 500);
  // A comment line now and then keeps idle connections (and proxies) from timing out.
  const keepAlive = setInterval(() => {
    for (const c of clients) {
      try {
        c.enqueue(enc.encode(": keep-alive\n\n"));
      } catch {
        clients.delete(c);
      }
    }
  }, 15_000);

  const handler = async (req: Request): Promise<Response> => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return text(405, "the dashboard is read-only: GET only");
    }
    const url = new URL(req.url);
    const q = url.searchParams;
    const page = PAGE_FILES[url.pathname] ??
      (url.pathname === "/index.html" ? PAGE_FILES["/"] : null);
    if (page) return file(pagePath(page.file), page.type);
    if (url.pathname.startsWith("/vendor/")) {
      const path = vendor.get(url.pathname.slice("/vendor/".length));
      return path ? file(path, "text/javascript; charset=utf-8") : text(404, "no such file");
    }
    switch (url.pathname) {
      case "/api/experiments":
        return json({ root: opts.root, experiments: watcher.experiments(), seq });
      case "/api/charts": {
        const band = (q.get("band") ?? "std") as BandKind;
        if (!BANDS.includes(band)) return text(400, `band must be one of ${BANDS.join(", ")}`);
        const set = chartSet(watcher, q.get("experiment") ?? "", {
          trials: (q.get("trials") ?? "").split(",").filter(Boolean),
          metric: q.get("metric") ?? undefined,
          band,
          diagnostics: q.get("diagnostics") ?? undefined,
        });
        return set ? json(set) : text(404, `no experiment "${q.get("experiment")}"`);
      }
      case "/api/rows": {
        const t = watcher.trials(q.get("experiment") ?? "")?.trials.find((t) =>
          t.id === q.get("trial")
        );
        if (!t) return text(404, "no such trial");
        const from = Math.max(0, Number(q.get("from") ?? 0) || 0);
        return json({ trial: t.id, count: t.rows.length, from, rows: t.rows.slice(from) });
      }
      case "/api/eval": {
        const v = await evalView(watcher, q.get("experiment") ?? "", q.get("trial") ?? "");
        return v ? json(v) : text(404, "no such trial");
      }
      case "/api/tables":
        return json(await paperTables(watcher));
      case "/api/events": {
        let me: ReadableStreamDefaultController<Uint8Array>;
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            me = c;
            clients.add(c);
            c.enqueue(enc.encode(`retry: 1000\nid: ${seq}\ndata: {"type":"hello"}\n\n`));
          },
          cancel() {
            clients.delete(me);
          },
        });
        return new Response(body, {
          headers: {
            "content-type": "text/event-stream",
            "cache-control": "no-store",
          },
        });
      }
    }
    return text(404, `no such page: ${url.pathname}`);
  };

  let resolveListen: (port: number) => void;
  const listening = new Promise<number>((r) => resolveListen = r);
  const server = Deno.serve({
    hostname: opts.hostname,
    port: opts.port,
    onListen: ({ port }) => resolveListen(port),
  }, handler);
  const port = await listening;
  const host = opts.hostname.includes(":") ? `[${opts.hostname}]` : opts.hostname;
  return {
    url: `http://${host}:${port}/`,
    port,
    watcher,
    finished: server.finished,
    async close() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(keepAlive);
      for (const c of clients) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      clients.clear();
      await server.shutdown();
    },
  };
}

// What the page is told about one change: rows events carry the new rows' count and the last
// row (the page refetches what it shows).
function eventOf(w: ResultsWatcher, ch: Change): Record<string, unknown> {
  if (ch.type !== "rows") return ch;
  const t = w.trials(ch.experiment)?.trials.find((t) => t.id === ch.trial);
  return { ...ch, last: t?.rows.at(-1) ?? null };
}

function json(v: unknown): Response {
  return new Response(JSON.stringify(v), {
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

function text(status: number, body: string): Response {
  return new Response(body + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

async function file(path: string, type: string): Promise<Response> {
  try {
    return new Response(await Deno.readFile(path), {
      headers: { "content-type": type, "cache-control": "no-store" },
    });
  } catch {
    return text(404, `missing: ${path}`);
  }
}
