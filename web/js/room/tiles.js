// Video tiles and their layout. One tile per person's camera (initials when it is off or not
// received) and one per shared screen. Two layouts:
// - gallery: a grid of one page of people (pinned first, then me, then everybody in the order
//   they joined); the page's size comes from view.js;
// - stage: one large tile (the stage) and a strip of others under it. A shared screen always
//   takes the stage (another person's screen before my own), whatever the view; in the
//   speaker view without a screen, the stage shows the pinned person, else the dominant
//   speaker (else the first other person, else me).
//
// `tileViews()` decides what is shown and where (a pure function of the session's state and
// the view chosen); receive.js turns its answer into what the page asks the server for.
// `createTiles()` keeps the elements, attaches the tracks and puts the tiles in place.

import { icon } from "../icons.js";
import { h, initials } from "../widgets.js";

/** @typedef {import("../protocol.js").Source} Source */
/** @typedef {import("../protocol.js").MediaFlags} MediaFlags */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {import("../protocol.js").Speakers} Speakers */
/** @typedef {"gallery" | "speaker"} ViewName */

/**
 * What one tile shows.
 * @typedef {object} TileView
 * @property {string} key participant id ("self" for me) + ":" + source
 * @property {Source} source "camera" or "screen"
 * @property {string} pid participant id, "self" for me
 * @property {string} participantId what `data-participant-id` says (mine once the welcome gave it)
 * @property {string} name
 * @property {MediaFlags} media
 * @property {MediaStreamTrack | null} track
 * @property {boolean} self
 * @property {boolean} pinned
 * @property {boolean} [hand] their hand is raised (camera tiles)
 */

/**
 * What the person chose and what fits: the view, the gallery page (from 0), how many tiles a
 * page and the strip hold, who is pinned, and who speaks.
 * @typedef {object} LayoutChoice
 * @property {ViewName} view
 * @property {number} page
 * @property {number} pageSize
 * @property {number} stripSize
 * @property {string | null} pinned participant id
 * @property {Speakers | null} speakers
 */

/**
 * The tiles to draw.
 * @typedef {object} Views
 * @property {"gallery" | "stage"} layout
 * @property {TileView | null} stage the large tile (stage layout only)
 * @property {TileView[]} grid the gallery page, or the strip under the stage, in order
 * @property {number} page the gallery page shown (from 0; 0 in the stage layout)
 * @property {number} pages how many gallery pages there are (1 in the stage layout)
 * @property {number} notShown people in the meeting (me included) without a tile drawn
 */

/**
 * An element of the page for one tile.
 * @typedef {object} Tile
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} name
 * @property {HTMLElement} avatar
 * @property {HTMLElement} muted
 * @property {HTMLElement} hand
 * @property {HTMLButtonElement | null} pin
 * @property {MediaStreamTrack | null} track
 * @property {boolean} wantVideo the view says: show the video
 * @property {number | null} waitingSince a received track attached at this time shows no picture until a frame received after it
 */

/**
 * Everything on one page (a gallery without pages, a strip without end): the layout before
 * views existed.
 * @type {LayoutChoice}
 */
export const EVERYTHING = { view: "gallery", page: 0, pageSize: Infinity, stripSize: Infinity, pinned: null, speakers: null };

/**
 * The tiles to draw: the gallery page, or the stage and the strip.
 * @param {Pick<MeetingSession, "welcome" | "participantId" | "localTracks" | "media" | "participants" | "tracksOf"> & {handRaisedAt?: string | null}} session
 * @param {string} myName my name until the welcome says it
 * @param {LayoutChoice} [choice]
 * @returns {Views}
 */
