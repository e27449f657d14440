// The dashboard page: plain browser JavaScript, no build step. It reads the dashboard's JSON
// API (lib/report/dashboard/server.ts), draws lib/report's Vega-Lite specs with vega-embed,
// and follows /api/events (Server-Sent Events) so new metric rows and trials appear without
// a reload. State the tests read: `window.dashboard` (views, last event) and data-* attributes.
"use strict";

const state = {
  experiments: [],
  current: null,
  /** Trial ids ticked for plotting, per experiment (absent: all). */
  selected: new Map(),
  metric: null,
  band: "std",
  diagTrial: null,
  evalTrial: null,
  views: {},
  renders: 0,
  lastEvent: null,
};
globalThis.dashboard = state;

const $ = (id) => document.getElementById(id);
const esc = (s) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5)
      ? v.toExponential(3)
      : String(Number(v.toPrecision(4)));
  }
  return typeof v === "string" ? v : JSON.stringify(v);
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return await r.json();
}

function experiment() {
  return state.experiments.find((e) => e.name === state.current) ?? null;
}

function selectedIds(e) {
  const sel = state.selected.get(e.name);
  return sel ? e.trials.filter((t) => sel.has(t.id)).map((t) => t.id) : e.trials.map((t) => t.id);
}

// ---- experiments and trials ------------------------------------------------------------

async function loadExperiments() {
  const data = await getJson("/api/experiments");
  $("root").textContent = data.root;
  state.experiments = data.experiments;
  if (!state.current || !experiment()) state.current = state.experiments[0]?.name ?? null;
  renderNav();
  renderTrials();
}

function renderNav() {
  const nav = $("experiments");
  nav.innerHTML = "";
  if (!state.experiments.length) {
    nav.innerHTML = `<p class="hint">no experiments yet: start a sweep</p>`;
  }
  for (const e of state.experiments) {
    const b = document.createElement("button");
    const running = e.trials.filter((t) => t.status === "running").length;
    b.innerHTML = `${esc(e.name)}<small>${e.trials.length} trials${
      running ? `, ${running} running` : ""
    }</small>`;
    b.dataset.experiment = e.name;
    if (e.name === state.current) b.classList.add("selected");
    b.onclick = () => {
      state.current = e.name;
      state.metric = null;
      state.diagTrial = null;
      state.evalTrial = null;
      renderNav();
      renderTrials();
      refreshCharts();
      refreshEval();
    };
    nav.appendChild(b);
  }
}

function renderTrials() {
  const e = experiment();
  const table = $("trials");
  if (!e) {
    table.innerHTML = "";
    $("exp-info").textContent = "";
    return;
  }
  $("exp-info").textContent = `${e.name} — ${e.tasks.join(", ")}; swept: ${
    e.sweptKeys.join(", ") || "nothing"
  }`;
  const w = $("warnings");
  w.hidden = !e.warnings.length;
  w.textContent = e.warnings.join("\n");
  const sel = new Set(selectedIds(e));
  const head = [
    "",
    "status",
    "trial",
    ...e.sweptKeys,
    "seed",
    "update",
    ...e.finalMetrics,
    "bundle",
  ];
  const rows = e.trials.map((t) => {
    const progress = t.update === null ? "–" : `${t.update}${t.updates ? ` / ${t.updates}` : ""}`;
    return `<tr data-trial="${esc(t.id)}" data-status="${t.status}" data-rows="${t.rows}">
      <td><input type="checkbox" ${sel.has(t.id) ? "checked" : ""} aria-label="plot ${
      esc(t.id)
    }"></td>
      <td><span class="status ${t.status}" title="${statusTitle(t.status)}">${t.status}</span></td>
      <td class="id">${esc(t.id.slice(0, 10))}</td>
      ${e.sweptKeys.map((k) => `<td class="num">${esc(fmt(t.swept[k]))}</td>`).join("")}
      <td class="num">${esc(fmt(t.seed))}</td>
      <td class="num update">${esc(progress)}</td>
      ${e.finalMetrics.map((m) => `<td class="num">${esc(fmt(t.final[m]))}</td>`).join("")}
      <td class="hash" title="${esc(t.bundleHash ?? "no bundle yet")}">${
      esc(t.bundleHash ? t.bundleHash.slice(0, 12) : "–")
    }</td>
    </tr>`;
  });
  table.innerHTML = `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>` +
    `<tbody>${rows.join("")}</tbody>`;
  for (const tr of table.querySelectorAll("tbody tr")) {
    tr.querySelector("input").onchange = (ev) => {
      const s = new Set(selectedIds(e));
      if (ev.target.checked) s.add(tr.dataset.trial);
      else s.delete(tr.dataset.trial);
      state.selected.set(e.name, s);
      refreshCharts();
    };
  }
  fillTrialSelect($("diag-trial"), e, state.diagTrial);
  fillTrialSelect($("eval-trial"), e, state.evalTrial);
}

