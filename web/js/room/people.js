// The participants panel and its toggle button: everybody in the meeting (me first) with
// their role and microphone, camera and screen state. Moderation (mute someone, remove
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

/** @param {Person} p */
function personItem(p) {
  const { microphone, camera, screen } = p.media;
  return h("li", { "data-testid": "participant-item", "data-participant-id": p.pid },
    h("span", { class: "person-name" }, p.name, p.role === "host" ? h("span", { class: "tag" }, "host") : null),
    h("span", { class: "states" },
      mediaState("state-mic", microphone, microphone ? "mic" : "micOff", microphone ? "Microphone on" : "Microphone off"),
      mediaState("state-camera", camera, camera ? "camera" : "cameraOff", camera ? "Camera on" : "Camera off"),
      screen ? h("span", { "data-testid": "state-screen", title: "Sharing the screen", role: "img", "aria-label": "Sharing the screen" }, icon("screen")) : null));
}

/** @param {{session: Pick<MeetingSession, "welcome" | "media" | "participants">}} options */
export function createPeople({ session }) {
  const list = h("ul", { class: "people", "data-testid": "participants-list" });
  const { panel, close } = panelFrame({ name: "people", testid: "participants-panel", heading: "People", closeLabel: "Close the participants panel" }, list);
  const button = h("button", { type: "button", class: "control", "data-testid": "toggle-participants", "aria-expanded": "false", "aria-controls": "people-panel" },
    icon("people"), h("span", { class: "label" }, "People"));
  let shown = "";

  /** Show the list as the session has it (rebuilt only when something in it changed). */
  function render() {
    const rows = peopleRows(session);
    const key = JSON.stringify(rows);
    if (key === shown) return;
    shown = key;
    list.replaceChildren(...rows.map(personItem));
  }

  return { panel, button, close, render };
}
