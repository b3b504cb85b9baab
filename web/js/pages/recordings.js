// /recordings: the recordings library. Admins see every recording, a host their meetings'
// (the API decides). Filters and the page live in the URL (?q, from, to, offset, limit), so
// reload, back and forward keep them.

import { appHeader, signedInUser } from "../account.js";
import { api, ApiError } from "../api.js";
import { onLeavePage } from "../nav.js";
import { focusHeading, formatBytes, formatDuration, formatTime, h, messageOf, dayStart, intParam, pageTitle, pagerControls, root } from "../widgets.js";

/** @typedef {import("../api.js").Recording} Recording */
/** @typedef {import("../api.js").RecordingPage} RecordingPage */

const PAGE_SIZE = 20;
const POLL_MS = 2000;

/** @type {Record<Recording["state"], string>} */
export const STATE_LABELS = {
  recording: "Recording",
  processing: "Processing",
  ready: "Ready",
  failed: "Failed",
  interrupted: "Interrupted",
};

/** The state in words, with the composition's percentage while processing. @param {Recording} recording */
export function stateText(recording) {
  return recording.state === "processing"
    ? `${STATE_LABELS.processing} ${percent(recording.progress)}`
    : STATE_LABELS[recording.state];
}

/** @param {number} progress 0..1 */
export function percent(progress) {
  return `${Math.round(Math.min(1, Math.max(0, progress)) * 100)}%`;
}

/** Duration in words for a list or a detail page. @param {Recording} recording */
export function durationText(recording) {
  return recording.state === "recording" ? "still recording" : formatDuration(recording.duration_seconds);
}



