// The dashboard: plain JS, no build step. Reads /api/*, follows /events (Server-Sent Events:
// the browser resumes with Last-Event-ID by itself), and posts controls with the bearer token.
"use strict";

const $ = (id) => document.getElementById(id);
const feedIds = new Set();          // every event id shown: a resumed stream must repeat none
window.__feed = { ids: [], duplicates: 0 };  // read by the browser tests
let status = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}
const num = (x, d = 2) => (x === null || x === undefined) ? "–"
  : Number(x).toLocaleString(undefined, { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (x) => (x === null || x === undefined) ? "–" : (100 * x).toFixed(2) + "%";
const when = (t) => t ? t.replace("T", " ").replace(/(:\d\d)(\.\d+)?Z$/, "$1").slice(0, 16) : "";
const signed = (node, x) => { node.classList.toggle("pos", x > 0); node.classList.toggle("neg", x < 0); };

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

// -- status --------------------------------------------------------------------------------
async function loadStatus() {
  status = await getJSON("/api/status");
  const s = status;
  $("symbol").textContent = s.symbol || "hermes-trader";
  $("strategy").textContent = s.strategy ? `${s.strategy} · version ${s.strategy_version}` : "";
  const st = $("state"); st.textContent = s.state; st.className = "badge " + (s.state || "");
  const md = $("mode"); md.textContent = s.mode || "–"; md.className = "badge " + (s.mode === "live" ? "live" : "");
  $("equity").textContent = num(s.equity);
  const feeCoins = Object.entries(s.fee_balances || {}).map(([c, x]) => ` · ${c} ${num(x, 8)}`).join("");  // BNB paying the fees
  $("cash").textContent = (s.cash !== null && s.cash !== undefined ? "cash " + num(s.cash) : "") + feeCoins;
  const p = s.pnl || {};
  const total = (p.realised ?? 0) + (p.unrealised ?? 0);
  $("pnl").textContent = s.pnl ? num(total) : "–"; signed($("pnl"), total);
  $("pnl-detail").textContent = s.pnl ? `realised ${num(p.realised)} · open ${num(p.unrealised)} · fees ${num(p.fees)}` : "";
  const q = s.position || {};
  $("position").textContent = q.qty ? num(q.qty, 6) : "flat";
  $("entry").textContent = q.entry_price ? "entry " + num(q.entry_price) : "";
  const dd = s.peak_equity && s.equity ? 1 - s.equity / s.peak_equity : null;
  $("drawdown").textContent = pct(dd); signed($("drawdown"), dd ? -dd : 0);
  $("peak").textContent = s.peak_equity ? "peak " + num(s.peak_equity) : "";
  $("health").textContent = (s.healthy ? "✓ " : "✗ ") + (s.health || "") + (s.reason && !(s.health || "").includes(s.reason) ? ` · ${s.reason}` : "")
    + (s.last_error ? ` · last error: ${s.last_error}` : "");
  renderControls(s); renderApprovals(s.approvals); renderGoals(s.scorecard); renderProtection(s.protection);
}

function renderProtection(g) {  // the sentence is the ledger's (trader.protection_status), as `trader status` prints it
  $("protection").textContent = g ? g.summary : "–";
  $("protection-kind").textContent = g ? g.in_force.replace("_", " ") : "";
}

function renderGoals(card) {
  const t = $("goals"); t.replaceChildren();
  if (!card) { t.append(el("tr", {}, el("td", {}, "No review yet: the first weekly review scores the goals."))); return; }
  $("score-when").textContent = `review #${card.review_id}, ${when(card.time)}: ${card.verdict}`;
  t.append(el("tr", {}, ...["goal", "kind", "threshold", "value", "status"].map((h) => el("th", {}, h))));
  for (const g of card.goals) {
    t.append(el("tr", {}, el("td", {}, g.metric), el("td", {}, g.kind), el("td", {}, num(g.threshold, 3)),
      el("td", {}, num(g.value, 3)), el("td", { class: "status-" + g.status }, g.status.replace("_", " "))));
  }
}

function renderApprovals(a) {
  const box = $("approvals"); box.replaceChildren();
  if (!a) return;
  box.append(el("div", {}, a.live
    ? `Live: approved for version ${a.live.strategy_version} (${a.live.how}, ${when(a.live.at)})`
      + (a.live.covers_current ? "" : " · not the current version")
    : "Live: not approved (only `trader approve --live` on the command line grants it)"));
  box.append(el("div", {}, a.hermes === "apply"
    ? `Hermes: apply mode (${a.hermes_detail.how}, ${when(a.hermes_detail.at)})`
      + (a.hermes_detail.live_inherits ? " · promoted versions inherit the live approval" : "")
    : "Hermes: read-only (observes and reports)"));
}

// -- controls ------------------------------------------------------------------------------
const token = () => localStorage.getItem("traderToken") || "";

function renderControls(s) {
  const readOnly = s.controls !== "enabled";
  for (const id of ["halt", "resume", "approve", "revoke", "rollback", "token-save", "token"]) $(id).disabled = readOnly;
  $("token-form").hidden = readOnly || !!token();
  $("controls-note").textContent = readOnly
    ? "Read-only: set TRADER_DASHBOARD_TOKEN on the daemon to enable the controls."
    : token() ? "Controls enabled with your token." : "Enter the dashboard token once to use the controls.";
}

async function control(action, body) {
  const out = $("control-result");
  if (!token()) { $("token-form").hidden = false; $("token").focus(); out.className = "result err";
    out.textContent = "enter the dashboard token first"; return; }
  out.className = "result"; out.textContent = action + "…";
  let r, payload;
  try {
    r = await fetch("/api/control/" + action, { method: "POST", cache: "no-store",
      headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
      body: JSON.stringify(body || {}) });
    payload = await r.json();
  } catch (e) { out.className = "result err"; out.textContent = "no answer from the daemon"; return; }
  if (r.status === 401) { localStorage.removeItem("traderToken"); $("token-form").hidden = false; }
  out.className = "result " + (r.ok ? "ok" : "err");
  out.textContent = r.ok ? payload.message : `refused (${r.status}): ${payload.error}`;
  refresh();
}

function wireControls() {
  $("token-save").onclick = () => {
    const v = $("token").value.trim();
    if (!v) return;
    localStorage.setItem("traderToken", v); $("token").value = ""; $("token-form").hidden = true;
    if (status) renderControls(status);
  };
  $("halt").onclick = () => control("halt", { reason: "halted from the dashboard" });
  $("resume").onclick = () => control("resume", {});
  $("approve").onclick = () => control("approve", {});
  $("revoke").onclick = () => control("revoke", {});
  $("rollback").onclick = () => { const v = $("rollback-version").value; if (v) control("rollback", { version: v }); };
}

// -- chart: equity line, drawdown area, fills and halts marked --------------------------------
async function loadEquity() {
  const d = await getJSON("/api/equity");
  const box = $("chart"), pts = d.points;
  if (pts.length < 2) { box.textContent = "The chart starts after two ticks."; return; }
  const W = 1000, H = 300, top = 10, eqH = 200, ddTop = 225, ddH = 65;
  const t0 = Date.parse(pts[0].time), t1 = Date.parse(pts[pts.length - 1].time) || t0 + 1;
  const x = (t) => ((Date.parse(t) - t0) / Math.max(1, t1 - t0)) * (W - 60) + 50;
  const ys = pts.map((p) => p.equity), lo = Math.min(...ys), hi = Math.max(...ys), span = Math.max(hi - lo, 1e-9);
  const y = (v) => top + eqH - ((v - lo) / span) * eqH;
  const maxDD = Math.max(0.0001, ...pts.map((p) => p.drawdown));
  const yd = (v) => ddTop + (v / maxDD) * ddH;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => { const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text) n.textContent = text; svg.append(n); return n; };
  for (const v of [lo, (lo + hi) / 2, hi]) {
    add("line", { x1: 50, x2: W - 10, y1: y(v), y2: y(v), stroke: "#2a3542" });
    add("text", { x: 2, y: y(v) + 4, fill: "#8b98a5", "font-size": 11 }, num(v, 0));
  }
  add("polyline", { points: pts.map((p) => `${x(p.time)},${y(p.equity)}`).join(" "), fill: "none",
    stroke: "#58a6ff", "stroke-width": 2 });
  add("polygon", { points: `${x(pts[0].time)},${ddTop} ` + pts.map((p) => `${x(p.time)},${yd(p.drawdown)}`).join(" ")
    + ` ${x(pts[pts.length - 1].time)},${ddTop}`, fill: "rgba(248,81,73,.35)", stroke: "#f85149" });
  add("text", { x: 2, y: ddTop + 12, fill: "#8b98a5", "font-size": 11 }, "DD");
  add("text", { x: 2, y: ddTop + ddH, fill: "#8b98a5", "font-size": 11 }, pct(-maxDD));
  const eqAt = (t) => { const ms = Date.parse(t); let best = pts[0];
    for (const p of pts) { if (Date.parse(p.time) <= ms) best = p; else break; } return best.equity; };
  for (const f of d.fills.slice(-400)) {
    const cx = x(f.time), cy = y(eqAt(f.time)), buy = f.side === "buy";
    add("path", { d: buy ? `M${cx - 5},${cy + 12} L${cx + 5},${cy + 12} L${cx},${cy + 4} Z`
      : `M${cx - 5},${cy - 12} L${cx + 5},${cy - 12} L${cx},${cy - 4} Z`, fill: buy ? "#3fb950" : "#f85149" });
  }
  for (const e of d.events) {
    if (Date.parse(e.time) < t0) continue;
    const color = e.kind === "halted" ? "#f85149" : e.kind === "resumed" ? "#3fb950" : "#d29922";
    add("line", { x1: x(e.time), x2: x(e.time), y1: top, y2: ddTop + ddH, stroke: color, "stroke-dasharray": "4 3" })
      .append(Object.assign(document.createElementNS(NS, "title"), { textContent: `${e.kind}: ${e.message}` }));
  }
  add("text", { x: 50, y: H - 1, fill: "#8b98a5", "font-size": 11 }, when(pts[0].time));
  add("text", { x: W - 10, y: H - 1, fill: "#8b98a5", "font-size": 11, "text-anchor": "end" }, when(pts[pts.length - 1].time));
  box.replaceChildren(svg);
}

// -- tables --------------------------------------------------------------------------------
function table(node, headers, rows) {
  node.replaceChildren(el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  for (const r of rows) node.append(el("tr", {}, ...r.map((c) => c instanceof Node ? el("td", {}, c) : el("td", {}, String(c ?? "")))));
}

async function loadTrades() {
  const rows = await getJSON("/api/trades");
  if (!rows.length) { $("trades").replaceChildren(el("tr", {}, el("td", {}, "No trade yet."))); return; }
  table($("trades"), ["entry", "exit", "qty", "entry price", "exit price", "P&L", "return", "fees", "closed by"],
    rows.slice(0, 200).map((t) => {
      const pnl = el("span", { class: t.pnl > 0 ? "pos" : t.pnl < 0 ? "neg" : "" }, t.pnl === null ? "open" : num(t.pnl));
      return [when(t.entry_time), when(t.exit_time) || "open", num(t.qty, 6), num(t.entry_price), num(t.exit_price),
        pnl, t.ret === null ? "" : pct(t.ret), num(t.fees), t.reason || ""];
    }));
}

async function loadReviews() {
  const list = await getJSON("/api/reviews"), box = $("reviews");
  if (!list.length) { box.textContent = "No review yet: Hermes reviews weekly (goals.yaml's review.cron)."; return; }
  const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.id));
  box.replaceChildren();
  list.forEach((r, i) => {
    const d = el("details", { "data-id": String(r.id) },
      el("summary", {}, `#${r.id} · ${when(r.time)} · ${r.mode.replace("_", "-")} · verdict ${r.verdict} · ${r.decision}`));
    const body = el("div", { class: "report" }, "…");
    d.append(body);
    const fill = async () => {
      if (d.dataset.loaded) return; d.dataset.loaded = "1";
      const full = await getJSON("/api/reviews/" + r.id);
      body.innerHTML = full.html;  // rendered server-side by markdown-it with raw HTML disabled
      if (full.chart && !body.querySelector("img")) body.prepend(el("img", { src: full.chart, alt: "review chart", class: "review-chart" }));
    };
    d.addEventListener("toggle", () => { if (d.open) fill(); });
    if (open.has(String(r.id)) || (i === 0 && !open.size)) d.open = true;
    box.append(d);
  });
}