function statusTitle(s) {
  return s === "done"
    ? "finished: a verified-format bundle"
    : s === "running"
    ? "its worker is training it now"
    : "work folder left, nobody works on it: failed or interrupted; run the sweep again";
}

function fillTrialSelect(select, e, current) {
  const label = (t) =>
    `${t.id.slice(0, 10)} ${e.sweptKeys.map((k) => `${k}=${fmt(t.swept[k])}`).join(" ")} seed ${
      fmt(t.seed)
    } (${t.status})`;
  select.innerHTML = e.trials.map((t) =>
    `<option value="${esc(t.id)}" ${t.id === current ? "selected" : ""}>${esc(label(t))}</option>`
  ).join("");
}

// ---- charts ----------------------------------------------------------------------------

let chartsPending = null;
function refreshChartsSoon() {
  clearTimeout(chartsPending);
  chartsPending = setTimeout(refreshCharts, 250);
}

async function embed(id, spec) {
  const el = $(id);
  if (!spec) {
    state.views[id]?.finalize();
    delete state.views[id];
    el.innerHTML = "";
    return;
  }
  const result = await vegaEmbed(el, spec, { actions: false, renderer: "svg" });
  state.views[id]?.finalize();
  state.views[id] = result.view;
}

async function refreshCharts() {
  const e = experiment();
  if (!e) return;
  const params = new URLSearchParams({ experiment: e.name, band: state.band });
  const ids = selectedIds(e);
  if (ids.length !== e.trials.length) params.set("trials", ids.join(",") || "none");
  if (state.metric) params.set("metric", state.metric);
  if (state.diagTrial) params.set("diagnostics", state.diagTrial);
  let set;
  try {
    set = await getJson(`/api/charts?${params}`);
  } catch (err) {
    $("frontier-note").textContent = String(err);
    return;
  }
  const metricSel = $("metric");
  state.metric = set.metric;
  metricSel.innerHTML = e.columns.filter((c) => c !== "update").map((c) =>
    `<option ${c === set.metric ? "selected" : ""}>${esc(c)}</option>`
  ).join("");
  await embed("curve", set.curve);
  await embed("frontier", set.frontier);
  $("frontier-note").textContent = set.frontier
    ? `frontier: ${set.frontierNote}`
    : set.frontierNote;
  state.diagTrial = set.diagnosticsTrial;
  if (set.diagnosticsTrial) $("diag-trial").value = set.diagnosticsTrial;
  await embed("diagnostics", set.diagnostics);
  $("diagnostics-note").textContent = set.diagnostics
    ? ""
    : "no PPO diagnostics (clipfrac, entropy, explained variance, ...) in these trials";
  state.renders++;
  document.body.dataset.renders = String(state.renders);
  document.body.dataset.curvePoints = String(set.curve?.data?.values?.length ?? 0);
}

// ---- evaluation samples ----------------------------------------------------------------

async function refreshEval() {
  const e = experiment();
  const box = $("eval");
  if (!e || !e.trials.length) {
    box.innerHTML = "";
    return;
  }
  const id = state.evalTrial ?? e.trials.find((t) => t.status === "done")?.id ?? e.trials[0].id;
  state.evalTrial = id;
  $("eval-trial").value = id;
  const v = await getJson(
    `/api/eval?experiment=${encodeURIComponent(e.name)}&trial=${encodeURIComponent(id)}`,
  );
  if (!v.before && !v.after) {
    box.innerHTML = `<p class="hint">${esc(v.note ?? "no evaluation")}</p>`;
    return;
  }
  const keys = [
    ...new Set([...Object.keys(v.before?.metrics ?? {}), ...Object.keys(v.after?.metrics ?? {})]),
  ];
  const summary = `<table><thead><tr><th></th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}
    </tr></thead><tbody>${
    ["before", "after"].map((side) =>
      `<tr><th>${side}</th>${
        keys.map((k) => `<td class="num">${esc(fmt(v[side]?.metrics?.[k]))}</td>`).join("")
      }</tr>`
    ).join("")
  }</tbody></table>`;
  const n = Math.max(v.before?.samples.length ?? 0, v.after?.samples.length ?? 0);
  const scores = (s) =>
    s ? Object.entries(s.scores).map(([k, x]) => `${esc(k)} ${esc(fmt(x))}`).join("<br>") : "";
  const rows = [];
  for (let i = 0; i < n; i++) {
    const b = v.before?.samples[i], a = v.after?.samples[i];
    const prompt = b && a && b.prompt !== a.prompt
      ? `${esc(b.prompt)}<br>/ ${esc(a.prompt)}`
      : esc((b ?? a).prompt);
    rows.push(`<tr><td class="num">${i + 1}</td><td class="text">${prompt}</td>
      <td class="text">${esc(b?.response ?? "")}</td><td>${scores(b)}</td>
      <td class="text">${esc(a?.response ?? "")}</td><td>${scores(a)}</td></tr>`);
  }
  box.innerHTML = summary + `<table class="eval"><thead><tr><th>#</th><th>prompt</th>
    <th>before: response</th><th>reward</th><th>after: response</th><th>reward</th></tr></thead>
    <tbody>${rows.join("")}</tbody></table>`;
}

