// The room's status: the connection pill, the recording indicator, how many are in the
// meeting, the announcer (a live region that floats over the videos and clears itself) and
// the line that says what went wrong with your own media.

import { h } from "../widgets.js";

export const ANNOUNCEMENT_MS = 6000; // an announcement stays on screen this long, then clears
const PROBLEM_MS = 8000;

/** @typedef {"connecting" | "connected" | "unstable" | "reconnecting"} ConnectionLook */
/** @typedef {[ConnectionLook, string]} ConnectionPill the pill's `data-state` and text */

/** @type {ConnectionPill} */
export const CONNECTED = ["connected", "Connected"];
/** @type {ConnectionPill} */
export const CONNECTING_MEDIA = ["connecting", "Connecting media…"];
/** @type {ConnectionPill} */
export const RECONNECTING = ["reconnecting", "Reconnecting…"];

/**
 * What the pill says for the peer connection's state while the socket is up (null: as it is).
 * @param {RTCPeerConnectionState} state
 * @returns {ConnectionPill | null}
 */
export function mediaConnectionPill(state) {
  if (state === "connected") return CONNECTED;
  if (state === "disconnected") return ["unstable", "Media connection unstable…"];
  if (state === "connecting" || state === "new") return CONNECTING_MEDIA;
  return null;
}

export function createStatus() {
  const connection = h("span", { class: "pill", "data-testid": "connection-state", "data-state": "connecting", role: "status", "aria-live": "polite" }, "Connecting…");
  const count = h("span", { class: "muted", "data-testid": "participant-count" });
  const recording = h("span", { class: "pill recording", "data-testid": "recording-indicator", role: "status", hidden: true }, "● Recording");
  // Always in the page, so screen readers keep watching it; empty, it takes no room (style.css).
  const announcer = h("p", { class: "announcer", role: "status", "aria-live": "polite", "data-testid": "room-status" });
  const problemLine = h("p", { class: "warning", role: "alert", "data-testid": "media-message", hidden: true });
  let announceTimer = 0;

  /** Say something in the live region; it clears by itself after a few seconds. @param {string} text */
  function announce(text) {
    clearTimeout(announceTimer);
    announcer.textContent = text;
    announceTimer = window.setTimeout(() => { announcer.textContent = ""; }, ANNOUNCEMENT_MS);
  }

  /** @param {ConnectionPill} pill */
  function setConnection([state, text]) {
    connection.dataset.state = state;
    connection.textContent = text;
  }

  /** Your camera, microphone, screen or recording could not do what you asked. @param {string} text */
  function problem(text) {
    problemLine.textContent = text;
    problemLine.hidden = false;
    setTimeout(() => { problemLine.hidden = true; }, PROBLEM_MS);
  }

  /** @param {{people: number, recording: boolean}} state */
  function show({ people, recording: active }) {
    count.textContent = `${people} in the meeting`;
    recording.hidden = !active;
  }

  function dispose() {
    clearTimeout(announceTimer);
  }

  return { connection, count, recording, announcer, problemLine, announce, setConnection, problem, show, dispose };
}
