// Video tiles and their layout. One tile per person's camera (initials when it is off) and one
// per shared screen. Layout: a grid whose columns follow the number of tiles; when someone
// shares a screen, that screen is the one large tile (the stage) and every other tile is in a
// strip below; another person's screen wins over your own.
//
// `tileViews()` decides what is shown and where (a pure function of the session's state): a
// dominant-speaker view, or asking the server only for what is visible, would start there.
// `createTiles()` keeps the elements, attaches the tracks and puts the tiles in place.

import { icon } from "../icons.js";
import { h, initials } from "../widgets.js";

/** @typedef {import("../protocol.js").Source} Source */
/** @typedef {import("../protocol.js").MediaFlags} MediaFlags */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */

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
 */

/**
 * An element of the page for one tile.
 * @typedef {object} Tile
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} name
 * @property {HTMLElement} avatar
 * @property {HTMLElement} muted
 * @property {MediaStreamTrack | null} track
 */

/**
 * The tiles to show: the one on the stage (a shared screen, or none) and the others in grid
 * order (screens not on the stage, my camera, everybody else's cameras).
 * @param {Pick<MeetingSession, "welcome" | "participantId" | "localTracks" | "media" | "participants" | "tracksOf">} session
 * @param {string} myName my name until the welcome says it
 * @returns {{stage: TileView | null, grid: TileView[]}}
 */
export function tileViews(session, myName) {
  const me = session.participantId || "self";
  const selfName = session.welcome ? session.welcome.you.display_name : myName;
  /** @type {TileView[]} */
  const cameras = [{ key: "self:camera", source: "camera", pid: "self", participantId: me, name: `${selfName} (you)`, media: session.media, track: session.localTracks.camera || null, self: true }];
  /** @type {TileView[]} */
  const screens = [];
  if (session.localTracks.screen) {
    screens.push({ key: "self:screen", source: "screen", pid: "self", participantId: me, name: "Your screen", media: session.media, track: session.localTracks.screen, self: true });
  }
  for (const person of session.participants.values()) {
    const pid = person.participant_id;
    const received = session.tracksOf(pid);
    cameras.push({ key: `${pid}:camera`, source: "camera", pid, participantId: pid, name: person.display_name, media: person.media, track: received.camera ? received.camera.track : null, self: false });
    if (received.screen) {
      screens.push({ key: `${pid}:screen`, source: "screen", pid, participantId: pid, name: `${person.display_name}’s screen`, media: person.media, track: received.screen.track, self: false });
    }
  }
  // Someone else's screen takes the stage before our own.
  screens.sort((a, b) => Number(a.self) - Number(b.self));
  const [stage = null, ...otherScreens] = screens;
  return { stage, grid: [...otherScreens, ...cameras] };
}

/**
 * Columns and rows of a grid of n tiles: 1, 2×2, 3×3, then 4 columns; on a phone one column
 * up to two tiles, two up to six, then three.
 * @param {number} n
 */
export function gridShape(n) {
  const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
  const phoneCols = n <= 2 ? 1 : n <= 6 ? 2 : 3;
  return { cols, rows: Math.ceil(n / cols), phoneCols, phoneRows: Math.ceil(n / phoneCols) };
}

/** The stage (a shared screen, large) and the grid (or the strip under the stage). */
export function createTiles() {
  const stage = h("div", { class: "stage", "data-testid": "stage", hidden: true });
  const grid = h("div", { class: "grid", "data-testid": "video-grid" });
  /** @type {Map<string, Tile>} by TileView key */
  const tiles = new Map();

  /** @param {string} key @param {Source} source */
  function tileFor(key, source) {
    let tile = tiles.get(key);
    if (tile) return tile;
    const video = h("video", { autoplay: true, playsInline: true, muted: true, "data-testid": "tile-video" });
    const name = h("span", { class: "name", "data-testid": "tile-name" });
    const muted = h("span", { class: "mic-off", "data-testid": "tile-muted", role: "img", "aria-label": "Microphone off", title: "Microphone off", hidden: true }, icon("micOff"));
    const avatar = h("div", { class: "avatar", "aria-hidden": "true" });
    const el = h("figure", { class: "tile", "data-testid": "tile", "data-source": source },
      video, avatar, h("figcaption", {}, muted, name));
    tile = { el, video, name, avatar, muted, track: null };
    tiles.set(key, tile);
    return tile;
  }

  /** @param {Tile} tile @param {MediaStreamTrack | null} track */
  function attach(tile, track) {
    if (tile.track === track) return;
    tile.track = track;
    tile.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) tile.video.play().catch(() => {});
  }

  /** @param {Tile} tile @param {TileView} view @param {boolean} speaking */
  function update(tile, view, speaking) {
    const showVideo = !!view.track && (view.source === "screen" || view.media.camera);
    attach(tile, view.track);
    tile.video.hidden = !showVideo;
    tile.video.classList.toggle("mirror", view.self && view.source === "camera");
    tile.avatar.hidden = showVideo;
    tile.avatar.textContent = initials(view.name.replace(" (you)", ""));
    tile.name.textContent = view.name;
    tile.el.dataset.participantId = view.participantId;
    tile.el.dataset.self = String(view.self);
    const micOn = !!view.media.microphone;
    tile.el.dataset.mic = micOn ? "on" : "off";
    tile.muted.hidden = micOn || view.source === "screen";
    tile.el.dataset.speaking = String(speaking);
    tile.el.classList.toggle("speaking", speaking);
    tile.el.setAttribute("aria-label", `${view.name}${view.source === "camera" && !micOn ? ", microphone off" : ""}${speaking ? ", speaking" : ""}`);
  }

  /**
   * Show these tiles (and remove the others).
   * @param {{stage: TileView | null, grid: TileView[]}} views
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
      const tile = tileFor(view.key, view.source);
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