async function loadVersions() {
  const v = await getJSON("/api/versions");
  const exp = v.experiments;
  if (!exp.length) $("experiments").replaceChildren(el("tr", {}, el("td", {}, "No experiment yet.")));
  else table($("experiments"), ["#", "variable", "from → to", "claim", "status", "e-value / needed", "cycles", "started"],
    exp.map((e) => [e.id, e.variable, `${e.from ?? "off"} → ${e.to}`, e.claim || "", e.status,
      `${num(e.e_value, 2)} / ${num(e.needed, 0)}`, e.cycles, when(e.started_at)]));
  const box = $("versions"); box.replaceChildren();
  const sel = $("rollback-version"); sel.replaceChildren(el("option", { value: "" }, "roll back to version…"));
  for (const ver of v.versions) {
    const current = status && ver.version === status.strategy_version;
    box.append(el("details", {}, el("summary", {}, `${ver.version}${current ? " (trading)" : ""} · ${ver.strategy} · ${when(ver.created_at)}`),
      el("pre", {}, ver.yaml || "(no file text recorded)")));
    if (!current) sel.append(el("option", { value: ver.version }, `${ver.version} · ${when(ver.created_at)}`));
  }
}

// -- the live feed -------------------------------------------------------------------------
function showEvent(e) {
  if (feedIds.has(e.id)) { window.__feed.duplicates++; return; }
  feedIds.add(e.id); window.__feed.ids.push(e.id);
  const feed = $("feed");
  feed.prepend(el("li", { class: "k-" + e.kind, "data-id": String(e.id) },
    el("time", {}, when(e.time)), el("span", { class: "kind" }, e.kind), el("span", {}, e.message)));
  while (feed.children.length > 300) feed.lastChild.remove();
}

