// Lines under the room's bar that stay until they no longer apply (unlike the announcer's,
// which clear themselves): "Muted by the moderator" after a moderator's `muted` (until the
// sources are on again or the person dismisses it; it says whether they may unmute), and the
// countdown to a scheduled end (`meeting-ending`).

import { icon } from "../icons.js";
import { formatDuration, h } from "../widgets.js";

/** @typedef {import("../protocol.js").Source} Source */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */

/** @type {Record<Source, string>} */
const SOURCE_WORDS = { microphone: "microphone", camera: "camera", screen: "screen share" };

/** "microphone", "microphone and camera", "microphone, camera and screen share". @param {Source[]} sources */
export function sourcesInWords(sources) {
  const words = sources.map((s) => SOURCE_WORDS[s]);
  return words.length > 1 ? `${words.slice(0, -1).join(", ")} and ${words[words.length - 1]}` : words[0] || "";
}

/**
 * What the "muted by the moderator" line says.
 * @param {Source[]} sources
 * @param {string | null} by who did it
 * @param {boolean} mayUnmute
 */
export function mutedText(sources, by, mayUnmute) {
  const what = `your ${sourcesInWords(sources)}`;
  const who = by ? ` (${by})` : "";
  const after = mayUnmute ? " You can turn it on again." : " You can turn it on again when a moderator allows it.";
  return `Muted by the moderator${who}: ${what} ${sources.length > 1 ? "were" : "was"} turned off.${after}`;
}

/**
 * @param {object} options
 * @param {Pick<MeetingSession, "media" | "mayTurnOn">} options.session
 * @param {() => number} [options.now] the clock (ms since the epoch)
 */
export function createNotices({ session, now = () => Date.now() }) {
  const mutedText_ = h("span", { "data-testid": "moderator-muted-text" });
  const mutedClose = h("button", { type: "button", class: "icon small", "aria-label": "Dismiss" }, icon("close"));
  const muted = h("p", { class: "notice-line", role: "status", id: "moderator-muted", "data-testid": "moderator-muted", hidden: true },
    icon("micOff"), mutedText_, mutedClose);
  const endingText = h("span", { "data-testid": "meeting-ending-text" });
  const ending = h("p", { class: "notice-line ending", role: "status", "data-testid": "meeting-ending", hidden: true }, endingText);
  const el = h("div", { class: "notices" }, muted, ending);
  /** @type {Source[]} what the moderator turned off */
  let mutedSources = [];
  let endsAt = 0;
  let endingTimer = 0;

  /**
   * A moderator turned these off (`muted`).
   * @param {{sources: Source[], by?: {display_name: string} | null, may_unmute?: boolean}} event
   */
  function mutedBy(event) {
    mutedSources = [...event.sources];
    mutedText_.textContent = mutedText(mutedSources, event.by ? event.by.display_name : null, !!event.may_unmute);
    muted.hidden = !mutedSources.length;
  }

  /** A moderator let us turn them on again (`unmute-allowed`). @param {{by?: {display_name: string} | null}} event */
  function unmuteAllowed(event) {
    if (muted.hidden) return;
    mutedText_.textContent = `${event.by ? event.by.display_name : "A moderator"} allowed you to turn your ${sourcesInWords(mutedSources)} on again.`;
  }

  /** Keep the muted line while what was turned off stays off. */
  function render() {
    if (muted.hidden) return;
    if (mutedSources.every((s) => session.media[s])) muted.hidden = true;
  }

  /** The scheduled end is near (`meeting-ending`). @param {{at: string, seconds?: number}} event */
  function meetingEnding(event) {
    const at = Date.parse(event.at);
    endsAt = Number.isNaN(at) ? now() + (Number(event.seconds) || 0) * 1000 : at;
    ending.hidden = false;
    tick();
    clearInterval(endingTimer);
    endingTimer = window.setInterval(tick, 1000);
  }

  function tick() {
    const left = Math.max(0, Math.round((endsAt - now()) / 1000));
    endingText.textContent = left > 0 ? `This meeting ends in ${formatDuration(left)} (its scheduled end).` : "This meeting is ending now.";
    if (!left) clearInterval(endingTimer);
  }

  mutedClose.addEventListener("click", () => { muted.hidden = true; });

  function dispose() {
    clearInterval(endingTimer);
  }

  return { el, muted, ending, mutedBy, unmuteAllowed, meetingEnding, render, dispose };
}
