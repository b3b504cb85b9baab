// The full-page outcomes of a meeting link: not found, ended, left (with Rejoin), joined from
// somewhere else, disconnected, … and which one a closed room leads to. A waiting room's
// "the host did not let you in" would be one more outcome here.

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

/** @param {string} roomId */
function rejoinButton(roomId) {
  return h("p", {}, h("button", { type: "button", class: "primary", "data-testid": "rejoin", onclick: () => navigate(`/m/${roomId}`, { replace: true }) }, "Rejoin"));
}

/**
 * The page a closed room leads to.
 * @param {import("../room/index.js").RoomClosed} closed
 * @param {{roomId: string, title: string}} meeting
 */
export function showRoomClosed({ code, reason, ended, endedReason }, { roomId, title }) {
  if (ended) {
    showMeetingEnded(title, endedReason);
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