export function tileViews(session, myName, choice = EVERYTHING) {
  const me = session.participantId || "self";
  const selfName = session.welcome ? session.welcome.you.display_name : myName;
  const pinned = choice.pinned && session.participants.has(choice.pinned) ? choice.pinned : null;
  /** @type {TileView} */
  const selfCamera = { key: "self:camera", source: "camera", pid: "self", participantId: me, name: `${selfName} (you)`, media: session.media, track: session.localTracks.camera || null, self: true, pinned: false, hand: !!session.handRaisedAt };
  /** @type {TileView[]} */
  const cameras = [];
  /** @type {TileView[]} */
  const screens = [];
  if (session.localTracks.screen) {
    screens.push({ key: "self:screen", source: "screen", pid: "self", participantId: me, name: "Your screen", media: session.media, track: session.localTracks.screen, self: true, pinned: false });
  }
  for (const person of session.participants.values()) {
    const pid = person.participant_id;
    const received = session.tracksOf(pid);
    const isPinned = pid === pinned;
    cameras.push({ key: `${pid}:camera`, source: "camera", pid, participantId: pid, name: person.display_name, media: person.media, track: received.camera ? received.camera.track : null, self: false, pinned: isPinned, hand: !!person.hand_raised_at });
    // A screen is shown when it is received, or announced (its slot may come a moment later).
    if (received.screen || person.media.screen) {
      screens.push({ key: `${pid}:screen`, source: "screen", pid, participantId: pid, name: `${person.display_name}’s screen`, media: person.media, track: received.screen ? received.screen.track : null, self: false, pinned: false });
    }
  }
  const people = cameras.length + 1;
  const byPid = new Map(cameras.map((view) => [view.pid, view]));
  const pinnedCamera = pinned ? byPid.get(pinned) || null : null;

  if (screens.length || choice.view === "speaker") {
    // Someone else's screen takes the stage before our own.
    screens.sort((a, b) => Number(a.self) - Number(b.self));
    /** @type {TileView} */
    let stage;
    /** @type {TileView[]} */
    let others;
    if (screens.length) {
      stage = screens[0];
      others = [...screens.slice(1), selfCamera, ...cameras];
    } else {
      const speaking = choice.speakers ? [choice.speakers.participant_id, ...choice.speakers.recent] : [];
      const speaker = speaking.find((pid) => !!pid && byPid.has(pid));
      stage = pinnedCamera || (speaker && byPid.get(speaker)) || cameras[0] || selfCamera;
      others = [selfCamera, ...cameras].filter((view) => view !== stage);
    }
    const strip = stripOf(others, choice.stripSize, choice.speakers, stage.self ? null : stage.participantId);
    const drawn = [stage, ...strip].filter((view) => view.source === "camera").length;
    return { layout: "stage", stage, grid: strip, page: 0, pages: 1, notShown: people - drawn };
  }

  const everybody = [selfCamera, ...cameras].filter((view) => view !== pinnedCamera);
  const perPage = Math.max(1, choice.pageSize - (pinnedCamera ? 1 : 0));
  const pages = Number.isFinite(perPage) ? Math.max(1, Math.ceil(everybody.length / perPage)) : 1;
  const page = Math.min(Math.max(0, Math.floor(choice.page) || 0), pages - 1);
  const onPage = pages === 1 ? everybody : everybody.slice(page * perPage, (page + 1) * perPage);
  const grid = pinnedCamera ? [pinnedCamera, ...onPage] : onPage;
  return { layout: "gallery", stage: null, grid, page, pages, notShown: people - grid.length };
}

/**
 * The tiles of the strip when not all fit: screens, me, the pinned person and the camera of
 * whoever is on the stage (as the server ranks them: pinned, then on stage), those whose video
 * we receive now, then the recent speakers, then the others in the order they joined; drawn
 * in their usual order so that a tile moves only when it comes or goes.
 * @param {TileView[]} others in their usual order
 * @param {number} size
 * @param {Speakers | null} speakers
 * @param {string | null} onStage the participant on the stage (a screen's owner)
 */
function stripOf(others, size, speakers, onStage) {
  if (others.length <= size) return others;
  const recent = speakers ? [speakers.participant_id, ...speakers.recent] : [];
  /** @param {TileView} view */
  const spoke = (view) => {
    const i = recent.indexOf(view.participantId);
    return i < 0 ? recent.length : i;
  };
  /** @param {TileView} view */
  const group = (view) => (view.source === "screen" ? 0 : view.self ? 1 : view.pinned ? 2
    : view.participantId === onStage ? 3 : view.track ? 4 : spoke(view) < recent.length ? 5 : 6);
  const ranked = others
    .map((view, i) => ({ view, i }))
    .sort((a, b) => group(a.view) - group(b.view) || spoke(a.view) - spoke(b.view) || a.i - b.i);
  const chosen = new Set(ranked.slice(0, Math.max(0, size)).map((r) => r.view));
  return others.filter((view) => chosen.has(view));
}

