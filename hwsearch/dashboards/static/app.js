// The hwsearch dashboard: plain JavaScript over the REST API, plots drawn as SVG.
// The API token is kept in localStorage; a link may carry it as #token=... (taken once,
// then removed from the address bar).
"use strict";

const TOKEN_KEY = "hwsearch.token";
const ACTIVE = new Set(["queued", "running"]);
const SVG = "http://www.w3.org/2000/svg";
const state = { job: null, front: null, selected: null, timer: null };

// A running job whose driver stopped renewing its lease is shown interrupted: a runner
// adopts it, or `hwsearch resume` continues it.
function staleTitle(job) {
  const d = job.driver;
  const resume = `; resumable: hwsearch resume ${job.id}`;
  return (d ? `driver gone: last heartbeat ${d.heartbeat_at} from ${d.host} pid ${d.pid}`
    : "driver gone") + resume;
}

function shownState(job) { return job.shown_state || job.state; }

function stateBadge(job, attrs = {}) {
  const shown = shownState(job);
  const badge = el("span", { class: `state ${shown}`, ...attrs }, shown);
  if (job.stale) badge.setAttribute("title", staleTitle(job));
  else if (shown === "interrupted") badge.setAttribute("title", `resumable: hwsearch resume ${job.id}`);
  return badge;
}

const $ = (id) => document.getElementById(id);

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

function takeTokenFromFragment() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + "#/");
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, ...(options.headers || {}) },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    const error = new Error(`${response.status}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return response;
}

function say(text) { $("message").textContent = text || ""; }

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  if (a >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(3)));
}

// -- routing ----------------------------------------------------------------------------

function route() {
  clearTimeout(state.timer);
  const match = location.hash.match(/^#\/jobs\/(\d+)/);
  $("jobs-view").hidden = !!match;
  $("job-view").hidden = !match;
  if (!token()) { say("Enter an API token (hwsearch tokens create) to see jobs."); return; }
  if (match) showJob(Number(match[1]), true); else showJobs();
}

// -- job list ---------------------------------------------------------------------------

async function showJobs() {
  try {
    const data = await (await api("/jobs?limit=100")).json();
    const body = $("jobs").querySelector("tbody");
    body.replaceChildren();
    for (const job of data.items) {
      const row = el("tr", { "data-job-id": job.id });
      row.append(el("td", {}, job.id), el("td", {}, job.name), el("td", {}, job.family),
        el("td", {}, job.target));
      const stateCell = el("td");
      stateCell.append(stateBadge(job));
      if (job.stale) stateCell.append(" ", el("span", { class: "stale", title: staleTitle(job) }, "driver gone"));
      row.append(stateCell, progressCell(job), el("td", {}, job.created_at.slice(0, 19)));
      row.addEventListener("click", () => { location.hash = `#/jobs/${job.id}`; });
      body.append(row);
    }
    say(data.count ? "" : "No jobs yet: submit one with hwsearch submit SPEC.");
    if (data.items.some((j) => ACTIVE.has(shownState(j)))) state.timer = setTimeout(showJobs, 2000);
  } catch (error) { say(error.message); }
}

// The bar is what was spent of the budget (measured and failed candidates), however the
// job ended: one stopped at 14 of 48 (its wall time spent) shows 29%, not a full bar.
function measured(job) { return job.measured ?? job.evaluations; }

function progressCell(job) {
  const cell = el("td");
  const bar = el("span", { class: "bar", title: `${Math.round(100 * (job.progress || 0))}% of the budget` });
  const fill = el("span");
  fill.style.width = `${Math.round(100 * (job.progress || 0))}%`;
  bar.append(fill);
  const budget = job.budget_evaluations ? `/${job.budget_evaluations}` : "";
  const predicted = job.predicted ? ` +${job.predicted} predicted` : "";
  const failed = job.failed ? ` · ${job.failed} failed` : "";
  cell.append(bar, document.createTextNode(` ${measured(job)}${budget}${predicted}${failed}`));
  return cell;
}

// -- one job ----------------------------------------------------------------------------

async function showJob(jobId, first) {
  try {
    const job = await (await api(`/jobs/${jobId}`)).json();
    state.job = job;
    $("job-title").textContent = `Job ${job.id}: ${job.name}`;
    renderSummary(job);
    renderHypervolume(job.hypervolume_history);
    if (job.hypervolume_history.length) {
      state.front = await loadFront(jobId);
      if (first) fillMetricChoices(state.front);
      renderFront();
    } else {
      $("front-plot").replaceChildren(svgEl("text", { x: 20, y: 30 }, "No front yet."));
    }
    state.predictions = await (await api(`/jobs/${jobId}/predictions`)).json();
    renderPredictions();
    say(job.error ? `error: ${job.error}` : "");
    if (ACTIVE.has(shownState(job))) state.timer = setTimeout(() => showJob(jobId, false), 2000);
  } catch (error) { say(error.message); }
}

