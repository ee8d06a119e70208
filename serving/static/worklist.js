// The reps' worklist: leads from the lead store (GET /worklist), one lead's drawer
// (GET /leads/{id}) and Accept / Reject feedback (POST /feedback). Plain JavaScript, no
// external assets; the API token (when the service has one) is asked for once and kept in
// sessionStorage, the rep's name in localStorage. Shared helpers: common.js.
"use strict";

const state = { sort: "score", order: "desc", offset: 0, total: 0, openId: null, opener: null };

// ---- the list --------------------------------------------------------------------------

function filterParams() {
  const params = new URLSearchParams();
  const mql = $("f-mql").value;
  if (mql) params.set("mql", mql);
  for (const select of document.querySelectorAll("select[data-facet]")) {
    if (select.value) params.append(select.name, select.value);
  }
  if ($("f-since").value) params.set("new_since", $("f-since").value);
  params.set("sort", state.sort);
  params.set("order", state.order);
  params.set("limit", $("f-limit").value);
  params.set("offset", String(state.offset));
  return params;
}

function renderRows(page) {
  const body = $("rows");
  body.replaceChildren();
  for (const lead of page.leads) {
    const open = el("button", { type: "button", class: "lead", text: lead.lead_id,
                                "data-lead-id": lead.lead_id });
    open.addEventListener("click", () => openLead(lead.lead_id, open));
    const row = el("tr", { "data-lead-id": lead.lead_id },
      el("td", {}, open),
      el("td", { class: "num", text: lead.score ?? "–" }),
      el("td", {}, el("span", { class: "grade", text: lead.grade || "–" })),
      momentumCell(lead.momentum_7d),
      el("td", { text: lead.mql ? fmtDate(lead.mql_since) : "–" }),
      el("td", { text: lead.region || "–" }),
      el("td", { text: lead.lead_source || "–" }),
      el("td", { text: lead.owner || "–" }));
    row.addEventListener("click", (event) => {
      if (event.target === open) return;
      openLead(lead.lead_id, open);
    });
    if (lead.lead_id === state.openId) row.classList.add("open");
    body.append(row);
  }
  $("empty").hidden = page.leads.length > 0;
  state.total = page.total;
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.leads.length;
  $("page-info").textContent = `${first}–${last} of ${page.total.toLocaleString("en")}`;
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
  $("as-of").textContent = page.as_of ? `scores as of ${page.as_of.replace("T", " ")}` : "";
  document.body.dataset.loaded = "true";
  $("worklist").dataset.version = String(Number($("worklist").dataset.version || 0) + 1);
}

let listRequest = 0;

async function loadList() {
  const mine = ++listRequest; // a slower answer to an older filter must not win
  try {
    const page = await api("worklist?" + filterParams().toString(), null, loadList);
    if (mine !== listRequest) return;
    showError("");
    renderRows(page);
  } catch (error) {
    report(error);
  }
}

const loadFacets = () => loadFacetsFrom("worklist/facets", start);
const setSort = (key) => sortBy(state, key, loadList);

// ---- the drawer ------------------------------------------------------------------------

function renderDrawer(lead) {
  const card = lead.card, st = lead.state || {};
  $("drawer-title").textContent = lead.lead_id;
  const facts = [st.region || card.region, st.lead_source || card.lead_source,
                 st.owner ? `owner ${st.owner}` : "no owner",
                 card.created_at ? `created ${fmtDate(card.created_at)}` : null,
                 `scored ${fmtDate(card.as_of)} by model ${card.model_version}`];
  $("d-sub").textContent = facts.filter(Boolean).join(" · ");
  $("d-probability").textContent = pct(card.probability);
  $("d-range").textContent = card.probability_low != null && card.probability_high != null
    ? `likely ${pct(card.probability_low)} – ${pct(card.probability_high)}` : "no interval stored";
  $("d-score").textContent = card.score;
  $("d-grade").textContent = card.grade;
  $("d-mql").textContent = card.mql ? "Yes" : "No";
  $("d-mql-since").textContent = st.mql && st.mql_since ? `MQL since ${fmtDate(st.mql_since)}` : "MQL";
  $("d-range").title = "95% interval: how sure the validation evidence behind the probability is";
  reasonItems($("d-positive"), card.reasons.positive || []);
  reasonItems($("d-negative"), card.reasons.negative || []);
  const actions = $("d-actions");
  actions.replaceChildren();
  for (const action of card.next_best_actions) {
    actions.append(el("li", { "data-action": action.action }, action.sentence,
      el("span", { class: "after",
        text: `then score ${action.score}, ${action.grade}${action.mql ? ", MQL" : ""}` })));
  }
  if (!card.next_best_actions.length) actions.append(el("li", { class: "muted", text: "none stored" }));
  timelineChart(lead.timeline);
  const activity = $("d-activity");
  activity.replaceChildren();
  for (const signal of lead.activity.signals) {
    activity.append(el("li", { text: `${signal.effect === "raises" ? "▲" : "▼"} ${signal.sentence}` }));
  }
  if (!lead.activity.signals.length) activity.append(el("li", { class: "muted", text: "no engagement signals in the card" }));
  $("d-activity-note").textContent = `From ${lead.activity.source}.`;
  const list = $("d-dispositions");
  list.replaceChildren();
  for (const d of lead.dispositions) {
    const why = d.reason_code ? ` (${d.reason_code}${d.reason_text ? ": " + d.reason_text : ""})` : "";
    list.append(el("li", { "data-stage": d.stage,
      text: `${fmtDate(d.occurred_at)} ${d.stage}${why} by ${d.recorded_by}` }));
  }
  if (!lead.dispositions.length) list.append(el("li", { class: "muted", text: "none yet" }));
}

