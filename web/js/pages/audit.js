// /audit: the audit trail, for administrators (GET /api/admin/audit, docs/api.md "Audit
// trail"). Filters and the page live in the URL (?actor, action, outcome, room, from, to,
// offset, limit), so reload, back and forward keep them. "Download CSV" exports the same
// filters from GET /api/admin/audit.csv: the route needs the sign-in token, which never goes
// into a URL, so the file is fetched with it and handed to the browser as a Blob.

import { appHeader, signedInUser } from "../account.js";
import { api, ApiError, getToken } from "../api.js";
import { goToSignIn, onLeavePage, SESSION_EXPIRED } from "../nav.js";
import { focusHeading, h, messageOf, dayStart, intParam, pageTitle, pagerControls, root } from "../widgets.js";

/**
 * One event of the trail (AuditEventOut in the OpenAPI description).
 * @typedef {object} AuditEvent
 * @property {number} id
 * @property {string} created_at
 * @property {number | null} actor_id
 * @property {string | null} actor_email
 * @property {string | null} actor_name
 * @property {string} action
 * @property {"ok" | "refused"} outcome
 * @property {string | null} room_id
 * @property {number | null} recording_id
 * @property {number | null} subject_user_id
 * @property {string | null} subject_email
 * @property {string | null} subject_name
 * @property {string | null} address
 * @property {string} detail
 */
/** @typedef {{items: AuditEvent[], total: number, limit: number, offset: number}} AuditPage */
/** @typedef {{actor: string, action: string, outcome: string, room: string, from: string, to: string, offset: number, limit: number}} AuditState */

const PAGE_SIZE = 50;
const CSV_NAME = "tertulia-audit.csv";

/** The actions the server writes (docs/api.md, "Audit trail"), grouped for the filter. */
export const ACTIONS = {
  "Sign-in and accounts": [
    "sign-in", "sign-in-failed", "sign-in-blocked", "sign-in-refused", "token-refused",
    "register", "account-create", "account-update", "account-list",
  ],
  "Meetings and moderation": [
    "meeting-join", "knock", "admit", "deny", "admit-all", "waiting-room", "lock", "unlock",
    "mute", "mute-all", "allow-unmute", "remove", "lower-hand", "set-role", "meeting-end",
    "meeting-auto-end", "meeting-delete",
  ],
  Recordings: [
    "recording-start", "recording-stop", "view", "stream", "download", "access", "compose",
    "delete", "retention-delete",
  ],
  "Audit trail": ["audit-read", "audit-export"],
};