async function loadFront(jobId) {
  const points = [];
  let front = null;
  for (let offset = 0; ; offset += 500) {
    front = await (await api(`/jobs/${jobId}/front?limit=500&offset=${offset}`)).json();
    points.push(...front.points);
    if (points.length >= front.count || front.points.length === 0) break;
  }
  front.points = points;
  return front;
}

function renderSummary(job) {
  const box = $("job-summary");
  box.replaceChildren();
  box.append(stateBadge(job, { id: "job-state" }), " ");
  if (job.stale) box.append(el("span", { class: "stale", title: staleTitle(job) }, "driver gone"), " ");
  // The budget counts measurements: candidates settled by prediction are said apart.
  const text = ` ${measured(job)}` + (job.budget_evaluations ? ` of ${job.budget_evaluations}` : "")
    + " measured" + (job.predicted ? ` · ${job.predicted} settled by prediction` : "") + " · "
    + `${job.candidates.failed} failed · family ${job.family} · target ${job.target}`;
  box.append(progressCell(job).firstChild, el("span", { id: "job-counts" }, text));
  if (shownState(job) === "interrupted") {
    box.append(" ", el("code", { id: "resume-hint" }, `hwsearch resume ${job.id}`));
  }
  if (ACTIVE.has(shownState(job))) {
    const cancel = el("button", { id: "cancel" }, job.cancel_requested ? "Cancelling…" : "Cancel");
    cancel.disabled = job.cancel_requested;
    cancel.addEventListener("click", async () => {
      try { await api(`/jobs/${job.id}/cancel`, { method: "POST" }); showJob(job.id, false); }
      catch (error) { say(error.message); }
    });
    box.append(" ", cancel);
  }
}

function fillMetricChoices(front) {
  const names = new Set();
  for (const p of front.points) Object.keys(p.metrics).forEach((n) => names.add(n));
  const objectives = front.objectives.map((o) => o.metric);
  const all = [...objectives, ...[...names].filter((n) => !objectives.includes(n)).sort()];
  const preferred = ["size_bytes", "latency_ms", "energy_j_per_inference", "params"];
  const colourBy = objectives[2] || preferred.find((n) => names.has(n) && !objectives.includes(n))
    || all.find((n) => !objectives.includes(n)) || objectives[0];
  const defaults = { "x-metric": objectives[1] || objectives[0], "y-metric": objectives[0],
    "c-metric": colourBy };
  for (const id of ["x-metric", "y-metric", "c-metric"]) {
    const select = $(id);
    select.replaceChildren(...all.map((n) => el("option", { value: n }, n)));
    select.value = defaults[id];
  }
}

function colour(t) {  // blue (low) to orange (high)
  const hue = 220 - 190 * Math.max(0, Math.min(1, t));
  return `hsl(${hue}, 75%, 48%)`;
}

// A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `count` ticks.
function niceStep(span, count) {
  const raw = span / count, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) * power;
  return step;
}

// The axis of some values: padded a little, never across 0 for values that are all
// non-negative (a latency, a size) nor across 1 for values all in 0..1 (an accuracy), then
// widened to round ticks.
function scale(values, lo, hi) {
  const dataMin = Math.min(...values), dataMax = Math.max(...values);
  let min = dataMin, max = dataMax;
  if (!(max > min)) {
    const half = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= half; max += half;
  }
  const pad = (max - min) * 0.05;
  min -= pad; max += pad;
  if (dataMin >= 0) min = Math.max(min, 0);
  if (dataMin >= 0 && dataMax <= 1) max = Math.min(max, 1);
  const step = niceStep(max - min, 4);
  const round = (v) => Number(v.toPrecision(12));
  min = round(Math.floor(min / step) * step);
  max = round(Math.ceil(max / step) * step);
  const ticks = [];
  for (let v = min; v <= max + step / 1e6; v += step) ticks.push(round(v));
  return { f: (v) => lo + ((v - min) / (max - min)) * (hi - lo), min, max, ticks, step };
}

// A tick's label with as many decimals as its step needs (so no two ticks read alike).
function tickLabel(v, step) {
  if (Math.abs(v) >= 1e5) return v.toExponential(Math.max(0, Math.ceil(Math.log10(Math.abs(v) / step)) - 1));
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9)
    + (Number((step / 10 ** Math.floor(Math.log10(step))).toPrecision(3)) === 2.5 ? 1 : 0));
  return String(Number(v.toFixed(Math.min(decimals, 12))));
}

