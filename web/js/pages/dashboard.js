// Dashboard: upcoming and past meetings; create, edit, delete; copy a join link.

import { appHeader, revealRecordingsLink, signedInUser } from "../account.js";
import { api, ApiError } from "../api.js";
import { confirmDialog, focusHeading, formatTime, h, messageOf, pageTitle, root } from "../widgets.js";

/** @typedef {import("../api.js").Meeting} Meeting */
/**
 * The settings the form edits: the API's, with those of the waiting room and moderation
 * (absent from an older server's answers).
 * @typedef {Meeting["settings"] & {allow_self_unmute?: boolean, end_on_schedule?: boolean}} FormSettings
 */

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

/** @returns {string} now, as a datetime-local value (to the minute) */
function nowLocalInput() {
  return toLocalInput(new Date().toISOString());
}

/**
 * The meeting form's fields: the API's name (nested ones as `settings.x`), the label the
 * form shows, and what to ask for when the value is refused.
 * @type {Record<string, {label: string, ask: string}>}
 */
const MEETING_FIELDS = {
  title: { label: "Title", ask: "enter a title (up to 200 characters)" },
  description: { label: "Description", ask: "use at most 5000 characters" },
  scheduled_start: { label: "Start time", ask: "choose a date and time" },
  duration_minutes: { label: "Duration (minutes)", ask: "enter a whole number from 1 to 1440" },
  "settings.max_participants": { label: "Max participants", ask: "enter a whole number from 2 to 500" },
  "settings.enable_recording": { label: "Allow recording", ask: "tick or untick the box" },
  "settings.enable_chat": { label: "Allow chat", ask: "tick or untick the box" },
  "settings.require_approval": { label: "Require approval to join", ask: "tick or untick the box" },
  "settings.allow_self_unmute": { label: "Let people unmute themselves", ask: "tick or untick the box" },
  "settings.end_on_schedule": { label: "End the meeting at its scheduled end", ask: "set a start time, or untick the box" },
};
const PAST_START = "Start time: choose a time in the future";

/**
 * A refused field in plain words (the API's validation messages are for developers).
 * @param {{field: string, message: string}} detail
 * @returns {{field: string | null, text: string}}
 */
export function describeFieldProblem({ field, message }) {
  if (field === "scheduled_start" && /past/i.test(message)) return { field, text: PAST_START };
  const known = MEETING_FIELDS[field];
  if (known) return { field, text: `${known.label}: ${known.ask}` };
  console.warn("meeting form: refused field", field, message);
  return { field: null, text: "The meeting could not be saved: check the form and try again." };
}

/**
 * Why the server would not save the meeting, in words.
 * @param {unknown} error
 * @returns {{field: string | null, text: string}[]}
 */
