// The reps' account list: accounts from the lead store (GET /accounts) ranked by score,
// engagement or momentum, and one account's drawer (GET /accounts/{id}): its buying group
// (personas engaged and missing, who to reach next), its people and what sales did with
// them. Shared helpers (token, elements, reasons, timeline): common.js.
"use strict";

const state = { sort: "score", order: "desc", offset: 0, total: 0, openId: null, opener: null };

function filterParams() {
  const params = new URLSearchParams();
  const mqa = $("f-mqa").value;
  if (mqa) params.set("mqa", mqa);
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
  for (const account of page.accounts) {
    const open = el("button", { type: "button", class: "lead", text: account.account_id,
                                "data-account-id": account.account_id });
    open.addEventListener("click", () => openAccount(account.account_id, open));
    const people = account.leads == null ? "–" : `${account.engaged ?? 0} of ${account.leads}`;
    const row = el("tr", { "data-account-id": account.account_id },
      el("td", {}, open),
      el("td", { class: "num", text: account.score ?? "–" }),
      el("td", {}, el("span", { class: "grade", text: account.grade || "–" })),
      el("td", { class: "num", text: people }),
      momentumCell(account.momentum_7d, 7),
      momentumCell(account.momentum_28d, 28),
      el("td", { text: account.mqa ? fmtDate(account.mqa_since) : "–" }),
      el("td", { text: account.region || "–" }));
    row.addEventListener("click", (event) => {
      if (event.target === open) return;
      openAccount(account.account_id, open);
    });
    if (account.account_id === state.openId) row.classList.add("open");
    body.append(row);
  }
  $("empty").hidden = page.accounts.length > 0;
  state.total = page.total;
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.accounts.length;
  $("page-info").textContent = `${first}–${last} of ${page.total.toLocaleString("en")}`;
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
  $("as-of").textContent = page.as_of ? `scores as of ${page.as_of.replace("T", " ")}` : "";
  document.body.dataset.loaded = "true";
  $("accounts").dataset.version = String(Number($("accounts").dataset.version || 0) + 1);
}

let listRequest = 0;

async function loadList() {
  const mine = ++listRequest; // a slower answer to an older filter must not win
  try {
    const page = await api("accounts?" + filterParams().toString(), null, loadList);
    if (mine !== listRequest) return;
    showError("");
    renderRows(page);
  } catch (error) {
    report(error);
  }
}

const loadFacets = () => loadFacetsFrom("accounts/facets", start);
const setSort = (key) => sortBy(state, key, loadList);

// A persona as the card stores it: a name, or an object naming it.
function personaName(item) {
  if (item == null) return "";
  if (typeof item === "string") return item.replaceAll("_", " ");
  return String(item.label || item.persona || item.name || "").replaceAll("_", " ");
}

function renderBuyingGroup(group) {
  const engaged = (group.engaged || []).map(personaName).filter(Boolean);
  const missing = (group.missing || []).map(personaName).filter(Boolean);
  $("d-engaged").textContent = engaged.length ? `Engaged: ${engaged.join(", ")}` : "No persona engaged yet";
  $("d-missing").textContent = missing.length ? `Missing: ${missing.join(", ")}` : "Every persona is engaged";
  const next = $("d-next");
  next.replaceChildren();
  for (const contact of group.next_contacts || []) {
    const who = typeof contact === "string" ? contact : contact.lead_id || contact.name || "";
    const persona = typeof contact === "string" ? "" : personaName(contact.persona);
    const why = typeof contact === "string" ? "" : contact.why || contact.reason || "";
    next.append(el("li", { "data-lead-id": who },
      `${who}${persona ? " (" + persona + ")" : ""}${why ? ": " + why : ""}`));
  }
  if (!next.children.length) next.append(el("li", { class: "muted", text: "no one suggested" }));
}

function renderDrawer(account) {
  const card = account.card, st = account.state || {};
  $("drawer-title").textContent = account.account_id;
  const people = card.leads == null ? null : `${card.engaged ?? 0} of ${card.leads} people engaged`;
  $("d-sub").textContent = [st.region || card.region, people,
    `scored ${fmtDate(card.as_of)} by model ${card.model_version}`].filter(Boolean).join(" · ");
  $("d-probability").textContent = pct(card.probability);
  $("d-range").textContent = card.probability_low != null && card.probability_high != null
    ? `likely ${pct(card.probability_low)} – ${pct(card.probability_high)}` : "no interval stored";
  $("d-score").textContent = card.score;
  $("d-grade").textContent = card.grade;
  $("d-mqa").textContent = card.mqa ? "Yes" : "No";
  $("d-mqa-since").textContent = st.mqa && st.mqa_since ? `MQA since ${fmtDate(st.mqa_since)}` : "MQA";
  renderBuyingGroup(card.buying_group || {});
  const body = $("d-people");
  body.replaceChildren();
  for (const person of account.people) {
    body.append(el("tr", { "data-lead-id": person.lead_id },
      el("td", {}, el("a", { href: "./", text: person.lead_id,
        title: "Open the worklist to work this lead" })),
      el("td", { class: "num", text: person.score ?? "–" }),
      el("td", {}, el("span", { class: "grade", text: person.grade || "–" })),
      el("td", { text: person.mql ? `since ${fmtDate(person.mql_since)}` : "–" }),
      el("td", { text: person.owner || "–" })));
  }
  $("d-people-note").textContent = account.people_total > account.people.length
    ? `The ${account.people.length} best of ${account.people_total} people.`
    : account.people_total ? "" : "No scored lead is linked to this account.";
  timelineChart(account.timeline, $("d-timeline"), "mqa");
  reasonItems($("d-positive"), card.reasons.positive || []);
  reasonItems($("d-negative"), card.reasons.negative || []);
  const list = $("d-dispositions");
  list.replaceChildren();
  for (const d of account.dispositions) {
    const why = d.reason_code ? ` (${d.reason_code})` : "";
    list.append(el("li", { "data-stage": d.stage,
      text: `${fmtDate(d.occurred_at)} ${d.lead_id} ${d.stage}${why} by ${d.recorded_by}` }));
  }
  if (!account.dispositions.length) list.append(el("li", { class: "muted", text: "none yet" }));
}

async function openAccount(accountId, opener) {
  state.openId = accountId;
  if (opener) state.opener = opener;
  for (const row of document.querySelectorAll("#rows tr")) {
    row.classList.toggle("open", row.dataset.accountId === accountId);
  }
  try {
    const account = await api("accounts/" + encodeURIComponent(accountId), null,
                              () => openAccount(accountId));
    showError("");
    renderDrawer(account);
    const drawer = $("drawer");
    const wasHidden = drawer.hidden;
    drawer.hidden = false;
    drawer.dataset.accountId = accountId;
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

async function start() {
  if (!(await loadFacets())) return;
  await loadList();
  const linked = hashTarget("account"); // a link from an MQA alert opens its account
  if (linked) await openAccount(linked);
}

function wire() {
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
    const linked = hashTarget("account");
    if (linked) openAccount(linked);
  });
}

wire();
start();