/**
 * Columns and rows of a grid of n tiles: 1, 2×2, 3×3, 4×4, then 5 columns; on a phone one
 * column up to two tiles, two up to six, then three.
 * @param {number} n
 */
export function gridShape(n) {
  const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : n <= 16 ? 4 : 5;
  const phoneCols = n <= 2 ? 1 : n <= 6 ? 2 : 3;
  return { cols, rows: Math.ceil(n / cols), phoneCols, phoneRows: Math.ceil(n / phoneCols) };
}

/**
 * The stage (large), the grid (a gallery page, or the strip under the stage).
 * @param {{onPin?: (participantId: string) => void}} [options] a tile's pin button was pressed
 */
export function createTiles({ onPin } = {}) {
  const stage = h("div", { class: "stage", "data-testid": "stage", hidden: true });
  const grid = h("div", { class: "grid", "data-testid": "video-grid" });
  /** @type {Map<string, Tile>} by TileView key */
  const tiles = new Map();

  /** @param {string} key @param {TileView} view */
  function tileFor(key, view) {
    let tile = tiles.get(key);
    if (tile) return tile;
    const video = h("video", { autoplay: true, playsInline: true, muted: true, "data-testid": "tile-video" });
    const name = h("span", { class: "name", "data-testid": "tile-name" });
    const muted = h("span", { class: "mic-off", "data-testid": "tile-muted", role: "img", "aria-label": "Microphone off", title: "Microphone off", hidden: true }, icon("micOff"));
    const hand = h("span", { class: "tile-hand", "data-testid": "tile-hand", role: "img", "aria-label": "Hand raised", title: "Hand raised", hidden: true }, icon("hand"));
    const avatar = h("div", { class: "avatar", "aria-hidden": "true" });
    /** @type {HTMLButtonElement | null} */
    let pin = null;
    if (!view.self && view.source === "camera") {
      const pid = view.participantId;
      pin = h("button", { type: "button", class: "tile-pin", "data-testid": "tile-pin", "aria-pressed": "false" }, icon("pin"));
      pin.addEventListener("click", () => onPin?.(pid));
    }
    const el = h("figure", { class: "tile", "data-testid": "tile", "data-source": view.source },
      video, avatar, pin, h("figcaption", {}, hand, muted, name));
    tile = { el, video, name, avatar, muted, hand, pin, track: null, wantVideo: false, waitingSince: null };
    tiles.set(key, tile);
    return tile;
  }

  /**
   * Show the video, or the avatar: a received track newly attached to a tile (a new slot, or
   * a slot the server gave to this person instead of someone else) may still hold the last
   * frame of whoever the slot carried before, so the avatar stays until a frame received
   * after the change is shown.
   * @param {Tile} tile
   */
  function paint(tile) {
    const waiting = tile.wantVideo && tile.waitingSince !== null;
    tile.video.hidden = !tile.wantVideo;
    tile.el.classList.toggle("waiting", waiting);
    tile.avatar.hidden = tile.wantVideo && !waiting;
    tile.el.dataset.video = !tile.wantVideo ? "off" : waiting ? "waiting" : "on";
  }

  /** @param {Tile} tile @param {MediaStreamTrack | null} track @param {boolean} received */
  function attach(tile, track, received) {
    if (tile.track === track) return;
    tile.track = track;
    tile.waitingSince = track && received ? performance.now() : null;
    tile.video.srcObject = track ? new MediaStream([track]) : null;
    if (!track) return;
    tile.video.play().catch(() => {});
    if (tile.waitingSince !== null) awaitFrame(tile, tile.waitingSince);
  }

  /**
   * Stop waiting once a frame received after `since` is presented (requestVideoFrameCallback's
   * `receiveTime`; without it, the second frame presented).
   * @param {Tile} tile @param {number} since
   */
  function awaitFrame(tile, since) {
    const video = tile.video;
    let frames = 0;
    /** @type {VideoFrameRequestCallback} */
    const onFrame = (_now, meta) => {
      if (tile.waitingSince !== since) return; // another track (or none) since
      frames++;
      const received = /** @type {{receiveTime?: number}} */ (meta).receiveTime;
      if (typeof received === "number" ? received > since : frames >= 2) {
        tile.waitingSince = null;
        paint(tile);
      } else {
        video.requestVideoFrameCallback(onFrame);
      }
    };
    if (typeof video.requestVideoFrameCallback === "function") {
      video.requestVideoFrameCallback(onFrame);
    } else {
      video.addEventListener("playing", () => {
        if (tile.waitingSince === since) { tile.waitingSince = null; paint(tile); }
      }, { once: true });
    }
  }

  /** @param {Tile} tile @param {TileView} view @param {boolean} speaking */
  function update(tile, view, speaking) {
    attach(tile, view.track, !view.self);
    tile.wantVideo = !!view.track && (view.source === "screen" || view.media.camera);
    paint(tile);
    tile.video.classList.toggle("mirror", view.self && view.source === "camera");
    tile.avatar.textContent = initials(view.name.replace(" (you)", ""));
    tile.name.textContent = view.name;
    tile.el.dataset.participantId = view.participantId;
    tile.el.dataset.self = String(view.self);
    tile.el.dataset.pinned = String(view.pinned);
    const micOn = !!view.media.microphone;
    tile.el.dataset.mic = micOn ? "on" : "off";
    tile.muted.hidden = micOn || view.source === "screen";
    tile.el.dataset.speaking = String(speaking);
    tile.el.classList.toggle("speaking", speaking);
    const hand = view.source === "camera" && !!view.hand;
    tile.el.dataset.hand = String(hand);
    tile.hand.hidden = !hand;
    tile.el.setAttribute("aria-label", `${view.name}${view.pinned ? ", pinned" : ""}${hand ? ", hand raised" : ""}${view.source === "camera" && !micOn ? ", microphone off" : ""}${speaking ? ", speaking" : ""}`);
    if (tile.pin) {
      const label = `${view.pinned ? "Unpin" : "Pin"} ${view.name}`;
      tile.pin.setAttribute("aria-pressed", String(view.pinned));
      tile.pin.setAttribute("aria-label", label);
      tile.pin.title = label;
    }
  }

  /**
   * Show these tiles (and remove the others).
   * @param {Pick<Views, "layout" | "stage" | "grid">} views
   * @param {(pid: string) => boolean} isSpeaking by TileView pid
   */
  function show(views, isSpeaking) {
    const onStage = views.stage;
    const all = onStage ? [onStage, ...views.grid] : views.grid;
    const keys = new Set(all.map((view) => view.key));
    for (const [key, tile] of tiles) {
      if (!keys.has(key)) {
        tile.video.srcObject = null;
        tile.el.remove();
        tiles.delete(key);
      }
    }
    stage.hidden = !onStage;
    grid.classList.toggle("strip", !!onStage);
    /** @type {HTMLElement[]} */
    const inGrid = [];
    for (const view of all) {
      const tile = tileFor(view.key, view);
      update(tile, view, view.source === "camera" && !!view.media.microphone && isSpeaking(view.pid));
      if (view === onStage) {
        if (tile.el.parentElement !== stage) stage.append(tile.el);
      } else {
        inGrid.push(tile.el);
      }
    }
    inGrid.forEach((el, i) => {
      if (grid.children[i] !== el) grid.insertBefore(el, grid.children[i] || null);
    });
    const shape = gridShape(inGrid.length);
    grid.style.setProperty("--cols", String(shape.cols));
    grid.style.setProperty("--rows", String(shape.rows));
    grid.style.setProperty("--cols-phone", String(shape.phoneCols));
    grid.style.setProperty("--rows-phone", String(shape.phoneRows));
    grid.dataset.count = String(inGrid.length);
  }

  /** The name on someone's camera tile (they may already have left the session's list). @param {string} pid */
  function nameOf(pid) {
    const tile = tiles.get(`${pid}:camera`);
    return tile ? tile.name.textContent : null;
  }

  function dispose() {
    for (const tile of tiles.values()) tile.video.srcObject = null;
  }

  return { stage, grid, show, nameOf, dispose };
}