// ---- paper tables ----------------------------------------------------------------------

// The markdown reproduce writes: headings, pipe tables, paragraphs, `code` and **bold**.
function markdown(md) {
  const inline = (s) =>
    esc(s).replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>");
  const out = [];
  const lines = md.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith("|")) {
      const block = [];
      while (i < lines.length && lines[i].startsWith("|")) block.push(lines[i++]);
      i--;
      const cells = (r) => r.replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((c) => c.trim());
      const body = block.filter((r, j) => !(j === 1 && /^[|\s:-]+$/.test(r)));
      out.push(
        `<table><thead><tr>${
          cells(body[0]).map((c) => `<th>${inline(c)}</th>`).join("")
        }</tr></thead><tbody>${
          body.slice(1).map((r) =>
            `<tr>${cells(r).map((c) => `<td>${inline(c)}</td>`).join("")}</tr>`
          ).join("")
        }</tbody></table>`,
      );
    } else if (/^#+ /.test(l)) {
      out.push(`<h3>${inline(l.replace(/^#+ /, ""))}</h3>`);
    } else if (l.trim()) out.push(`<p>${inline(l)}</p>`);
  }
  return out.join("\n");
}

async function refreshTables() {
  const tables = await getJson("/api/tables");
  $("tables").innerHTML = tables.length
    ? tables.map((t) =>
      `<div class="md" data-table="${esc(t.name)}"><p class="hint">${esc(t.name)}${
        t.quick ? " --quick" : ""
      } from ${
        Object.entries(t.experiments).map(([k, n]) => `${esc(k)}/ (${n} trials)`).join(", ")
      }</p>${t.markdown ? markdown(t.markdown) : `<p class="warn">${esc(t.error)}</p>`}</div>`
    ).join("")
    : `<p class="hint">no bundles of a reproduce experiment here (e.g. <code>deno task reproduce ` +
      `ppo-table1 --quick</code>)</p>`;
}

// ---- live updates ----------------------------------------------------------------------

let tablesPending = null;
function connect() {
  const es = new EventSource("/api/events");
  es.onopen = () => {
    $("live").className = "live on";
    $("live").textContent = "live";
  };
  es.onerror = () => {
    $("live").className = "live off";
    $("live").textContent = "reconnecting…";
  };
  es.onmessage = async (msg) => {
    const ev = JSON.parse(msg.data);
    state.lastEvent = ev;
    if (ev.type === "rows") {
      const e = state.experiments.find((x) => x.name === ev.experiment);
      const t = e?.trials.find((x) => x.id === ev.trial);
      if (t) {
        t.rows = ev.count;
        t.update = ev.last?.update ?? t.update;
        for (const m of e.finalMetrics) {
          if (typeof ev.last?.[m] === "number" && t.status !== "done") t.final[m] = ev.last[m];
        }
      }
      if (ev.experiment === state.current) {
        renderTrials();
        const tr = document.querySelector(`tr[data-trial="${CSS.escape(ev.trial)}"]`);
        tr?.classList.add("flash");
        refreshChartsSoon();
      }
      $("live").textContent = `live — update ${fmt(ev.last?.update)} of ${ev.trial.slice(0, 10)}`;
    } else if (ev.type === "trials") {
      await loadExperiments();
      if (ev.experiment === state.current) {
        refreshChartsSoon();
        refreshEval(); // a trial that just finished has its evaluation now
      }
      clearTimeout(tablesPending);
      tablesPending = setTimeout(refreshTables, 1000);
    }
  };
}

$("metric").onchange = (ev) => {
  state.metric = ev.target.value;
  refreshCharts();
};
$("band").onchange = (ev) => {
  state.band = ev.target.value;
  refreshCharts();
};
$("diag-trial").onchange = (ev) => {
  state.diagTrial = ev.target.value;
  refreshCharts();
};
$("eval-trial").onchange = (ev) => {
  state.evalTrial = ev.target.value;
  refreshEval();
};
$("select-all").onclick = () => {
  const e = experiment();
  if (!e) return;
  state.selected.delete(e.name);
  renderTrials();
  refreshCharts();
};
$("select-none").onclick = () => {
  const e = experiment();
  if (!e) return;
  state.selected.set(e.name, new Set());
  renderTrials();
  refreshCharts();
};

(async () => {
  await loadExperiments();
  await Promise.all([refreshCharts(), refreshEval(), refreshTables()]);
  document.body.dataset.ready = "1";
  connect();
})().catch((err) => {
  document.body.dataset.error = String(err);
  $("warnings").hidden = false;
  $("warnings").textContent = String(err);
});
