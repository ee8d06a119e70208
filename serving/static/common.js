// What the worklist page and the accounts page share: the API call with the token (asked
// for once, kept in sessionStorage), elements, formatting, reasons, the score timeline.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "leadscore.token";
const NAME_KEY = "leadscore.rep";

let pendingRetry = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

class Unauthorized extends Error {}

// fetch with the bearer token; a 401 shows the token box and retries `retry` once given.
async function api(path, options, retry) {
  const headers = Object.assign({}, (options && options.headers) || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options || {}, { headers }));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    pendingRetry = retry || null;
    $("token-box").hidden = false;
    $("token").focus();
    throw new Unauthorized("This service needs an API token: paste it above.");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail : JSON.stringify(detail || body);
    throw new Error(`HTTP ${response.status}: ${text}`);
  }
  return body;
}

function report(error) {
  showError(error instanceof Unauthorized ? error.message : String(error.message || error));
}

function fmtDate(iso) {
  return iso ? iso.slice(0, 10) : "–";
}

function momentumCell(value, days = 7) {
  const cell = el("td", { class: "num" });
  if (value === null || value === undefined) {
    cell.append(el("span", { class: "flat", text: "–", title: `no score ${days} days older` }));
  } else if (value > 0) {
    cell.append(el("span", { class: "up", text: `▲ +${value}`, "aria-label": `up ${value}` }));
  } else if (value < 0) {
    cell.append(el("span", { class: "down", text: `▼ ${value}`, "aria-label": `down ${-value}` }));
  } else {
    cell.append(el("span", { class: "flat", text: "→ 0", "aria-label": "unchanged" }));
  }
  return cell;
}

function pct(p) {
  if (p === null || p === undefined) return "–";
  const v = 100 * p;
  return (v < 1 ? v.toFixed(2) : v.toFixed(1)) + "%";
}

function reasonItems(list, reasons) {
  list.replaceChildren();
  const top = Math.max(1e-9, ...reasons.map((r) => Math.abs(r.contribution || 0)));
  for (const reason of reasons) {
    const width = (100 * Math.abs(reason.contribution || 0)) / top;
    list.append(el("li", {},
      el("span", {}, reason.sentence, el("span", { class: "signal", text: reason.signal })),
      el("div", { class: "track", title: `SHAP ${(reason.contribution || 0).toFixed(3)}` },
        el("div", { class: "bar", style: `width:${width.toFixed(1)}%` }))));
  }
  if (!reasons.length) list.append(el("li", { class: "muted", text: "none" }));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// A small chart of the score over time: one point per stored score, filled when an MQL.
// `flag` names the point's qualified flag (mql for a lead, mqa for an account).
function timelineChart(points, box = $("d-timeline"), flag = "mql") {
  box.replaceChildren();
  if (!points.length) { box.textContent = "No scores stored."; return; }
  const w = 420, h = 120, left = 26, right = 8, top = 8, bottom = 18;
  const times = points.map((p) => Date.parse(p.as_of + "Z"));
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const x = (t) => left + (t1 === t0 ? (w - left - right) / 2 : ((t - t0) / (t1 - t0)) * (w - left - right));
  const y = (s) => top + (1 - s / 100) * (h - top - bottom);
  const chart = svg("svg", { class: "timeline", viewBox: `0 0 ${w} ${h}`, role: "img",
    "aria-label": `Score over time: ${points.map((p) => p.score).join(", ")}` });
  for (const level of [0, 50, 100]) {
    chart.append(svg("line", { class: "axis", x1: left, x2: w - right, y1: y(level), y2: y(level) }));
    const label = svg("text", { x: 2, y: y(level) + 3 });
    label.textContent = String(level);
    chart.append(label);
  }
  chart.append(svg("polyline", { class: "line",
    points: points.map((p, i) => `${x(times[i]).toFixed(1)},${y(p.score).toFixed(1)}`).join(" ") }));
  points.forEach((p, i) => {
    const dot = svg("circle", { cx: x(times[i]).toFixed(1), cy: y(p.score).toFixed(1), r: 3.5,
                                class: p[flag] ? "mql" : "not-mql" });
    const tip = svg("title", {});
    tip.textContent = `${fmtDate(p.as_of)}: score ${p.score}, ${p.grade}${p[flag] ? ", " + flag.toUpperCase() : ""}`;
    dot.append(tip);
    chart.append(dot);
  });
  for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
    const label = svg("text", { x: anchor === "start" ? left : w - right, y: h - 4,
                                "text-anchor": anchor });
    label.textContent = fmtDate(new Date(t).toISOString());
    chart.append(label);
  }
  box.append(chart);
}

// The token box: a pasted token is kept for the tab, then the request that needed it (or
// `start`) runs again.
function wireToken(start) {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    $("token-box").hidden = true;
    showError("");
    const retry = pendingRetry || start;
    pendingRetry = null;
    retry();
  });
}

// The id a link asks the page to open (`#lead=L-1` on the worklist, `#account=A-1` on the
// account list: what alerts link to), or null.
function hashTarget(key) {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const value = params.get(key);
  return value ? value : null;
}

// Fill the page's filter selects (select[data-facet]) from `path`, keeping each choice.
async function loadFacetsFrom(path, retry) {
  try {
    const values = await api(path, null, retry);
    for (const select of document.querySelectorAll("select[data-facet]")) {
      const keep = select.value;
      select.replaceChildren(el("option", { value: "", text: "Any" }));
      for (const value of values[select.dataset.facet] || []) {
        select.append(el("option", { value, text: value }));
      }
      select.value = keep;
    }
    return true;
  } catch (error) {
    report(error);
    return false;
  }
}

// A header click: sort by `key` (again: reverse), mark the header, reload from the start.
function sortBy(state, key, reload) {
  if (state.sort === key) state.order = state.order === "desc" ? "asc" : "desc";
  else { state.sort = key; state.order = "desc"; }
  for (const th of document.querySelectorAll("th[data-sort]")) {
    if (th.dataset.sort === state.sort) {
      th.setAttribute("aria-sort", state.order === "desc" ? "descending" : "ascending");
    } else {
      th.removeAttribute("aria-sort");
    }
  }
  state.offset = 0;
  reload();
}
