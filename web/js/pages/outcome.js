// The full-page outcomes of a meeting link: not found, ended, left (with Rejoin), joined from
// somewhere else, disconnected, not let in at the waiting room, removed, locked, barred, … and
// which one a closed room leads to.

import { goToSignIn, navigate, SESSION_EXPIRED } from "../nav.js";
import { focusHeading, h, pageTitle, root } from "../widgets.js";

/**
 * A full-page message for the ways a meeting cannot be joined.
 * @param {string} testid
 * @param {string} heading
 * @param {string} text
 * @param {Node[]} [extra]
 */
export function showOutcome(testid, heading, text, extra = []) {
  pageTitle(heading);
  const page = h("section", { class: "narrow outcome", "data-testid": testid },
    h("h1", {}, heading),
    h("p", { role: "status", "data-testid": "outcome-message" }, text),
    ...extra,
    h("p", {}, h("a", { href: "/", "data-internal": true, "data-testid": "back-to-dashboard" }, "Back to your meetings")));
  root().replaceChildren(page);
  focusHeading(page);
}

/** @param {string} title @param {string} [reason] */
export function showMeetingEnded(title, reason) {
  showOutcome("meeting-ended", "This meeting has ended", `“${title}” has ended${reason ? ` (${reason})` : ""}. You can no longer join it.`);
}

/** @param {string} roomId @param {string} [label] */
function rejoinButton(roomId, label = "Rejoin") {
  return h("p", {}, h("button", { type: "button", class: "primary", "data-testid": "rejoin", onclick: () => navigate(`/m/${roomId}`, { replace: true }) }, label));
}

/** A wait in words: "10 minutes", "1 minute", "45 seconds". @param {number} seconds */
function waitInWords(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? "1 minute" : `${minutes} minutes`;
}

/**
 * The waiting room's and the moderators' refusals: at join (the server's error code), or when
 * the room closed (removed, denied, locked, barred). Nothing reconnects from these pages.
 * @param {"denied" | "denied-recently" | "meeting-locked" | "barred" | "removed"} kind
 * @param {{roomId: string, title: string, retryAfter?: number | null, by?: string | null, barred?: boolean}} about
 */
export function showRefusal(kind, { roomId, title, retryAfter, by, barred }) {
  if (kind === "denied") {
    const again = retryAfter ? ` You can ask again in ${waitInWords(retryAfter)}.` : "";
    showOutcome("denied", "The host did not let you in", `You asked to join “${title}” and were refused.${again}`);
  } else if (kind === "denied-recently") {
    showOutcome("denied", "The host did not let you in", `You were refused at “${title}” a short while ago. You can ask again later.`);
  } else if (kind === "meeting-locked") {
    showOutcome("meeting-locked", "This meeting is locked", `The host has locked “${title}”: nobody new can join, even with the link. Ask the host to unlock it, then try again.`, [rejoinButton(roomId, "Try again")]);
  } else if (kind === "barred") {
    showOutcome("barred", "You cannot join this meeting", `You were removed from “${title}” and cannot rejoin it.`);
  } else {
    const who = by ? `${by} (a moderator)` : "A moderator";
    if (barred) {
      showOutcome("removed", "You were removed from the meeting and cannot rejoin", `${who} removed you from “${title}”. You cannot join it again.`);
    } else {
      showOutcome("removed", "You were removed from the meeting", `${who} removed you from “${title}”.`, [rejoinButton(roomId, "Ask to join again")]);
    }
  }
}

/**
 * The page a closed room leads to.
 * @param {import("../room/index.js").RoomClosed} closed
 * @param {{roomId: string, title: string}} meeting
 */
export function showRoomClosed({ code, reason, ended, endedReason, refusal, removed, denied }, { roomId, title }) {
  if (ended) {
    showMeetingEnded(title, endedReason);
  } else if (code === 4412) {
    showRefusal("removed", { roomId, title, barred: !!removed?.barred, by: removed?.by?.display_name });
  } else if (refusal === "denied-recently") {
    showRefusal("denied-recently", { roomId, title });
  } else if (code === 4413) {
    showRefusal("denied", { roomId, title, retryAfter: denied?.retry_after });
  } else if (code === 4423 || refusal === "meeting-locked") {
    showRefusal("meeting-locked", { roomId, title });
  } else if (refusal === "barred") {
    showRefusal("barred", { roomId, title });
  } else if (code === 4401) {
    goToSignIn(SESSION_EXPIRED);
  } else if (code === 4403) {
    showOutcome("account-disabled", "Your account is disabled", "Ask an administrator to enable it.");
  } else if (code === 4410) {
    showOutcome("replaced", "You joined from somewhere else", "This meeting is open in another tab or device, so this page left it.", [rejoinButton(roomId)]);
  } else if (code === 1000 && reason === "left") {
    showOutcome("left", "You left the meeting", `You left “${title}”.`, [rejoinButton(roomId)]);
  } else if (code === 4409 || code === 4404) {
    showOutcome("meeting-error", "You cannot rejoin", reason || "The meeting is full or no longer exists.");
  } else {
    showOutcome("disconnected", "Disconnected", `The connection to the meeting closed (${reason || code}).`, [rejoinButton(roomId)]);
  }
}
