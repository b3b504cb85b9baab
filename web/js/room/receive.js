// What the page asks the server to forward (`receive`, docs/protocol.md section 3): only what
// it draws, at the size it draws it.
// - gallery: `visible` = the people on this page (me excluded), `last_n` = their number,
//   `default_max_height` = a tile's drawn height;
// - stage (speaker view, or a shared screen in either view): `visible: null` (the server picks
//   by who speaks), `last_n` = the stage (when it is someone else's) + the strip's tiles of
//   others, the stage's person in `on_stage` with the stage's drawn height in `max_height`,
//   the strip's height as `default_max_height`;
// - `pinned` = the pinned person, in both;
// - a hidden tab asks for no video (`last_n: 0`, audio only); visible again, the view's request.
// Changes (a page, a resize, a pin, the view, who is on the stage) are sent once they have
// settled for DEBOUNCE_MS; a tab hidden or shown at once.

/** @typedef {import("../protocol.js").ReceiveRequest} ReceiveRequest */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {import("./tiles.js").Views} Views */
/** @typedef {{stage: number, tile: number, strip: number}} DrawnHeights device pixels */

export const DEBOUNCE_MS = 200;
export const MAX_LAST_N = 25;
export const MAX_HEIGHT = 2160;

/**
 * A drawn height for the request: device pixels, whole, within the protocol's range; never 0
 * ("not drawn") for something drawn.
 * @param {number} px
 */
export function heightOf(px) {
  return Math.min(MAX_HEIGHT, Math.max(1, Math.round(px)));
}

/**
 * The request for what is drawn.
 * @param {Pick<Views, "layout" | "stage" | "grid">} views
 * @param {DrawnHeights} heights
 * @param {string | null} pinned
 * @param {boolean} [hidden] the tab is hidden: audio only
 * @param {number} [maxLastN] the server's largest `last_n`
 * @returns {ReceiveRequest}
 */
export function receiveRequest(views, heights, pinned, hidden = false, maxLastN = MAX_LAST_N) {
  const others = views.grid.filter((view) => !view.self);
  /** @type {ReceiveRequest} */
  let request;
  if (views.layout === "gallery") {
    const visible = [...new Set(others.map((view) => view.participantId))];
    request = {
      last_n: visible.length, visible, pinned: pinned ? [pinned] : [], on_stage: [],
      max_height: {}, default_max_height: heightOf(heights.tile),
    };
  } else {
    const stage = views.stage && !views.stage.self ? views.stage : null;
    request = {
      last_n: (stage ? 1 : 0) + others.length, visible: null, pinned: pinned ? [pinned] : [],
      on_stage: stage ? [stage.participantId] : [],
      max_height: stage ? { [stage.participantId]: heightOf(heights.stage) } : {},
      default_max_height: heightOf(heights.strip),
    };
  }
  request.last_n = Math.min(maxLastN, request.last_n);
  if (hidden) request.last_n = 0;
  return request;
}

/**
 * Keeps the server told what to forward.
 * @param {object} options
 * @param {Pick<MeetingSession, "setReceive"> & Partial<Pick<MeetingSession, "welcome">>} options.session
 * @param {() => DrawnHeights} options.heights measured when a request is made
 * @param {() => boolean} options.hidden whether the tab is hidden now
 * @param {number} [options.debounceMs]
 */
export function createReceive({ session, heights, hidden, debounceMs = DEBOUNCE_MS }) {
  /** @type {Pick<Views, "layout" | "stage" | "grid"> | null} */
  let views = null;
  /** @type {string | null} */
  let pinned = null;
  let wanted = "";
  let timer = 0;
  /** @type {ReceiveRequest | null} */
  let last = null;

  function current() {
    const limit = session.welcome?.limits.max_last_n;
    return views ? receiveRequest(views, heights(), pinned, hidden(), typeof limit === "number" ? limit : MAX_LAST_N) : null;
  }

  function flush() {
    clearTimeout(timer);
    timer = 0;
    const request = current();
    if (!request) return;
    wanted = JSON.stringify(request);
    last = request;
    session.setReceive(request);
  }

  /**
   * What is drawn now; a changed request is sent once changes settle.
   * @param {Pick<Views, "layout" | "stage" | "grid">} drawn
   * @param {string | null} pin
   */
  function update(drawn, pin) {
    views = drawn;
    pinned = pin;
    const request = current();
    const key = JSON.stringify(request);
    if (key === wanted) return; // already sent, or waiting to be
    wanted = key;
    clearTimeout(timer);
    timer = window.setTimeout(flush, debounceMs);
  }

  /** The tab was hidden or shown: say so now (a hidden tab's timers are slowed down). */
  function visibilityChanged() {
    flush();
  }

  function dispose() {
    clearTimeout(timer);
    timer = 0;
  }

  return { update, flush, visibilityChanged, dispose, get last() { return last; } };
}
