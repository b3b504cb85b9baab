// What the host, moderators and admins can do in the room, and the words for it: who may do
// what (`powersOf`: the page only hides buttons, the server decides every request), the
// actions on a person (mute, stop camera or screen, remove, roles, lower a hand: the people
// panel's rows call them), the meeting's tools (lock, mute everyone, the waiting room on or
// off: at the top of the people panel), the lock indicator in the room's bar, and the
// server's refusals in words.

import { icon } from "../icons.js";
import { confirmDialog, confirmWithOption, h } from "../widgets.js";

/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {import("../protocol.js").Source} Source */
/**
 * What the person may do: `moderate` (admit, mute, remove, lock, end: host, moderators,
 * admins) and `host` (roles, the waiting room switch: host and admins).
 * @typedef {{moderate: boolean, host: boolean}} Powers
 */
/**
 * The actions on one person (the people panel's rows).
 * @typedef {object} PersonActions
 * @property {(pid: string, sources: Source[]) => void} mute
 * @property {(pid: string) => void} allowUnmute
 * @property {(pid: string, name: string) => Promise<void>} remove
 * @property {(pid: string, role: "host" | "moderator" | "participant", name: string) => Promise<void>} setRole
 * @property {(pid: string) => void} lowerHand
 */

/**
 * @param {Pick<MeetingSession, "role">} session
 * @param {boolean} admin an administrator of the organisation (may do anything a host can)
 * @returns {Powers}
 */
export function powersOf(session, admin) {
  const role = session.role;
  return { moderate: admin || role === "host" || role === "moderator", host: admin || role === "host" };
}

/** @type {Record<string, string>} */
const REFUSALS = {
  "not-moderator": "Only the host or a moderator can do that.",
  "not-host": "Only the host can do that.",
  "not-waiting": "That person is no longer waiting: someone else decided first, or they left.",
  "not-in-meeting": "That person is no longer in the meeting.",
  "cannot-moderate-host": "The host cannot be muted, removed or made a moderator.",
  "not-admitted": "You are not in the meeting yet.",
  "rate-limited": "Too many requests at once: try again in a moment.",
};

/**
 * A refused moderation or hand message, in words.
 * @param {{code: string, message?: string}} event
 */
export function describeRefusal(event) {
  return REFUSALS[event.code] || `That did not work: ${event.message || event.code}.`;
}

/**
 * @param {object} options
 * @param {MeetingSession} options.session
 * @param {() => boolean} options.admin the person is an administrator
 * @param {(text: string) => void} options.problem say what could not be done
 */
export function createModeration({ session, admin, problem }) {
  const lockIndicator = h("span", { class: "pill locked", "data-testid": "lock-indicator", hidden: true },
    icon("lock"), h("span", {}, "Locked"));
  const lockButton = h("button", { type: "button", class: "tool", "data-testid": "lock-meeting", "aria-pressed": "false" });
  const muteAllButton = h("button", { type: "button", class: "tool", "data-testid": "mute-all" }, icon("micOff"), h("span", {}, "Mute everyone"));
  const waitingRoomButton = h("button", { type: "button", class: "tool", "data-testid": "waiting-room-toggle", "aria-pressed": "false" });
  const tools = h("div", { class: "meeting-tools", role: "group", "aria-label": "Meeting controls", "data-testid": "meeting-tools", hidden: true },
    lockButton, muteAllButton, waitingRoomButton);

  const powers = () => powersOf(session, admin());
  /** @param {boolean} sent */
  const notSent = (sent) => { if (!sent) problem("Not connected: try again in a moment."); };

  lockButton.addEventListener("click", () => {
    notSent(session.lock(!settings().locked));
  });
  muteAllButton.addEventListener("click", async () => {
    if (await confirmDialog("Mute everyone's microphone (but yours)?", "Mute everyone")) notSent(session.muteAll());
  });
  waitingRoomButton.addEventListener("click", async () => {
    const on = !!settings().require_approval;
    if (on && session.knocks.size && !(await confirmDialog(`Turn the waiting room off? The ${session.knocks.size === 1 ? "person" : `${session.knocks.size} people`} waiting will come in.`, "Turn off"))) return;
    notSent(session.setWaitingRoom(!on));
  });

  function settings() {
    return session.welcome?.meeting?.settings || { locked: false, require_approval: false, allow_self_unmute: true };
  }

  /** Show the tools and the lock as they are now. */
  function render() {
    const { moderate, host } = powers();
    const { locked, require_approval: waitingRoom } = settings();
    lockIndicator.hidden = !locked;
    tools.hidden = !moderate;
    lockButton.setAttribute("aria-pressed", String(!!locked));
    lockButton.replaceChildren(icon(locked ? "unlock" : "lock"), h("span", {}, locked ? "Unlock meeting" : "Lock meeting"));
    lockButton.title = locked ? "Let people with the link join again" : "Nobody new can join, even with the link";
    waitingRoomButton.hidden = !host;
    waitingRoomButton.setAttribute("aria-pressed", String(!!waitingRoom));
    waitingRoomButton.replaceChildren(icon("waiting"), h("span", {}, waitingRoom ? "Waiting room: on" : "Waiting room: off"));
    waitingRoomButton.setAttribute("aria-label", waitingRoom ? "Turn the waiting room off" : "Turn the waiting room on");
  }

  /** @type {PersonActions} */
  const actions = {
    mute: (pid, sources) => notSent(session.mute(pid, sources)),
    allowUnmute: (pid) => notSent(session.allowUnmute(pid)),
    lowerHand: (pid) => notSent(session.hand(false, pid)),
    async remove(pid, name) {
      const answer = await confirmWithOption(`Remove ${name} from the meeting?`, "Remove", "Don't let them back in");
      if (answer.confirmed) notSent(session.remove(pid, answer.checked));
    },
    async setRole(pid, role, name) {
      if (role === "host" && !(await confirmDialog(`Make ${name} the host? ${session.role === "host" ? "You will be a moderator." : "The host will be a moderator."}`, "Make host"))) return;
      notSent(session.setRole(pid, role));
    },
  };

  /** The server refused a moderation request: say why. @param {{code: string, message?: string}} event */
  function refused(event) {
    problem(describeRefusal(event));
  }

  return { tools, lockIndicator, actions, powers, render, refused };
}