/** @param {string} message shown once at the top (e.g. after a delete) */
export async function showRecordings(message = "") {
  pageTitle("Recordings");
  let disposed = false;
  let timer = 0;
  onLeavePage(() => {
    disposed = true;
    window.clearTimeout(timer);
  });
  const page = h("div", { class: "page", "data-testid": "recordings-page" });
  root().replaceChildren(page);
  const user = await signedInUser(page);
  if (!user || disposed) return;
  const me = user; // non-null in the closures below too

  const status = h("p", { class: "notice", role: "status", "aria-live": "polite", "data-testid": "recordings-status" }, message);
  const summary = h("p", { class: "muted", role: "status", "aria-live": "polite", "data-testid": "recordings-summary" });
  const list = h("ul", { class: "recordings", "data-testid": "recordings-list", "aria-labelledby": "recordings-heading" });

  // --- filters --------------------------------------------------------------------------
  const q = h("input", { id: "rec-q", name: "q", type: "search", maxLength: 200, autocomplete: "off", "aria-describedby": "rec-q-hint", "data-testid": "filter-q" });
  const from = h("input", { id: "rec-from", name: "from", type: "date", "data-testid": "filter-from" });
  const to = h("input", { id: "rec-to", name: "to", type: "date", "data-testid": "filter-to" });
  const filterError = h("p", { class: "error", role: "alert", "data-testid": "filter-error" });
  const clear = h("button", { type: "button", "data-testid": "filter-clear" }, "Clear");
  const filters = h("form", { class: "card filters", role: "search", "aria-label": "Filter recordings", "data-testid": "recordings-filters" },
    h("div", { class: "field" }, h("label", { for: "rec-q" }, "Search"), q,
      h("span", { id: "rec-q-hint", class: "hint muted" }, "Meeting title, description or participant")),
    h("div", { class: "field" }, h("label", { for: "rec-from" }, "From"), from),
    h("div", { class: "field" }, h("label", { for: "rec-to" }, "To"), to),
    h("div", { class: "row filter-actions" },
      h("button", { type: "submit", class: "primary", "data-testid": "filter-apply" }, "Apply"), clear),
    filterError);

  const { nav: pager, prev, next, info: pageInfo } = pagerControls("Pages of recordings", "pager");

  /** The filters and page from the address bar. */
  function fromUrl() {
    const params = new URLSearchParams(location.search);
    return {
      q: params.get("q") || "",
      from: params.get("from") || "",
      to: params.get("to") || "",
      offset: intParam(params.get("offset"), 0, 0, Number.MAX_SAFE_INTEGER),
      limit: intParam(params.get("limit"), PAGE_SIZE, 1, 100),
    };
  }

  /** @param {{q: string, from: string, to: string, offset: number, limit: number}} state */
  function toUrl(state) {
    const params = new URLSearchParams();
    if (state.q) params.set("q", state.q);
    if (state.from) params.set("from", state.from);
    if (state.to) params.set("to", state.to);
    if (state.offset) params.set("offset", String(state.offset));
    if (state.limit !== PAGE_SIZE) params.set("limit", String(state.limit));
    const query = params.toString();
    return `/recordings${query ? `?${query}` : ""}`;
  }

  /** Change the filters or page: a new history entry, the list reloaded in place. @param {Partial<ReturnType<typeof fromUrl>>} change */
  function go(change) {
    const state = { ...fromUrl(), ...change };
    history.pushState({}, "", toUrl(state));
    load();
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    filterError.textContent = "";
    if (from.value && to.value && from.value > to.value) {
      filterError.textContent = "“From” must be on or before “To”.";
      from.focus();
      return;
    }
    go({ q: q.value.trim(), from: from.value, to: to.value, offset: 0 });
  });
  clear.addEventListener("click", () => {
    filterError.textContent = "";
    go({ q: "", from: "", to: "", offset: 0 });
    q.focus();
  });
  prev.addEventListener("click", () => {
    const { offset, limit } = fromUrl();
    go({ offset: Math.max(0, offset - limit) });
  });
  next.addEventListener("click", () => {
    const { offset, limit } = fromUrl();
    go({ offset: offset + limit });
  });

  // --- the list -------------------------------------------------------------------------
  /** @param {Recording} recording */
  function item(recording) {
    const label = stateText(recording);
    const size = recording.size_bytes + recording.composed_size_bytes;
    return h("li", { class: "recording card", "data-testid": "recording-item", "data-recording-id": String(recording.id), "data-state": recording.state },
      h("div", { class: "meeting-head" },
        h("h3", {}, h("a", { href: `/recordings/${recording.id}`, "data-internal": true, "data-testid": "recording-link" }, recording.meeting.title)),
        h("span", { class: `badge ${recording.state}`, "data-testid": "recording-state" }, label)),
      h("p", { class: "muted" },
        h("time", { dateTime: recording.started_at }, formatTime(recording.started_at)),
        ` · duration ${durationText(recording)} · ${formatBytes(size)}`),
      h("p", { class: "participants" }, recording.participants.length
        ? `Participants: ${recording.participants.join(", ")}`
        : "No participants recorded"),
      recording.state === "processing"
        ? h("progress", { max: 1, value: recording.progress, "aria-label": `Composing: ${percent(recording.progress)}` })
        : null);
  }

  let loading = 0;
  async function load() {
    window.clearTimeout(timer);
    const state = fromUrl();
    q.value = state.q;
    from.value = state.from;
    to.value = state.to;
    const params = new URLSearchParams({ limit: String(state.limit), offset: String(state.offset) });
    if (state.q) params.set("q", state.q);
    if (state.from) params.set("started_from", dayStart(state.from));
    if (state.to) params.set("started_to", dayStart(state.to, 1)); // "To" includes that day
    const mine = ++loading;
    /** @type {RecordingPage} */
    let result;
    try {
      result = await api(`/api/recordings?${params}`);
    } catch (error) {
      if (disposed || mine !== loading || (error instanceof ApiError && error.status === 401)) return;
      list.replaceChildren();
      pager.hidden = true;
      summary.textContent = "";
      status.textContent = error instanceof ApiError && error.code === "not-allowed"
        ? "You are not allowed to see recordings."
        : `The recordings could not be loaded: ${messageOf(error)}`;
      return;
    }
    if (disposed || mine !== loading) return;
    const filtered = Boolean(state.q || state.from || state.to);
    if (result.items.length) {
      list.replaceChildren(...result.items.map(item));
    } else if (result.total > 0) {
      list.replaceChildren(h("li", { class: "empty" }, "No recordings on this page."));
    } else {
      list.replaceChildren(h("li", { class: "empty", "data-testid": "recordings-empty" }, filtered
        ? "No recordings match these filters."
        : me.role === "admin"
          ? "There are no recordings yet."
          : "No recordings yet. You see the recordings of the meetings you host; ask an administrator for others."));
    }
    const first = result.items.length ? result.offset + 1 : 0;
    const last = result.offset + result.items.length;
    summary.textContent = result.total === 1 ? "1 recording" : `${result.total} recordings`;
    pageInfo.textContent = `${first}–${last} of ${result.total}`;
    prev.disabled = result.offset === 0;
    next.disabled = last >= result.total;
    pager.hidden = result.total <= result.limit && result.offset === 0;
    // While something records or composes, refresh so its state and progress stay current.
    if (result.items.some((r) => r.state === "processing" || r.state === "recording")) {
      timer = window.setTimeout(load, POLL_MS);
    }
  }

  page.replaceChildren(
    appHeader(me),
    h("h1", { id: "recordings-heading" }, "Recordings"),
    h("p", { class: "muted" }, me.role === "admin"
      ? "Every meeting's recordings (you are an administrator)."
      : "Recordings of the meetings you host."),
    status,
    filters,
    summary,
    list,
    pager);
  focusHeading(page);
  await load();
}
