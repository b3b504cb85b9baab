// The participants panel and its toggle button: everybody in the meeting (me first) with
// their role, raised hand and microphone, camera and screen state, and a pin button for each
// of the others (the pinned person stays on the stage, or first in the gallery). For the host,
// moderators and admins (the page only hides buttons; the server decides): raised hands first,
// oldest first, the meeting's tools at the top (moderation.js) and on each row of the others
// mute, stop camera, stop screen share, allow to unmute, lower the hand, roles and remove. The
// waiting room's queue is its own panel (admission.js).

import { icon } from "../icons.js";
import { h } from "../widgets.js";
import { panelFrame } from "./panels.js";

/** @typedef {import("../protocol.js").MediaFlags} MediaFlags */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {import("./moderation.js").Powers} Powers */
/** @typedef {import("./moderation.js").PersonActions} PersonActions */
/**
 * @typedef {object} Person
 * @property {string} pid
 * @property {string} name
 * @property {string} role
 * @property {MediaFlags} media
 * @property {boolean} self
 * @property {string | null} hand when their hand went up (null: down)
 * @property {number} handOrder 1 for the oldest raised hand, … (0: down)
 */
/** @typedef {Pick<MeetingSession, "welcome" | "media" | "participants"> & {handRaisedAt?: string | null}} PeopleSession */

/**
 * The rows of the list: me (once the welcome came), then everybody else; with `handsFirst`
 * (the host's and moderators' list) the others with a raised hand come first, oldest first.
 * @param {PeopleSession} session
 * @param {{handsFirst?: boolean}} [options]
 * @returns {Person[]}
 */
export function peopleRows(session, { handsFirst = false } = {}) {
  /** @type {Person[]} */
  const people = [];
  if (session.welcome) {
    const { you } = session.welcome;
    people.push({ pid: session.welcome.participant_id, name: `${you.display_name} (you)`, role: you.role, media: session.media, self: true, hand: session.handRaisedAt || null, handOrder: 0 });
  }
  /** @type {Person[]} */
  const others = [];
  for (const p of session.participants.values()) {
    others.push({ pid: p.participant_id, name: p.display_name, role: p.role, media: p.media, self: false, hand: p.hand_raised_at || null, handOrder: 0 });
  }
  const raised = [...people, ...others].filter((p) => p.hand).sort((a, b) => handTime(a) - handTime(b));
  raised.forEach((p, i) => { p.handOrder = i + 1; });
  if (handsFirst) {
    // Stable: hands by the time they went up, then everybody else in the order they joined.
    others.sort((a, b) => (a.hand ? handTime(a) : Infinity) - (b.hand ? handTime(b) : Infinity));
  }
  return [...people, ...others];
}

/** @param {Person} p */
function handTime(p) {
  const t = p.hand ? Date.parse(p.hand) : NaN;
  return Number.isNaN(t) ? Infinity : t;
}

/** @param {number} n */
function ordinal(n) {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th";
  return `${n}${suffix}`;
}

/** @param {string} testid @param {boolean} on @param {import("../icons.js").IconName} iconName @param {string} label */
function mediaState(testid, on, iconName, label) {
  return h("span", { "data-testid": testid, "data-on": String(on), title: label, role: "img", "aria-label": label }, icon(iconName));
}

/**
 * @param {Person} p
 * @param {boolean} pinned
 * @param {((pid: string) => void) | undefined} onPin
 * @param {{powers: Powers, actions: PersonActions, selfUnmute: boolean} | null} moderation the moderator's buttons (null: none)
 */
function personItem(p, pinned, onPin, moderation) {
  const { microphone, camera, screen } = p.media;
  let pin = null;
  if (!p.self && onPin) {
    const label = `${pinned ? "Unpin" : "Pin"} ${p.name}`;
    pin = h("button", { type: "button", class: "icon pin", "data-testid": "participant-pin", "aria-pressed": String(pinned), "aria-label": label, title: label }, icon("pin"));
    pin.addEventListener("click", () => onPin(p.pid));
  }
  const handLabel = p.hand ? `Hand raised (${ordinal(p.handOrder)})` : "";
  const hand = p.hand
    ? h("span", { class: "hand", "data-testid": "hand-raised", role: "img", "aria-label": handLabel, title: handLabel }, icon("hand"), h("span", { "aria-hidden": "true" }, String(p.handOrder)))
    : null;
  const tag = p.role === "host" || p.role === "moderator" ? h("span", { class: "tag" }, p.role) : null;
  return h("li", { "data-testid": "participant-item", "data-participant-id": p.pid, "data-pinned": String(pinned), "data-role": p.role, "data-hand": p.hand ? "raised" : "down" },
    h("span", { class: "person-name" }, p.name, tag),
    h("span", { class: "states" },
      hand,
      mediaState("state-mic", microphone, microphone ? "mic" : "micOff", microphone ? "Microphone on" : "Microphone off"),
      mediaState("state-camera", camera, camera ? "camera" : "cameraOff", camera ? "Camera on" : "Camera off"),
      screen ? h("span", { "data-testid": "state-screen", title: "Sharing the screen", role: "img", "aria-label": "Sharing the screen" }, icon("screen")) : null,
      pin),
    moderation && !p.self ? personActions(p, moderation) : null);
}

