// The participants panel and its toggle button: everybody in the meeting (me first) with
// their role and microphone, camera and screen state, and a pin button for each of the others
// (the pinned person stays on the stage, or first in the gallery). Moderation (mute someone, remove
// someone, raised hands) would go on these rows, and a waiting room's admission list next to
// them.

import { icon } from "../icons.js";
import { h } from "../widgets.js";
import { panelFrame } from "./panels.js";

/** @typedef {import("../protocol.js").MediaFlags} MediaFlags */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {{pid: string, name: string, role: string, media: MediaFlags, self: boolean}} Person */

/**
 * The rows of the list: me (once the welcome came), then everybody else.
 * @param {Pick<MeetingSession, "welcome" | "media" | "participants">} session
 * @returns {Person[]}
 */
export function peopleRows(session) {
  /** @type {Person[]} */
  const people = [];
  if (session.welcome) {
    const { you } = session.welcome;
    people.push({ pid: session.welcome.participant_id, name: `${you.display_name} (you)`, role: you.role, media: session.media, self: true });
  }
  for (const p of session.participants.values()) {
    people.push({ pid: p.participant_id, name: p.display_name, role: p.role, media: p.media, self: false });
  }
  return people;
}

/** @param {string} testid @param {boolean} on @param {import("../icons.js").IconName} iconName @param {string} label */
function mediaState(testid, on, iconName, label) {
  return h("span", { "data-testid": testid, "data-on": String(on), title: label, role: "img", "aria-label": label }, icon(iconName));
}

/**
 * @param {Person} p
 * @param {boolean} pinned
 * @param {((pid: string) => void) | undefined} onPin
 */
function personItem(p, pinned, onPin) {
  const { microphone, camera, screen } = p.media;
  let pin = null;
  if (!p.self && onPin) {
    const label = `${pinned ? "Unpin" : "Pin"} ${p.name}`;
    pin = h("button", { type: "button", class: "icon pin", "data-testid": "participant-pin", "aria-pressed": String(pinned), "aria-label": label, title: label }, icon("pin"));
    pin.addEventListener("click", () => onPin(p.pid));
  }
  return h("li", { "data-testid": "participant-item", "data-participant-id": p.pid, "data-pinned": String(pinned) },
    h("span", { class: "person-name" }, p.name, p.role === "host" ? h("span", { class: "tag" }, "host") : null),
    h("span", { class: "states" },
      mediaState("state-mic", microphone, microphone ? "mic" : "micOff", microphone ? "Microphone on" : "Microphone off"),
      mediaState("state-camera", camera, camera ? "camera" : "cameraOff", camera ? "Camera on" : "Camera off"),
      screen ? h("span", { "data-testid": "state-screen", title: "Sharing the screen", role: "img", "aria-label": "Sharing the screen" }, icon("screen")) : null,
      pin));
}

/**
 * @param {object} options
 * @param {Pick<MeetingSession, "welcome" | "media" | "participants">} options.session
 * @param {() => string | null} [options.pinned] who is pinned now
 * @param {(pid: string) => void} [options.onPin] a pin button was pressed
 */
export function createPeople({ session, pinned = () => null, onPin }) {
  const list = h("ul", { class: "people", "data-testid": "participants-list" });
  const { panel, close } = panelFrame({ name: "people", testid: "participants-panel", heading: "People", closeLabel: "Close the participants panel" }, list);
  const button = h("button", { type: "button", class: "control", "data-testid": "toggle-participants", "aria-expanded": "false", "aria-controls": "people-panel" },
    icon("people"), h("span", { class: "label" }, "People"));
  let shown = "";

  /** Show the list as the session has it (rebuilt only when something in it changed). */
  function render() {
    const rows = peopleRows(session);
    const pin = pinned();
    const key = JSON.stringify([rows, pin]);
    if (key === shown) return;
    shown = key;
    const focused = document.activeElement instanceof HTMLElement && list.contains(document.activeElement)
      ? document.activeElement.closest("li")?.dataset.participantId : null;
    list.replaceChildren(...rows.map((p) => personItem(p, p.pid === pin, onPin)));
    // A pin pressed from the keyboard keeps the focus on its row's new button.
    if (focused) {
      const again = list.querySelector(`li[data-participant-id="${CSS.escape(focused)}"] [data-testid="participant-pin"]`);
      if (again instanceof HTMLElement) again.focus();
    }
  }

  return { panel, button, close, render };
}