function axes(svg, x, y, width, height, left, bottom, xLabel, yLabel) {
  svg.append(svgEl("line", { class: "axis", x1: left, y1: height - bottom, x2: width - 10,
    y2: height - bottom }));
  svg.append(svgEl("line", { class: "axis", x1: left, y1: 18, x2: left, y2: height - bottom }));
  for (const xv of x.ticks) {
    svg.append(svgEl("text", { class: "x-tick", x: x.f(xv), y: height - bottom + 14,
      "text-anchor": "middle" }, tickLabel(xv, x.step)));
  }
  for (const yv of y.ticks) {
    svg.append(svgEl("text", { class: "y-tick", x: left - 4, y: y.f(yv) + 4, "text-anchor": "end" },
      tickLabel(yv, y.step)));
  }
  svg.append(svgEl("text", { class: "x-label", x: (left + width) / 2, y: height - 4,
    "text-anchor": "middle" }, xLabel));
  svg.append(svgEl("text", { class: "y-label", x: left, y: 11, "text-anchor": "middle" },
    yLabel));
}

function renderFront() {
  const svg = $("front-plot");
  svg.replaceChildren();
  const front = state.front;
  const [xm, ym, cm] = ["x-metric", "y-metric", "c-metric"].map((id) => $(id).value);
  const measuredOnly = $("measured-only").checked;
  const points = front.points.filter((p) => xm in p.metrics && ym in p.metrics
    && (!measuredOnly || p.measured));
  svg.setAttribute("data-points", String(points.length));
  if (!points.length) { svg.append(svgEl("text", { x: 20, y: 30 }, "No points.")); return; }
  const W = 560, H = 380, L = 64, B = 34;
  const x = scale(points.map((p) => p.metrics[xm].value), L + 8, W - 18);
  const y = scale(points.map((p) => p.metrics[ym].value), H - B - 8, 36);
  axes(svg, x, y, W, H, L, B, xm, ym);
  const cv = points.map((p) => (cm in p.metrics ? p.metrics[cm].value : NaN));
  const cmin = Math.min(...cv.filter(Number.isFinite)), cmax = Math.max(...cv.filter(Number.isFinite));
  points.forEach((p, i) => {
    const t = cmax > cmin ? (cv[i] - cmin) / (cmax - cmin) : 0.5;
    const c = svgEl("circle", {
      class: `point ${p.measured ? "measured" : "predicted"}`
        + (state.selected === p.id ? " selected" : ""),
      cx: x.f(p.metrics[xm].value), cy: y.f(p.metrics[ym].value), r: 6,
      fill: colour(t), stroke: colour(t), "data-candidate-id": p.id,
    });
    c.append(svgEl("title", {}, `candidate ${p.id}: ${xm} ${fmt(p.metrics[xm].value)}, `
      + `${ym} ${fmt(p.metrics[ym].value)}, ${cm} ${fmt(cv[i])}`
      + (p.measured ? "" : " (predicted)")));
    c.addEventListener("click", () => showCandidate(p.id));
    svg.append(c);
  });
  colourLegend(svg, W, cm, cmin, cmax);
}

// A gradient bar from the lowest to the highest value of the colour metric, labelled.
function colourLegend(svg, W, metric, cmin, cmax) {
  const g = svgEl("g", { class: "colour-legend" });
  const defs = svgEl("defs"), gradient = svgEl("linearGradient", { id: "colour-scale" });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    gradient.append(svgEl("stop", { offset: `${100 * t}%`, "stop-color": colour(t) }));
  }
  defs.append(gradient);
  const x0 = W - 190, width = 110, y0 = 6;
  const known = Number.isFinite(cmin) && Number.isFinite(cmax);
  g.append(defs, svgEl("text", { class: "legend-title", x: x0 - 6, y: y0 + 9, "text-anchor": "end" },
    metric), svgEl("rect", { x: x0, y: y0, width, height: 10, fill: "url(#colour-scale)" }),
  svgEl("text", { class: "legend-min", x: x0, y: y0 + 21, "text-anchor": "start" },
    known ? fmt(cmin) : "n/a"),
  svgEl("text", { class: "legend-max", x: x0 + width, y: y0 + 21, "text-anchor": "end" },
    known ? fmt(cmax) : "n/a"));
  svg.append(g);
}

function renderHypervolume(history) {
  const svg = $("hv-plot");
  svg.replaceChildren();
  if (!history.length) { svg.append(svgEl("text", { x: 20, y: 30 }, "No generation yet.")); return; }
  const W = 560, H = 220, L = 64, B = 30;
  const x = scale(history.map((h) => h.evaluations), L + 8, W - 18);
  const y = scale(history.map((h) => h.hypervolume), H - B - 8, 24);
  axes(svg, x, y, W, H, L, B, "evaluations", "hypervolume");
  svg.append(svgEl("polyline", { class: "hv",
    points: history.map((h) => `${x.f(h.evaluations)},${y.f(h.hypervolume)}`).join(" ") }));
  for (const h of history) {
    svg.append(svgEl("circle", { cx: x.f(h.evaluations), cy: y.f(h.hypervolume), r: 3,
      fill: "#2563eb" }));
  }
}