let pending = null;
function refresh() {  // many events in a burst: one reload of the panels
  if (pending) return;
  pending = setTimeout(async () => { pending = null;
    await Promise.allSettled([loadStatus(), loadEquity(), loadTrades()]); }, 700);
}

function follow() {
  // the last 50 events first, then live; EventSource reconnects with Last-Event-ID by itself
  const es = new EventSource("/events?after=" + initialAfter);
  const dot = $("live-dot");
  es.onopen = () => { dot.textContent = "stream live"; dot.className = "badge on"; };
  es.onerror = () => { dot.textContent = "stream reconnecting"; dot.className = "badge muted"; };
  es.onmessage = (m) => {
    const e = JSON.parse(m.data); showEvent(e);
    if (["fill", "order", "halted", "resumed", "approval", "review", "promoted", "rolled_back"].includes(e.kind)
        || e.kind.startsWith("review")) refresh();
    if (e.kind.startsWith("review") || e.kind === "promoted" || e.kind === "rolled_back") { loadReviews(); loadVersions(); }
  };
  window.__stream = es;
}

let initialAfter = 0;
async function main() {
  wireControls();
  await loadStatus().catch(() => {});
  await Promise.allSettled([loadEquity(), loadTrades(), loadReviews(), loadVersions()]);
  const asked = new URLSearchParams(location.search).get("after");  // ?after=ID: the feed from there
  initialAfter = asked !== null && /^\d+$/.test(asked) ? Number(asked) : Math.max(0, (status?.last_event_id || 0) - 50);
  follow();
}
document.addEventListener("DOMContentLoaded", main);
