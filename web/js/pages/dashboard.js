// Dashboard: upcoming and past meetings; create, edit, delete; copy a join link.

import { api, ApiError, setToken } from "../api.js";
import { navigate } from "../app.js";
import { confirmDialog, focusHeading, formatTime, h, pageTitle, root } from "../ui.js";

/** @typedef {import("../api.js").Meeting} Meeting */

/**
 * The app header with the signed-in user and sign-out. The Recordings link shows for admins
 * (they see every recording); `revealRecordingsLink` shows it to hosts.
 * @param {import("../api.js").User} me
 */
export function appHeader(me) {
  const here = location.pathname.startsWith("/recordings");
  const exact = /^\/recordings\/?$/.test(location.pathname);
  return h("header", { class: "topbar" },
    h("a", { href: "/", "data-internal": true, class: "brand" }, "Tertulia"),
    h("nav", { "aria-label": "Main", "data-testid": "main-nav", hidden: !(me.role === "admin" || here) },
      h("a", {
        href: "/recordings", "data-internal": true, "data-testid": "recordings-link",
        "aria-current": exact ? "page" : here ? "true" : null,
      }, "Recordings")),
    h("span", { class: "who", "data-testid": "signed-in-as" }, me.display_name),
    h("button", { type: "button", "data-testid": "signout", onclick: signOut }, "Sign out"));
}

/** Show the header's Recordings link (the person hosts meetings). @param {ParentNode} header */
export function revealRecordingsLink(header) {
  const nav = header.querySelector('[data-testid="main-nav"]');
  if (nav instanceof HTMLElement) nav.hidden = false;
}

export function signOut() {
  setToken(null);
  navigate("/", { replace: true, message: "You have signed out." });
}

/** @param {string} value a datetime-local value @returns {string | null} ISO 8601 with zone */
function toIso(value) {
  return value ? new Date(value).toISOString() : null;
}

/** @param {string | null} iso @returns {string} a datetime-local value in local time */
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Copy text, falling back to a hidden textarea when the clipboard API is refused. @param {string} text */
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h("textarea", { value: text, "aria-hidden": "true", class: "offscreen" });
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

/**
 * The signed-in user, or null after saying why not in `page` (a 401 has already sent the
 * browser to the sign-in page).
 * @param {HTMLElement} page
 * @returns {Promise<import("../api.js").User | null>}
 */
export async function signedInUser(page) {
  try {
    return await api("/api/me");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      page.replaceChildren(h("p", { class: "error", role: "alert" }, error instanceof Error ? error.message : String(error)));
    }
    return null;
  }
}

