// The waiting room's queue, for the host, moderators and admins: a panel (beside the people
// panel) listing who waits, oldest first, with Admit / Deny for each and Admit all; its
// button in the controls with the number waiting; and a small notice when someone knocks,
// with Admit and a way to the list. Several moderators see the same queue: the first
// decision wins, and the server's `knock-resolved` takes the person off every list.

import { icon } from "../icons.js";
import { h } from "../widgets.js";
import { panelFrame } from "./panels.js";

/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {import("../protocol.js").Knock} Knock */

export const KNOCK_NOTICE_MS = 15000; // the knock notice goes away by itself after this long

/**
 * The queue, oldest first.
 * @param {Pick<MeetingSession, "knocks">} session
 * @returns {Knock[]}
 */
export function waitingRows(session) {
  /** @param {Knock} k */
  const since = (k) => {
    const t = Date.parse(k.since);
    return Number.isNaN(t) ? Infinity : t;
  };
  return [...session.knocks.values()].sort((a, b) => since(a) - since(b));
}

/** @param {string} iso */
function sinceText(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? "" : `waiting since ${t.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })}`;
}

/**
 * @param {object} options
 * @param {Pick<MeetingSession, "knocks" | "welcome" | "admit" | "deny" | "admitAll">} options.session
 * @param {() => boolean} options.canAdmit the person is the host, a moderator or an admin
 * @param {(text: string) => void} [options.problem] say what could not be done
 */
export function createAdmission({ session, canAdmit, problem = () => {} }) {
  const list = h("ul", { class: "people waiting-list", "data-testid": "waiting-list" });
  const empty = h("p", { class: "muted empty-note", "data-testid": "waiting-empty" }, "Nobody is waiting.");
  const admitAll = h("button", { type: "button", class: "primary", "data-testid": "admit-all" }, "Admit all");
  const { panel, close } = panelFrame({ name: "waiting", testid: "waiting-panel", heading: "Waiting to join", closeLabel: "Close the waiting list" },
    h("div", { class: "panel-actions" }, admitAll), empty, list);
  const count = h("span", { class: "badge-count", "data-testid": "waiting-count", hidden: true });
  const button = h("button", { type: "button", class: "control", "data-testid": "toggle-waiting", "aria-expanded": "false", "aria-controls": "waiting-panel", hidden: true },
    icon("waiting"), h("span", { class: "label" }, "Waiting"), count);
  const noticeText = h("span", { "data-testid": "knock-notice-text" });
  const noticeAdmit = h("button", { type: "button", class: "small primary", "data-testid": "knock-admit" }, "Admit");
  const noticeShow = h("button", { type: "button", class: "small", "data-testid": "knock-show" }, "See the list");
  const noticeClose = h("button", { type: "button", class: "icon small", "aria-label": "Dismiss" }, icon("close"));
  const notice = h("div", { class: "knock-notice", role: "status", "data-testid": "knock-notice", hidden: true },
    icon("waiting"), noticeText, noticeClose, h("div", { class: "knock-actions" }, noticeAdmit, noticeShow));
  /** @type {string | null} who the notice is about (null: several people) */
  let noticeFor = null;
  let noticeTimer = 0;
  let shown = "";

  /** @param {boolean} sent */
  const notSent = (sent) => { if (!sent) problem("Not connected: try again in a moment."); };

  /** Show the queue as the session has it (rebuilt only when it changed). */
  function render() {
    const allowed = canAdmit();
    const rows = allowed ? waitingRows(session) : [];
    const waitingRoom = !!session.welcome?.meeting?.settings?.require_approval;
    // The button shows while the waiting room is on, or someone still waits.
    button.hidden = !allowed || (!waitingRoom && !rows.length);
    count.textContent = String(rows.length);
    count.hidden = !rows.length;
    button.setAttribute("aria-label", rows.length ? `Waiting to join, ${rows.length}` : "Waiting to join");
    if (!allowed) hideNotice();
    if (noticeFor && !session.knocks.has(noticeFor)) hideNotice();
    if (!rows.length) hideNotice();
    const key = JSON.stringify(rows);
    if (key === shown) return;
    shown = key;
    empty.hidden = rows.length > 0;
    admitAll.hidden = rows.length < 2;
    list.replaceChildren(...rows.map((k) => h("li", { "data-testid": "waiting-item", "data-participant-id": k.participant_id },
      h("span", { class: "person-name" }, k.display_name, h("span", { class: "muted since" }, sinceText(k.since))),
      h("span", { class: "states" },
        h("button", { type: "button", class: "small primary", "data-testid": "admit", "aria-label": `Admit ${k.display_name}`, onclick: () => notSent(session.admit(k.participant_id)) }, "Admit"),
        h("button", { type: "button", class: "small danger", "data-testid": "deny", "aria-label": `Deny ${k.display_name}`, onclick: () => notSent(session.deny(k.participant_id)) }, "Deny")))));
  }

  /** Someone knocked: a notice (for a few seconds). @param {{participant_id: string, display_name: string}} knock */
  function knocked(knock) {
    if (!canAdmit()) return;
    const waiting = session.knocks.size;
    noticeFor = waiting > 1 ? null : knock.participant_id;
    noticeText.textContent = waiting > 1 ? `${knock.display_name} and ${waiting - 1} more are waiting to join.` : `${knock.display_name} is waiting to join.`;
    noticeAdmit.hidden = waiting > 1;
    noticeAdmit.setAttribute("aria-label", `Admit ${knock.display_name}`);
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = window.setTimeout(hideNotice, KNOCK_NOTICE_MS);
  }

  function hideNotice() {
    clearTimeout(noticeTimer);
    notice.hidden = true;
    noticeFor = null;
  }

  admitAll.addEventListener("click", () => notSent(session.admitAll()));
  noticeAdmit.addEventListener("click", () => {
    if (noticeFor) notSent(session.admit(noticeFor));
    hideNotice();
  });
  noticeShow.addEventListener("click", () => {
    hideNotice();
    if (panel.hidden) button.click();
  });
  noticeClose.addEventListener("click", hideNotice);

  function dispose() {
    clearTimeout(noticeTimer);
  }

  return { panel, button, close, notice, render, knocked, dispose };
}