/** @param {string} iso */
function formatMoment(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/**
 * The API's query for the filters (without the page): the actor is an id or an e-mail,
 * the days become the instants they start (the "to" day included).
 * @param {AuditState} state
 */
export function apiFilters(state) {
  const params = new URLSearchParams();
  if (/^\d+$/.test(state.actor)) params.set("actor", state.actor);
  else if (state.actor) params.set("actor_email", state.actor);
  if (state.action) params.set("action", state.action);
  if (state.outcome) params.set("outcome", state.outcome);
  if (state.room) params.set("room_id", state.room);
  if (state.from) params.set("from", dayStart(state.from));
  if (state.to) params.set("to", dayStart(state.to, 1));
  return params;
}

/** @param {string} message shown once at the top */
export async function showAudit(message = "") {
  pageTitle("Audit trail");
  let disposed = false;
  onLeavePage(() => {
    disposed = true;
  });
  const page = h("div", { class: "page", "data-testid": "audit-page" });
  root().replaceChildren(page);
  const user = await signedInUser(page);
  if (!user || disposed) return;
  if (user.role !== "admin") {
    page.replaceChildren(appHeader(user),
      h("section", { class: "outcome", "data-testid": "audit-forbidden" },
        h("h1", {}, "You cannot read the audit trail"),
        h("p", { role: "alert" }, "Only administrators can read the audit trail.")));
    focusHeading(page);
    return;
  }

  const status = h("p", { class: "notice", role: "status", "aria-live": "polite", "data-testid": "audit-status" }, message);
  const summary = h("p", { class: "muted", role: "status", "aria-live": "polite", "data-testid": "audit-summary" });

  // --- filters --------------------------------------------------------------------------
  const actor = h("input", { id: "audit-actor", name: "actor", type: "text", maxLength: 320, autocomplete: "off", "aria-describedby": "audit-actor-hint", "data-testid": "filter-actor" });
  const action = h("select", { id: "audit-action", name: "action", "data-testid": "filter-action" },
    h("option", { value: "" }, "Any action"),
    ...Object.entries(ACTIONS).map(([group, names]) =>
      h("optgroup", { label: group }, ...names.map((name) => h("option", { value: name }, name)))));
  const outcome = h("select", { id: "audit-outcome", name: "outcome", "data-testid": "filter-outcome" },
    h("option", { value: "" }, "Any outcome"),
    h("option", { value: "ok" }, "Done (ok)"),
    h("option", { value: "refused" }, "Refused"));
  const room = h("input", { id: "audit-room", name: "room", type: "text", maxLength: 64, autocomplete: "off", "data-testid": "filter-room" });
  const from = h("input", { id: "audit-from", name: "from", type: "date", "data-testid": "filter-from" });
  const to = h("input", { id: "audit-to", name: "to", type: "date", "data-testid": "filter-to" });
  const filterError = h("p", { class: "error", role: "alert", "data-testid": "filter-error" });
  const clear = h("button", { type: "button", "data-testid": "filter-clear" }, "Clear");
  const csv = h("a", { class: "button", href: "/api/admin/audit.csv", download: CSV_NAME, "data-testid": "audit-csv" }, "Download CSV");
  const filters = h("form", { class: "card filters audit-filters", role: "search", "aria-label": "Filter the audit trail", "data-testid": "audit-filters" },
    h("div", { class: "field" }, h("label", { for: "audit-actor" }, "Actor"), actor,
      h("span", { id: "audit-actor-hint", class: "hint muted" }, "E-mail address or user id")),
    h("div", { class: "field" }, h("label", { for: "audit-action" }, "Action"), action),
    h("div", { class: "field" }, h("label", { for: "audit-outcome" }, "Outcome"), outcome),
    h("div", { class: "field" }, h("label", { for: "audit-room" }, "Meeting (room id)"), room),
    h("div", { class: "field" }, h("label", { for: "audit-from" }, "From"), from),
    h("div", { class: "field" }, h("label", { for: "audit-to" }, "To"), to),
    h("div", { class: "row filter-actions" },
      h("button", { type: "submit", class: "primary", "data-testid": "filter-apply" }, "Apply"), clear, csv),
    filterError);

  const body = h("tbody", { "data-testid": "audit-rows" });
  const table = h("table", { class: "audit-table", "data-testid": "audit-table" },
    h("caption", { class: "visually-hidden" }, "Audit events, newest first"),
    h("thead", {}, h("tr", {},
      ...["Time", "Actor", "Action", "Outcome", "Meeting", "Recording", "Subject", "Address", "Detail"]
        .map((name) => h("th", { scope: "col" }, name)))),
    body);
  const scroller = h("div", { class: "audit-scroll", tabIndex: 0, role: "region", "aria-label": "Audit events" }, table);

  const { nav: pager, prev, next, info: pageInfo } = pagerControls("Pages of the audit trail", "audit-pager");

  /** @returns {AuditState} the filters and page from the address bar */
  function fromUrl() {
    const params = new URLSearchParams(location.search);
    return {
      actor: params.get("actor") || "",
      action: params.get("action") || "",
      outcome: params.get("outcome") || "",
      room: params.get("room") || "",
      from: params.get("from") || "",
      to: params.get("to") || "",
      offset: intParam(params.get("offset"), 0, 0, 2 ** 31 - 1),
      limit: intParam(params.get("limit"), PAGE_SIZE, 1, 100),
    };
  }

  /** @param {AuditState} state */
  function toUrl(state) {
    const params = new URLSearchParams();
    for (const key of /** @type {const} */ (["actor", "action", "outcome", "room", "from", "to"])) {
      if (state[key]) params.set(key, state[key]);
    }
    if (state.offset) params.set("offset", String(state.offset));
    if (state.limit !== PAGE_SIZE) params.set("limit", String(state.limit));
    const query = params.toString();
    return `/audit${query ? `?${query}` : ""}`;
  }

  /** A new history entry for changed filters or page; the table reloads in place. @param {Partial<AuditState>} change */
  function go(change) {
    history.pushState({}, "", toUrl({ ...fromUrl(), ...change }));
    load();
  }

  /** What is wrong with the filters as typed, and the field to fix. @returns {[string, HTMLElement] | null} */
  function invalid() {
    const who = actor.value.trim();
    if (who && !/^\d{1,10}$/.test(who) && !/^[^@\s]+@[^@\s]+$/.test(who)) {
      return ["Actor: enter an e-mail address or a user id.", actor];
    }
    if (room.value.trim() && !/^[A-Za-z0-9_-]{1,64}$/.test(room.value.trim())) {
      return ["Meeting: a room id has letters, digits, - and _ only.", room];
    }
    if (from.value && to.value && from.value > to.value) return ["“From” must be on or before “To”.", from];
    return null;
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    filterError.textContent = "";
    for (const field of [actor, room, from]) field.removeAttribute("aria-invalid");
    const problem = invalid();
    if (problem) {
      filterError.textContent = problem[0];
      problem[1].setAttribute("aria-invalid", "true");
      problem[1].focus();
      return;
    }
    go({ actor: actor.value.trim(), action: action.value, outcome: outcome.value, room: room.value.trim(), from: from.value, to: to.value, offset: 0 });
  });
  clear.addEventListener("click", () => {
    filterError.textContent = "";
    go({ actor: "", action: "", outcome: "", room: "", from: "", to: "", offset: 0 });
    actor.focus();
  });
  prev.addEventListener("click", () => {
    const { offset, limit } = fromUrl();
    go({ offset: Math.max(0, offset - limit) });
  });
  next.addEventListener("click", () => {
    const { offset, limit } = fromUrl();
    go({ offset: offset + limit });
  });
  csv.addEventListener("click", (event) => {
    event.preventDefault();
    download();
  });

  // --- the table ------------------------------------------------------------------------
  /** A person's cell: name and e-mail, or the id of an account that is gone. @param {number | null} id @param {string | null} name @param {string | null} email */
  function person(id, name, email) {
    if (name || email) {
      return h("td", { class: "person" }, h("span", { class: "who-name" }, name || ""), email ? h("span", { class: "muted who-email" }, email) : null);
    }
    return h("td", { class: "muted" }, id === null ? "—" : `#${id} (deleted)`);
  }

  /** @param {AuditEvent} event */
  function row(event) {
    return h("tr", { "data-testid": "audit-row", "data-action": event.action, "data-outcome": event.outcome, "data-event-id": String(event.id) },
      h("td", { class: "nowrap" }, h("time", { dateTime: event.created_at }, formatMoment(event.created_at))),
      person(event.actor_id, event.actor_name, event.actor_email),
      h("td", {}, h("code", {}, event.action)),
      h("td", {}, h("span", { class: `badge outcome-${event.outcome}` }, event.outcome === "ok" ? "ok" : "refused")),
      h("td", {}, event.room_id ? h("code", {}, event.room_id) : "—"),
      h("td", {}, event.recording_id === null ? "—"
        : h("a", { href: `/recordings/${event.recording_id}`, "data-internal": true }, `#${event.recording_id}`)),
      event.subject_user_id === null ? h("td", {}, "—") : person(event.subject_user_id, event.subject_name, event.subject_email),
      h("td", { class: "nowrap" }, event.address || "—"),
      h("td", { class: "detail" }, event.detail));
  }

  /** Show the URL's filters in the form and on the CSV link. @param {AuditState} state */
  function showFilters(state) {
    actor.value = state.actor;
    if (state.action && !Array.from(action.options).some((o) => o.value === state.action)) {
      action.append(h("option", { value: state.action }, state.action)); // a name not in the list
    }
    action.value = state.action;
    outcome.value = state.outcome === "ok" || state.outcome === "refused" ? state.outcome : "";
    room.value = state.room;
    from.value = state.from;
    to.value = state.to;
    const query = apiFilters(state).toString();
    csv.href = `/api/admin/audit.csv${query ? `?${query}` : ""}`;
  }

  let loading = 0;
  async function load() {
    const state = fromUrl();
    showFilters(state);
    const params = apiFilters(state);
    params.set("limit", String(state.limit));
    params.set("offset", String(state.offset));
    const mine = ++loading;
    /** @type {AuditPage} */
    let result;
    try {
      result = await api(`/api/admin/audit?${params}`);
    } catch (error) {
      if (disposed || mine !== loading || (error instanceof ApiError && error.status === 401)) return;
      body.replaceChildren();
      pager.hidden = true;
      summary.textContent = "";
      status.textContent = error instanceof ApiError && error.status === 422
        ? `These filters are not valid: ${(error.details || []).map((d) => d.message).join("; ") || error.message}`
        : `The audit trail could not be loaded: ${messageOf(error)}`;
      return;
    }
    if (disposed || mine !== loading) return;
    status.textContent = message;
    message = "";
    const filtered = Boolean(state.actor || state.action || state.outcome || state.room || state.from || state.to);
    body.replaceChildren(...(result.items.length
      ? result.items.map(row)
      : [h("tr", {}, h("td", { colSpan: 9, class: "empty", "data-testid": "audit-empty" },
        result.total > 0 ? "No events on this page." : filtered ? "No events match these filters." : "The audit trail is empty."))]));
    const first = result.items.length ? result.offset + 1 : 0;
    const last = result.offset + result.items.length;
    summary.textContent = result.total === 1 ? "1 event" : `${result.total} events`;
    pageInfo.textContent = `${first}–${last} of ${result.total}`;
    prev.disabled = result.offset === 0;
    next.disabled = last >= result.total;
    pager.hidden = result.total <= result.limit && result.offset === 0;
  }

  /** Fetch the CSV with the sign-in token and hand it to the browser as a download. */
  async function download() {
    const url = csv.href;
    csv.setAttribute("aria-busy", "true");
    status.textContent = "Preparing the CSV…";
    try {
      let response;
      try {
        response = await fetch(url, { headers: { Authorization: `Bearer ${getToken() || ""}` } });
      } catch {
        throw new ApiError(0, "network-error", "The server cannot be reached. Check your connection and try again.");
      }
      if (response.status === 401) {
        goToSignIn(SESSION_EXPIRED);
        return;
      }
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        const error = data && data.error ? data.error : { code: "http-error", message: `HTTP ${response.status}` };
        throw new ApiError(response.status, error.code, error.message);
      }
      const blob = await response.blob();
      if (disposed) return;
      const link = h("a", { href: URL.createObjectURL(blob), download: CSV_NAME, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      const total = response.headers.get("X-Audit-Total");
      status.textContent = total === null ? "The CSV is downloaded." : `The CSV is downloaded (${total === "1" ? "1 event" : `${total} events`}).`;
    } catch (error) {
      if (!disposed) status.textContent = `The CSV could not be downloaded: ${messageOf(error)}`;
    } finally {
      csv.removeAttribute("aria-busy");
    }
  }

  page.replaceChildren(
    appHeader(user),
    h("h1", { id: "audit-heading" }, "Audit trail"),
    h("p", { class: "muted" }, "Who did what, and what was refused: sign-ins, account changes, meetings and moderation, recordings. Newest first."),
    status,
    filters,
    summary,
    scroller,
    pager);
  focusHeading(page);
  await load();
}