/** @param {string} message */
export async function showDashboard(message = "") {
  pageTitle("Your meetings");
  const page = h("div", { class: "page", "data-testid": "dashboard" });
  root().replaceChildren(page);
  const me = await signedInUser(page);
  if (!me) return;
  const status = h("p", { class: "notice", role: "status", "aria-live": "polite", "data-testid": "dashboard-status" }, message);
  const upcoming = h("ul", { class: "meetings", "data-testid": "upcoming-list", "aria-labelledby": "upcoming-heading" });
  const past = h("ul", { class: "meetings", "data-testid": "past-list", "aria-labelledby": "past-heading" });

  // --- the create / edit form ---------------------------------------------------------
  /** @type {Meeting | null} */
  let editing = null;
  const field = (/** @type {string} */ id, /** @type {string} */ label, /** @type {HTMLElement} */ input) =>
    h("div", { class: "field" }, h("label", { for: id }, label), input);
  const title = h("input", { id: "m-title", name: "title", required: true, maxLength: 200, "data-testid": "meeting-title" });
  const description = h("textarea", { id: "m-description", name: "description", rows: 2, maxLength: 5000, "data-testid": "meeting-description" });
  const start = h("input", { id: "m-start", name: "start", type: "datetime-local", "data-testid": "meeting-start" });
  const duration = h("input", { id: "m-duration", name: "duration", type: "number", min: 1, max: 1440, value: "60", required: true, "data-testid": "meeting-duration" });
  const maxParticipants = h("input", { id: "m-max", name: "max_participants", type: "number", min: 2, max: 500, value: "50", required: true, "data-testid": "meeting-max" });
  const check = (/** @type {string} */ id, /** @type {string} */ label, /** @type {boolean} */ checked) => {
    const box = h("input", { id, type: "checkbox", checked, "data-testid": id });
    return { box, row: h("label", { class: "check", for: id }, box, " ", label) };
  };
  const approval = check("m-approval", "Require approval to join", false);
  const recording = check("m-recording", "Allow recording", false);
  const chat = check("m-chat", "Allow chat", true);
  const formError = h("p", { class: "error", role: "alert", "data-testid": "meeting-form-error" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "meeting-submit" }, "Create meeting");
  const cancel = h("button", { type: "button", hidden: true, "data-testid": "meeting-cancel", onclick: () => resetForm() }, "Cancel editing");
  const formHeading = h("h2", { id: "form-heading" }, "New meeting");
  const form = h("form", { class: "card stack", "aria-labelledby": "form-heading", "data-testid": "meeting-form" },
    formHeading,
    field("m-title", "Title", title),
    field("m-description", "Description", description),
    h("div", { class: "grid2" }, field("m-start", "Start time", start), field("m-duration", "Duration (minutes)", duration)),
    h("fieldset", {}, h("legend", {}, "Settings"),
      field("m-max", "Max participants", maxParticipants), approval.row, recording.row, chat.row),
    h("div", { class: "row" }, submit, cancel), formError);

  function resetForm() {
    editing = null;
    form.reset();
    duration.value = "60";
    maxParticipants.value = "50";
    chat.box.checked = true;
    formHeading.textContent = "New meeting";
    submit.textContent = "Create meeting";
    cancel.hidden = true;
    formError.textContent = "";
  }

  /** @param {Meeting} meeting */
  function editMeeting(meeting) {
    editing = meeting;
    title.value = meeting.title;
    description.value = meeting.description;
    start.value = toLocalInput(meeting.scheduled_start);
    duration.value = String(meeting.duration_minutes);
    maxParticipants.value = String(meeting.settings.max_participants);
    approval.box.checked = meeting.settings.require_approval;
    recording.box.checked = meeting.settings.enable_recording;
    chat.box.checked = meeting.settings.enable_chat;
    formHeading.textContent = `Edit “${meeting.title}”`;
    submit.textContent = "Save changes";
    cancel.hidden = false;
    form.scrollIntoView({ behavior: "smooth", block: "start" });
    title.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    const body = {
      title: title.value,
      description: description.value,
      scheduled_start: toIso(start.value),
      duration_minutes: Number(duration.value),
      settings: {
        max_participants: Number(maxParticipants.value),
        require_approval: approval.box.checked,
        enable_recording: recording.box.checked,
        enable_chat: chat.box.checked,
      },
    };
    submit.disabled = true;
    try {
      if (editing) {
        await api(`/api/meetings/${editing.room_id}`, { method: "PATCH", body });
        status.textContent = `Saved “${body.title}”.`;
      } else {
        /** @type {Meeting} */
        const created = await api("/api/meetings", { method: "POST", body });
        status.textContent = `Created “${created.title}”. Share its link: ${created.join_url}`;
      }
      resetForm();
      await load();
    } catch (error) {
      if (error instanceof ApiError && error.details.length) {
        formError.textContent = error.details.map((d) => `${d.field}: ${d.message}`).join("; ");
      } else {
        formError.textContent = error instanceof Error ? error.message : String(error);
      }
    } finally {
      submit.disabled = false;
    }
  });

  // --- the lists ----------------------------------------------------------------------
  /** @param {Meeting} meeting */
  function item(meeting) {
    const path = `/m/${meeting.room_id}`;
    const when = meeting.status === "ended" ? `Ended ${formatTime(meeting.ended_at)}` : formatTime(meeting.scheduled_start);
    const actions = h("div", { class: "row actions" });
    if (meeting.status !== "ended") {
      actions.append(h("a", { href: path, "data-internal": true, class: "button primary", "data-testid": "join-link" }, "Join"));
    }
    actions.append(h("button", {
      type: "button", "data-testid": "copy-link", "aria-label": `Copy the join link of ${meeting.title}`,
      onclick: async () => {
        const ok = await copyText(meeting.join_url);
        status.textContent = ok ? `Link copied: ${meeting.join_url}` : `Copy this link: ${meeting.join_url}`;
      },
    }, "Copy link"));
    if (meeting.is_host && meeting.status !== "ended") {
      actions.append(h("button", { type: "button", "data-testid": "edit-meeting", "aria-label": `Edit ${meeting.title}`, onclick: () => editMeeting(meeting) }, "Edit"));
    }
    if (meeting.is_host) {
      actions.append(h("button", {
        type: "button", class: "danger", "data-testid": "delete-meeting", "aria-label": `Delete ${meeting.title}`,
        onclick: async () => {
          if (!(await confirmDialog(`Delete “${meeting.title}”? This cannot be undone.`, "Delete"))) return;
          try {
            await api(`/api/meetings/${meeting.room_id}`, { method: "DELETE" });
            status.textContent = `Deleted “${meeting.title}”.`;
            await load();
          } catch (error) {
            status.textContent = error instanceof Error ? error.message : String(error);
          }
        },
      }, "Delete"));
    }
    return h("li", { class: "meeting card", "data-testid": "meeting-item", "data-room-id": meeting.room_id },
      h("div", { class: "meeting-head" },
        h("h3", {}, meeting.title),
        h("span", { class: `badge ${meeting.status}` }, meeting.status)),
      h("p", { class: "muted" }, `${when} · ${meeting.duration_minutes} min · host ${meeting.host.display_name}`),
      meeting.description ? h("p", { class: "description" }, meeting.description) : null,
      h("p", { class: "link" }, h("code", { "data-testid": "join-url" }, meeting.join_url)),
      actions);
  }

  async function load() {
    try {
      const [up, done] = await Promise.all([
        api("/api/meetings?when=upcoming&limit=100"),
        api("/api/meetings?when=past&limit=20"),
      ]);
      upcoming.replaceChildren(...(up.items.length ? up.items.map(item) : [h("li", { class: "empty" }, "No upcoming meetings.")]));
      past.replaceChildren(...(done.items.length ? done.items.map(item) : [h("li", { class: "empty" }, "No past meetings.")]));
      return [...up.items, ...done.items].some((/** @type {Meeting} */ m) => m.is_host);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) status.textContent = error instanceof Error ? error.message : String(error);
      return false;
    }
  }

  const header = appHeader(me);
  page.replaceChildren(
    header,
    h("h1", {}, "Your meetings"),
    status,
    h("div", { class: "dashboard" },
      h("div", { class: "lists" },
        h("section", {}, h("h2", { id: "upcoming-heading" }, "Upcoming"), upcoming),
        h("section", {}, h("h2", { id: "past-heading" }, "Past"), past)),
      form));
  focusHeading(page);
  const hosts = await load();
  // Hosts see their meetings' recordings: the link shows when they host one of the listed
  // meetings, or (older meetings) when the library has something for them.
  if (me.role !== "admin") {
    if (hosts) revealRecordingsLink(header);
    else {
      try {
        /** @type {import("../api.js").RecordingPage} */
        const mine = await api("/api/recordings?limit=1");
        if (mine.total > 0) revealRecordingsLink(header);
      } catch { /* no link */ }
    }
  }
}