// Each prediction an active-learning job made, against the value measured since: points on
// the diagonal were predicted exactly; the bars are one standard deviation.
function renderPredictions() {
  const svg = $("pred-plot"), select = $("p-metric");
  svg.replaceChildren();
  const data = state.predictions || { items: [], scores: {} };
  const metrics = [...new Set(data.items.map((p) => p.metric))].sort();
  if (select.options.length !== metrics.length) {
    const chosen = select.value;
    select.replaceChildren(...metrics.map((m) => el("option", { value: m }, m)));
    if (metrics.includes(chosen)) select.value = chosen;
  }
  const metric = select.value;
  const pairs = data.items.filter((p) => p.metric === metric && p.measured !== null);
  svg.setAttribute("data-points", String(pairs.length));
  const score = data.scores[metric];
  $("p-score").textContent = score
    ? `n ${score.n}, Spearman ${fmt(score.spearman)}, within ±10% ${fmt(score.within_10pct)}`
    : "";
  if (!pairs.length) {
    svg.append(svgEl("text", { x: 20, y: 30 },
      data.items.length ? "Nothing measured yet." : "No predictions: the job did not use active learning."));
    return;
  }
  const W = 560, H = 260, L = 64, B = 30;
  const all = pairs.flatMap((p) => [p.measured, p.predicted]);
  const x = scale(all, L + 8, W - 18), y = scale(all, H - B - 8, 24);
  axes(svg, x, y, W, H, L, B, `measured ${metric}`, `predicted ${metric}`);
  const lo = Math.max(x.min, y.min), hi = Math.min(x.max, y.max);
  svg.append(svgEl("line", { class: "diagonal", x1: x.f(lo), y1: y.f(lo), x2: x.f(hi), y2: y.f(hi) }));
  for (const p of pairs) {
    svg.append(svgEl("line", { class: "error-bar", x1: x.f(p.measured), x2: x.f(p.measured),
      y1: y.f(p.predicted - p.std), y2: y.f(p.predicted + p.std) }));
    const c = svgEl("circle", { class: "prediction", cx: x.f(p.measured), cy: y.f(p.predicted),
      r: 4, "data-candidate-id": p.candidate_id });
    c.append(svgEl("title", {}, `candidate ${p.candidate_id}: measured ${fmt(p.measured)}, `
      + `predicted ${fmt(p.predicted)} ± ${fmt(p.std)} (predictor v${p.predictor_version})`));
    c.addEventListener("click", () => showCandidate(p.candidate_id));
    svg.append(c);
  }
}

// -- one candidate ----------------------------------------------------------------------

async function showCandidate(candidateId) {
  state.selected = candidateId;
  renderFront();
  const jobId = state.job.id;
  const box = $("candidate");
  try {
    const c = await (await api(`/jobs/${jobId}/candidates/${candidateId}`)).json();
    box.replaceChildren(el("h2", {}, `Candidate ${c.id}`));
    const table = el("table", { id: "candidate-metrics" });
    table.append(el("tr")); table.lastChild.append(el("th", {}, "metric"), el("th", {}, "value"),
      el("th", {}, "provenance"));
    for (const [name, m] of Object.entries(c.metrics)) {
      const row = el("tr");
      row.append(el("td", {}, name), el("td", {}, fmt(m.value)), el("td", {}, m.provenance));
      table.append(row);
    }
    box.append(table, el("h2", {}, "Config"), el("pre", { id: "candidate-config" },
      JSON.stringify(c.config, null, 2)));
    const buttons = el("div");
    for (const format of ["json", "yaml", "torchscript", "onnx", "zip"]) {
      const button = el("button", { "data-export": format }, `Export ${format}`);
      button.addEventListener("click", () => download(jobId, c.id, format, button));
      buttons.append(button);
    }
    box.append(buttons);
  } catch (error) { say(error.message); }
}

async function download(jobId, candidateId, format, button) {
  button.disabled = true;
  say(format === "json" || format === "yaml" ? "" : "Rebuilding the model for export…");
  try {
    const response = await api(`/jobs/${jobId}/candidates/${candidateId}/export?format=${format}`);
    const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: name ? name[1] : `export.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    say("");
  } catch (error) { say(error.message); }
  button.disabled = false;
}

// -- start ------------------------------------------------------------------------------

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (value) localStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  route();
});
for (const id of ["x-metric", "y-metric", "c-metric", "measured-only"]) {
  $(id).addEventListener("change", renderFront);
}
$("p-metric").addEventListener("change", renderPredictions);
window.addEventListener("hashchange", route);
takeTokenFromFragment();
route();