async function openLead(leadId, opener) {
  state.openId = leadId;
  if (opener) state.opener = opener;
  for (const row of document.querySelectorAll("#rows tr")) {
    row.classList.toggle("open", row.dataset.leadId === leadId);
  }
  try {
    const lead = await api("leads/" + encodeURIComponent(leadId), null, () => openLead(leadId));
    showError("");
    renderDrawer(lead);
    $("fb-status").textContent = "";
    const drawer = $("drawer");
    const wasHidden = drawer.hidden;
    drawer.hidden = false;
    drawer.dataset.leadId = leadId;
    if (wasHidden || opener) $("drawer-title").focus();
  } catch (error) {
    report(error);
  }
}

function closeDrawer() {
  const drawer = $("drawer");
  if (drawer.hidden) return;
  drawer.hidden = true;
  state.openId = null;
  for (const row of document.querySelectorAll("#rows tr.open")) row.classList.remove("open");
  if (state.opener && document.contains(state.opener)) state.opener.focus();
}

async function sendFeedback(stage) {
  const leadId = state.openId;
  if (!leadId) return;
  const event = { lead_id: leadId, stage, occurred_at: new Date().toISOString() };
  const name = $("rep-name").value.trim();
  if (name) event.recorded_by = name;
  if (stage === "rejected") {
    event.reason_code = $("reject-reason").value;
    const text = $("reject-text").value.trim();
    if (text) event.reason_text = text;
  }
  const send = () => api("feedback", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(event),
  }, () => sendFeedback(stage));
  for (const id of ["accept-btn", "reject-btn"]) $(id).disabled = true;
  try {
    const counts = await send();
    $("fb-status").textContent = counts.recorded
      ? `${stage === "accepted" ? "Accepted" : "Rejected"}: recorded.` : "Already recorded.";
    $("reject-text").value = "";
    await openLead(leadId);
    $("fb-status").textContent = counts.recorded
      ? `${stage === "accepted" ? "Accepted" : "Rejected"}: recorded.` : "Already recorded.";
  } catch (error) {
    $("fb-status").textContent = "";
    report(error);
  } finally {
    for (const id of ["accept-btn", "reject-btn"]) $(id).disabled = false;
  }
}

// ---- wiring ----------------------------------------------------------------------------

async function start() {
  if (!(await loadFacets())) return;
  await loadList();
  const linked = hashTarget("lead"); // a link from an alert opens its lead
  if (linked) await openLead(linked);
}

function wire() {
  $("rep-name").value = localStorage.getItem(NAME_KEY) || "";
  $("rep-name").addEventListener("change", () => localStorage.setItem(NAME_KEY, $("rep-name").value.trim()));
  wireToken(start);
  $("filters").addEventListener("change", () => { state.offset = 0; loadList(); });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => setSort(th.dataset.sort));
  }
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - Number($("f-limit").value));
    loadList();
  });
  $("next").addEventListener("click", () => {
    state.offset += Number($("f-limit").value);
    loadList();
  });
  $("close-drawer").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawer();
  });
  window.addEventListener("hashchange", () => {
    const linked = hashTarget("lead");
    if (linked) openLead(linked);
  });
  $("accept-btn").addEventListener("click", () => sendFeedback("accepted"));
  $("reject-btn").addEventListener("click", () => sendFeedback("rejected"));
}

wire();
start();