/**
 * A moderator's buttons on someone's row: only what applies now (the server decides).
 * @param {Person} p
 * @param {{powers: Powers, actions: PersonActions, selfUnmute: boolean}} moderation
 */
function personActions(p, { powers, actions, selfUnmute }) {
  /** @param {string} testid @param {string} text @param {string} label @param {() => void} onclick @param {string} [className] */
  const action = (testid, text, label, onclick, className = "") =>
    h("button", { type: "button", class: `small ${className}`.trim(), "data-testid": testid, "aria-label": label, title: label, onclick }, text);
  const host = p.role === "host";
  /** @type {HTMLButtonElement[]} */
  const buttons = [];
  if (p.hand) buttons.push(action("lower-hand", "Lower hand", `Lower ${p.name}’s hand`, () => actions.lowerHand(p.pid)));
  if (!host) {
    if (p.media.microphone) buttons.push(action("mute-mic", "Mute", `Mute ${p.name}’s microphone`, () => actions.mute(p.pid, ["microphone"])));
    if (p.media.camera) buttons.push(action("stop-camera", "Stop video", `Stop ${p.name}’s camera`, () => actions.mute(p.pid, ["camera"])));
    if (p.media.screen) buttons.push(action("stop-screen", "Stop share", `Stop ${p.name}’s screen share`, () => actions.mute(p.pid, ["screen"])));
    if (!selfUnmute && !(p.media.microphone && p.media.camera)) {
      buttons.push(action("allow-unmute", "Allow unmute", `Let ${p.name} turn their microphone and camera on again`, () => actions.allowUnmute(p.pid)));
    }
  }
  if (powers.host && !host) {
    buttons.push(p.role === "moderator"
      ? action("remove-moderator", "Remove moderator", `Remove ${p.name} as moderator`, () => actions.setRole(p.pid, "participant", p.name))
      : action("make-moderator", "Make moderator", `Make ${p.name} a moderator`, () => actions.setRole(p.pid, "moderator", p.name)));
    buttons.push(action("make-host", "Make host", `Make ${p.name} the host`, () => actions.setRole(p.pid, "host", p.name)));
  }
  if (!host) buttons.push(action("remove-person", "Remove", `Remove ${p.name} from the meeting`, () => actions.remove(p.pid, p.name), "danger"));
  if (!buttons.length) return null;
  return h("div", { class: "person-actions", role: "group", "aria-label": `Moderate ${p.name}`, "data-testid": "moderation-actions" }, ...buttons);
}

/**
 * @param {object} options
 * @param {PeopleSession} options.session
 * @param {() => string | null} [options.pinned] who is pinned now
 * @param {(pid: string) => void} [options.onPin] a pin button was pressed
 * @param {{powers: () => Powers, actions: PersonActions, tools: HTMLElement}} [options.moderation] the moderators' buttons and meeting tools
 */
export function createPeople({ session, pinned = () => null, onPin, moderation }) {
  const list = h("ul", { class: "people", "data-testid": "participants-list" });
  const { panel, close } = panelFrame({ name: "people", testid: "participants-panel", heading: "People", closeLabel: "Close the participants panel" },
    moderation ? moderation.tools : null, list);
  const button = h("button", { type: "button", class: "control", "data-testid": "toggle-participants", "aria-expanded": "false", "aria-controls": "people-panel" },
    icon("people"), h("span", { class: "label" }, "People"));
  let shown = "";

  /** Show the list as the session has it (rebuilt only when something in it changed). */
  function render() {
    const powers = moderation ? moderation.powers() : { moderate: false, host: false };
    const rows = peopleRows(session, { handsFirst: powers.moderate });
    const pin = pinned();
    const selfUnmute = session.welcome?.meeting?.settings?.allow_self_unmute !== false;
    const key = JSON.stringify([rows, pin, powers, selfUnmute]);
    if (key === shown) return;
    shown = key;
    const active = document.activeElement instanceof HTMLElement && list.contains(document.activeElement) ? document.activeElement : null;
    const focused = active ? active.closest("li")?.dataset.participantId : null;
    const focusedButton = active ? active.dataset.testid : null;
    const mod = moderation && powers.moderate ? { powers, actions: moderation.actions, selfUnmute } : null;
    list.replaceChildren(...rows.map((p) => personItem(p, p.pid === pin, onPin, mod)));
    // A button pressed from the keyboard keeps the focus on its row's new button (or the row's pin).
    if (focused) {
      const row = `li[data-participant-id="${CSS.escape(focused)}"]`;
      const again = (focusedButton && list.querySelector(`${row} [data-testid="${CSS.escape(focusedButton)}"]`))
        || list.querySelector(`${row} [data-testid="participant-pin"]`);
      if (again instanceof HTMLElement) again.focus();
    }
  }

  return { panel, button, close, render };
}
