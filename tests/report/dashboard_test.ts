/**
 * Acceptance (issue 27): `deno task dashboard` on a results folder while a small sweep runs,
 * opened in headless Chromium (Debian's `chromium`, installed by .ci/setup; driven with
 * playwright-core): every trial is listed, charts are drawn (an SVG inside the vega view), the
 * sweep's trials appear as they finish, an appended metric row appears without a reload,
 * evaluation samples show before and after, a screenshot is kept, and no request leaves
 * localhost. The results folder the test does not write to stays byte-identical.
 *
 * The screenshot stays in a temp folder (its path is printed); PROXIMA_DASHBOARD_SCREENSHOT=FILE
 * copies it there too.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { deno } from "../experiment/helpers.ts";
import { pngHeader, tempDir } from "./helpers.ts";
import {
  appendRow,
  liveRow,
  resultsWithRunningTrial,
  snapshot,
  startDashboardProcess,
} from "./dashboard_helpers.ts";

const CHROMIUM = Deno.env.get("PROXIMA_CHROMIUM") ?? "/usr/bin/chromium";
const FIXTURE = "tests/report/fixtures/tiny_kl.ts";

Deno.test({
  name: "dashboard in headless Chromium: trials, charts, live rows, a screenshot, localhost only",
  // playwright-core keeps its own pipes and timers to the browser process between calls.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const st = await Deno.stat(CHROMIUM).catch(() => null);
    assert.ok(
      st?.isFile,
      `${CHROMIUM}: not found — this test needs Debian's chromium: \`apt-get install -y ` +
        `chromium\` (.ci/setup installs it), or set PROXIMA_CHROMIUM to a Chromium binary`,
    );
    const root = await tempDir("dash-browser");
    const { done, liveId, live } = await resultsWithRunningTrial(root);
    const before = await snapshot(`${root}/kl`);
    const d = await startDashboardProcess(root);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage", // containers often have a small /dev/shm
      ],
    });
    const requests: string[] = [];
    const errors: string[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      page.on("request", (r) => requests.push(r.url()));
      page.on("pageerror", (e) => errors.push(String(e)));
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      await page.goto(d.url);
      await page.waitForSelector("body[data-ready='1']", { timeout: 20_000 });

      await t.step("every trial is listed and the charts are drawn", async () => {
        for (const id of [...done, liveId]) {
          assert.equal(await page.locator(`tr[data-trial='${id}']`).count(), 1, id);
        }
        assert.equal(
          await page.locator(`tr[data-trial='${liveId}']`).getAttribute("data-status"),
          "running",
        );
        for (const chart of ["curve", "frontier", "diagnostics"]) {
          const marks = await page.locator(`#${chart}.vega-embed svg path`).count();
          assert.ok(marks > 3, `${chart}: ${marks} SVG paths`);
        }
        const curveText = await page.locator("#curve svg").textContent();
        assert.match(curveText!, /gold_score vs update, by ppo\.kl\.beta/);
        assert.match(curveText!, /band: ±1 std/);
      });

      await t.step("evaluation samples side by side, before and after", async () => {
        await page.selectOption("#eval-trial", done[0]);
        await page.waitForSelector("#eval table.eval");
        const row = await page.locator("#eval table.eval tbody tr").first().textContent();
        for (const want of ["The movie was", "fairly dull.", "wonderful, a delight.", "rm 1.31"]) {
          assert.ok(row!.includes(want), `"${want}" not in ${row}`);
        }
      });

      await t.step("a sweep that runs meanwhile shows up without a reload", async () => {
        const sw = await deno(["run", "-A", "cli/sweep.ts", FIXTURE, "--results", root, "--quiet"]);
        assert.equal(sw.code, 0, sw.stdout + sw.stderr);
        const nav = page.locator("nav button[data-experiment='tiny-kl']");
        await nav.waitFor({ timeout: 20_000 });
        // (Predicates are strings: they run in the page, where `document` is.)
        await page.waitForFunction(
          `document.querySelector("nav button[data-experiment='tiny-kl'] small")?.textContent ` +
            `=== "4 trials"`,
          undefined,
          { timeout: 20_000 },
        );
        await nav.click();
        await page.waitForFunction(
          `document.querySelectorAll("#trials tr[data-status='done']").length === 4 && ` +
            // 2048 steps of 4 envs × 128: 4 updates planned, 4 done.
            `[...document.querySelectorAll("#trials td.update")].every((td) => ` +
            `td.textContent === "4 / 4") && ` +
            `document.querySelector("#curve svg")?.textContent?.includes("episodic_return")`,
        );
        await page.click("nav button[data-experiment='kl']");
        await page.waitForFunction(
          `document.querySelector("tr[data-trial='${liveId}']") !== null && ` +
            `document.querySelector("#curve svg")?.textContent?.includes("gold_score")`,
        );
      });

      await t.step("an appended metric row appears without a reload", async () => {
        const points = Number(await page.locator("body").getAttribute("data-curve-points"));
        const cell = page.locator(`tr[data-trial='${liveId}'] td.update`);
        assert.equal(await cell.textContent(), "2 / 3");
        await appendRow(live, liveRow(3));
        await page.waitForFunction(
          `document.querySelector("tr[data-trial='${liveId}'] td.update")?.textContent === ` +
            `"3 / 3" && Number(document.body.dataset.curvePoints) === ${points + 1}`,
          undefined,
          { timeout: 20_000 },
        );
        // The new point is in the drawn chart's data: the live series (β = 0.3) now has 3 updates.
        const live03 = await page.evaluate(() => {
          // deno-lint-ignore no-explicit-any
          const view = (globalThis as any).dashboard.views.curve;
          const data = view.data("source_0") as { series: string; update: number }[];
          return data.filter((r) => r.series === "0.3").map((r) => r.update);
        });
        assert.deepEqual(live03, [1, 2, 3]);
      });

      await t.step("a screenshot is kept", async () => {
        // Outside the results folder, and left in place for a person (or CI artifact) to look at.
        const path = `${await Deno.makeTempDir({ prefix: "proxima-dashboard-" })}/dashboard.png`;
        await page.screenshot({ path, fullPage: true });
        const { width, height } = pngHeader(await Deno.readFile(path));
        assert.ok(width >= 1400 && height >= 900, `${width}×${height}`);
        console.log(`dashboard screenshot: ${path}`);
        const keep = Deno.env.get("PROXIMA_DASHBOARD_SCREENSHOT");
        if (keep) await Deno.copyFile(path, keep);
      });

      await t.step("no request left localhost; no page errors", () => {
        assert.ok(requests.length >= 6, requests.join("\n"));
        for (const u of requests) {
          const { protocol, hostname } = new URL(u);
          assert.ok(
            protocol === "data:" || hostname === "127.0.0.1" || hostname === "localhost",
            `request to ${u}`,
          );
        }
        assert.deepEqual(errors, []);
      });
    } finally {
      await browser.close();
      await d.stop();
    }
    // Nothing in kl/ changed but the test's own append to the running trial's metrics.
    const after = await snapshot(`${root}/kl`);
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
    for (const [k, v] of before) {
      if (k !== `.tmp-${liveId}/metrics.jsonl`) assert.equal(after.get(k), v, k);
    }
    await Deno.remove(root, { recursive: true });
  },
});