function describeSaveError(error) {
  if (error instanceof ApiError) {
    if (error.status === 422 && error.details.length) {
      const problems = error.details.map(describeFieldProblem);
      // One line per problem (several details can name the same field).
      return problems.filter((p, i) => problems.findIndex((q) => q.text === p.text) === i);
    }
    if (error.code === "meeting-ended") return [{ field: null, text: "This meeting has ended and can no longer be changed." }];
    if (error.status === 403) return [{ field: null, text: "Only the host can change this meeting." }];
    if (error.status === 404) return [{ field: null, text: "This meeting no longer exists." }];
    if (error.status === 0) return [{ field: null, text: error.message }];
    if (error.status === 422 || error.status === 400) {
      return [{ field: null, text: "The meeting could not be saved: check the form and try again." }];
    }
    return [{ field: null, text: `The meeting could not be saved (${error.message}). Try again.` }];
  }
  return [{ field: null, text: messageOf(error) }];
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
  // The form checks its fields itself (novalidate) so that every problem is said in words.
  const title = h("input", { id: "m-title", name: "title", required: true, maxLength: 200, "data-testid": "meeting-title" });
  const description = h("textarea", { id: "m-description", name: "description", rows: 2, maxLength: 5000, "data-testid": "meeting-description" });
  const start = h("input", { id: "m-start", name: "start", type: "datetime-local", min: nowLocalInput(), "data-testid": "meeting-start" });
  const duration = h("input", { id: "m-duration", name: "duration", type: "number", min: 1, max: 1440, step: 1, value: "60", required: true, "data-testid": "meeting-duration" });
  const maxParticipants = h("input", { id: "m-max", name: "max_participants", type: "number", min: 2, max: 500, step: 1, value: "50", required: true, "data-testid": "meeting-max" });
  const check = (/** @type {string} */ id, /** @type {string} */ label, /** @type {boolean} */ checked) => {
    const box = h("input", { id, type: "checkbox", checked, "data-testid": id });
    return { box, row: h("label", { class: "check", for: id }, box, " ", label) };
  };
  const recording = check("m-recording", "Allow recording", false);
  const chat = check("m-chat", "Allow chat", true);
  const approval = check("m-approval", "Require approval to join (waiting room)", false);
  const selfUnmute = check("m-self-unmute", "Let people unmute themselves after a moderator mutes them", true);
  const endOnSchedule = check("m-end-on-schedule", "End the meeting at its scheduled end", false);
  /** @type {Record<string, HTMLInputElement | HTMLTextAreaElement>} API field → input */
  const inputs = {
    title, description, scheduled_start: start, duration_minutes: duration,
    "settings.max_participants": maxParticipants,
    "settings.enable_recording": recording.box, "settings.enable_chat": chat.box,
    "settings.require_approval": approval.box, "settings.allow_self_unmute": selfUnmute.box,
    "settings.end_on_schedule": endOnSchedule.box,
  };
  const formError = h("div", { class: "error", id: "m-error", role: "alert", "data-testid": "meeting-form-error" });
  // The start time the meeting had when editing began: kept as it is, it is not re-checked.
  let originalStart = "";
  // Choosing a start time: the picker begins at now.
  start.addEventListener("focus", () => { start.min = nowLocalInput(); });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "meeting-submit" }, "Create meeting");
  const cancel = h("button", { type: "button", hidden: true, "data-testid": "meeting-cancel", onclick: () => resetForm() }, "Cancel editing");
  const formHeading = h("h2", { id: "form-heading" }, "New meeting");
  const form = h("form", { class: "card stack", noValidate: true, "aria-labelledby": "form-heading", "data-testid": "meeting-form" },
    formHeading,
    field("m-title", "Title", title),
    field("m-description", "Description", description),
    h("div", { class: "grid2" }, field("m-start", "Start time", start), field("m-duration", "Duration (minutes)", duration)),
    h("fieldset", {}, h("legend", {}, "Settings"),
      field("m-max", "Max participants", maxParticipants), recording.row, chat.row,
      approval.row, selfUnmute.row, endOnSchedule.row),
    h("div", { class: "row" }, submit, cancel), formError);

  function resetForm() {
    editing = null;
    form.reset();
    duration.value = "60";
    maxParticipants.value = "50";
    chat.box.checked = true;
    selfUnmute.box.checked = true;
    start.min = nowLocalInput();
    originalStart = "";
    formHeading.textContent = "New meeting";
    submit.textContent = "Create meeting";
    cancel.hidden = true;
    showProblems([]);
  }

  /**
   * Say what is wrong (or nothing), mark those fields invalid and focus the first.
   * @param {{field: string | null, text: string}[]} problems
   */
  function showProblems(problems) {
    formError.replaceChildren(...problems.map((p) => h("p", {}, p.text)));
    for (const input of Object.values(inputs)) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
    /** @type {HTMLElement | null} */
    let first = null;
    for (const problem of problems) {
      const input = problem.field ? inputs[problem.field] : undefined;
      if (!input) continue;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", "m-error");
      first = first || input;
    }
    first?.focus();
  }

  /**
   * The form's own checks, before anything is sent.
   * @returns {{field: string, text: string}[]}
   */
  function checkForm() {
    /** @type {{field: string, text: string}[]} */
    const problems = [];
    if (!title.value.trim()) problems.push({ field: "title", text: "Enter a title" });
    if (start.validity.badInput) {
      problems.push({ field: "scheduled_start", text: "Start time: enter a complete date and time, or none" });
    } else if (start.value && start.value !== originalStart && new Date(start.value).getTime() < Date.now() - 60_000) {
      problems.push({ field: "scheduled_start", text: PAST_START });
    }
    /** @param {HTMLInputElement} input @param {number} low @param {number} high */
    const wholeNumber = (input, low, high) => {
      const n = Number(input.value);
      return input.value.trim() !== "" && Number.isInteger(n) && n >= low && n <= high;
    };
    if (!wholeNumber(duration, 1, 1440)) problems.push({ field: "duration_minutes", text: describeFieldProblem({ field: "duration_minutes", message: "" }).text });
    if (!wholeNumber(maxParticipants, 2, 500)) {
      problems.push({ field: "settings.max_participants", text: describeFieldProblem({ field: "settings.max_participants", message: "" }).text });
    }
    if (endOnSchedule.box.checked && !start.value) {
      problems.push({ field: "settings.end_on_schedule", text: "End the meeting at its scheduled end: set a start time, or untick the box" });
    }
    return problems;
  }

  /** @param {Meeting} meeting */
  function editMeeting(meeting) {
    editing = meeting;
    title.value = meeting.title;
    description.value = meeting.description;
    start.value = toLocalInput(meeting.scheduled_start);
    originalStart = start.value;
    start.min = nowLocalInput();
    duration.value = String(meeting.duration_minutes);
    maxParticipants.value = String(meeting.settings.max_participants);
    /** @type {FormSettings} */
    const settings = meeting.settings;
    recording.box.checked = settings.enable_recording;
    chat.box.checked = settings.enable_chat;
    approval.box.checked = !!settings.require_approval;
    selfUnmute.box.checked = settings.allow_self_unmute !== false;
    endOnSchedule.box.checked = !!settings.end_on_schedule;
    formHeading.textContent = `Edit “${meeting.title}”`;
    submit.textContent = "Save changes";
    cancel.hidden = false;
    showProblems([]);
    form.scrollIntoView({ behavior: "smooth", block: "start" });
    title.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const problems = checkForm();
    showProblems(problems);
    if (problems.length) return;
    /** @type {Record<string, unknown>} */
    const body = {
      title: title.value.trim(),
      description: description.value,
      scheduled_start: toIso(start.value),
      duration_minutes: Number(duration.value),
      settings: {
        max_participants: Number(maxParticipants.value),
        enable_recording: recording.box.checked,
        enable_chat: chat.box.checked,
        require_approval: approval.box.checked,
        allow_self_unmute: selfUnmute.box.checked,
        end_on_schedule: endOnSchedule.box.checked,
      },
    };
    // Editing: an unchanged start time is left as it is (it may have passed meanwhile).
    if (editing && start.value === originalStart) delete body.scheduled_start;
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
      if (!(error instanceof ApiError && error.status === 401)) showProblems(describeSaveError(error));
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
            status.textContent = messageOf(error);
          }
        },
      }, "Delete"));
    }
    return h("li", { class: "meeting card", "data-testid": "meeting-item", "data-room-id": meeting.room_id },
      h("div", { class: "meeting-head" },
        h("h3", {}, meeting.title),
        h("span", { class: `badge ${meeting.status}` }, meeting.status)),
      h("p", { class: "muted" }, `${when} · ${meeting.duration_minutes} min · host ${meeting.host.display_name}${meeting.settings.require_approval ? " · waiting room" : ""}`),
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
      if (!(error instanceof ApiError && error.status === 401)) status.textContent = messageOf(error);
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
