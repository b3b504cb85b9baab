// The meeting room: joins with a MeetingSession, builds the page from its parts and keeps them
// in step with the session's events. Each part has one job and gets what it needs passed in:
//   status.js    connection pill, recording indicator, head count, announcer, media problems
//   tiles.js     video tiles and their layout (a gallery page, or the stage + strip)
//   view.js      speaker or gallery view, the gallery's pages, pins, how many tiles fit
//   receive.js   what the page asks the server to forward (what it draws, at that size)
//   audio.js     the <audio> elements that play what others say
//   speaking.js  who is speaking (the server's active speaker; tiles light up)
//   controls.js  microphone, camera, screen share, record, leave, end for everyone
//   chat.js      chat panel; people.js participants panel; panels.js one panel open at a time
// What happens after the room (left, ended, disconnected…) is the caller's (`onClosed`).

import { getToken } from "../api.js";
import { onLeavePage } from "../nav.js";
import { MeetingSession, SignalingError, socketUrl } from "../protocol.js";
import { h, pageTitle, root } from "../widgets.js";
import { createAudio } from "./audio.js";
import { createChat } from "./chat.js";
import { createControls } from "./controls.js";
import { connectPanels } from "./panels.js";
import { createPeople } from "./people.js";
import { createSpeaking, POLL_MS } from "./speaking.js";
import { CONNECTED, CONNECTING_MEDIA, createStatus, mediaConnectionPill, RECONNECTING } from "./status.js";
import { createReceive } from "./receive.js";
import { createTiles, tileViews } from "./tiles.js";
import { createView } from "./view.js";

/** @typedef {import("../protocol.js").Source} Source */
/**
 * How the room closed: the socket's close code and reason, whether the meeting ended, and the
 * reason it ended when it was not simply "meeting-ended".
 * @typedef {{code: number, reason: string, ended: boolean, endedReason?: string}} RoomClosed
 */

/**
 * @typedef {object} RoomOptions
 * @property {string} roomId
 * @property {import("../api.js").Meeting} meeting
 * @property {import("../api.js").User} me
 * @property {MediaStreamTrack | null} camera
 * @property {MediaStreamTrack | null} microphone
 * @property {boolean} microphoneOn
 * @property {boolean} cameraOn
 * @property {(code: string, message: string) => void} onRefused the server refused the join (the room was not shown)
 * @property {(closed: RoomClosed) => void} onClosed the room closed: show what follows
 */

/** Join the meeting and show the room; `onRefused` when the server says no. @param {RoomOptions} options */
export async function enterRoom(options) {
  const { roomId, meeting, microphone, camera } = options;
  const session = new MeetingSession({ url: socketUrl(roomId), token: getToken });
  /** @type {Partial<Record<Source, MediaStreamTrack>>} */
  const tracks = {};
  if (microphone) tracks.microphone = microphone;
  if (camera) tracks.camera = camera;
  const room = buildRoom(session, options);
  try {
    await session.join(tracks, { microphone: options.microphoneOn, camera: options.cameraOn, screen: false });
  } catch (error) {
    room.dispose(false);
    if (error instanceof SignalingError) {
      options.onRefused(error.code, error.message);
      return;
    }
    throw error;
  }
  pageTitle(meeting.title);
  root().replaceChildren(room.el);
  room.start();
}

/**
 * @param {MeetingSession} session
 * @param {RoomOptions} options
 */
function buildRoom(session, options) {
  const { meeting, me } = options;
  let timer = 0;
  let disposed = false;

  const status = createStatus();
  const videos = h("div", { class: "videos" });
  const view = createView({
    storage: safeStorage(), windowWidth: () => window.innerWidth, changed: render,
    box: () => ({ width: videos.clientWidth, height: videos.clientHeight }),
  });
  const tiles = createTiles({ onPin: view.togglePin });
  const audio = createAudio();
  const speaking = createSpeaking(session);
  const receive = createReceive({
    session, heights: () => drawnHeights(tiles), hidden: () => document.visibilityState === "hidden",
  });
  const chat = createChat({ session, enabled: meeting.settings.enable_chat });
  const people = createPeople({ session, pinned: () => view.state.pinned, onPin: view.togglePin });
  /** @type {Map<string, string>} participant id → name, for saying who left */
  const names = new Map();
  const controls = createControls({
    session, announce: status.announce, problem: status.problem, changed: render, microphoneOpened: speaking.listenToMicrophone,
  });

  const el = h("section", { class: "room", "data-testid": "room", "aria-label": `Meeting: ${meeting.title}` },
    h("header", { class: "room-bar" },
      h("h1", { class: "room-title" }, meeting.title), status.connection, status.recording, status.count, view.viewSwitch),
    status.problemLine,
    h("div", { class: "room-main" },
      status.announcer,
      videos,
      chat.panel, people.panel),
    h("nav", { class: "controls", "aria-label": "Meeting controls" },
      controls.mic, controls.camera, controls.screen, chat.button, people.button, controls.record, controls.leave, controls.end),
    audio.el);
  videos.append(tiles.stage, tiles.grid, view.pager);
  connectPanels(el, [chat, people]);

  /** Show everything as the session has it now. */
  function render() {
    if (disposed) return;
    const now = performance.now();
    for (const p of session.participants.values()) names.set(p.participant_id, p.display_name);
    view.keepPin((pid) => session.participants.has(pid));
    const views = tileViews(session, me.display_name, view.choice(speaking.speakers(now)));
    view.show(views);
    el.dataset.view = view.state.view;
    videos.dataset.layout = views.layout;
    tiles.show(views, (pid) => speaking.isSpeaking(pid, now));
    receive.update(views, view.state.pinned);
    status.show({ people: session.participants.size + 1, recording: session.recording.active });
    controls.render();
    people.render();
    audio.play(session);
  }

  // --- session events ------------------------------------------------------------------
  /** @param {Event} e */
  const detail = (e) => /** @type {CustomEvent} */ (e).detail;
  session.addEventListener("welcome", () => {
    chat.showHistory();
    render();
  });
  session.addEventListener("tracks", render);
  session.addEventListener("participants", render);
  session.addEventListener("active-speaker", render);
  session.addEventListener("recording", (e) => {
    const { recording } = detail(e);
    const who = recording.by ? recording.by.display_name : "The server";
    status.announce(recording.active ? `${who} started recording this meeting.` : `Recording stopped${recording.reason ? ` (${recording.reason})` : ""}.`);
    render();
  });
  session.addEventListener("participant-joined", (e) => status.announce(`${detail(e).event.participant.display_name} joined.`));
  session.addEventListener("participant-left", (e) => {
    // The session has already forgotten them; the room still has the name.
    const pid = detail(e).event.participant_id;
    status.announce(`${names.get(pid) ?? tiles.nameOf(pid) ?? "Someone"} left.`);
    speaking.forget(pid);
  });
  session.addEventListener("chat", (e) => chat.received(detail(e).message));
  session.addEventListener("error", (e) => chat.refused(detail(e).event));
  session.addEventListener("media-connection", (e) => {
    if (session.state !== "connected") return;
    const pill = mediaConnectionPill(detail(e).state);
    if (pill) status.setConnection(pill);
  });
  session.addEventListener("state", (e) => {
    const { state } = detail(e);
    if (state === "connected") status.setConnection(mediaConnected() ? CONNECTED : CONNECTING_MEDIA);
    if (state === "reconnecting") {
      status.setConnection(RECONNECTING);
      status.announce("The connection dropped. Reconnecting…");
    }
  });
  session.addEventListener("reconnected", () => {
    status.announce("Reconnected: you are back in the meeting.");
    if (session.localTracks.screen && !session.media.screen) session.sendMediaState({ screen: true });
  });
  session.addEventListener("closed", (e) => {
    const { code, reason, ended } = detail(e);
    dispose(true);
    const endedReason = session._ended && session._ended !== "meeting-ended" ? session._ended : undefined;
    options.onClosed({ code, reason, ended, endedReason });
  });

  const onVisibility = () => {
    render();
    receive.visibilityChanged();
  };
  const onResize = new ResizeObserver(() => render());

  function mediaConnected() {
    return !!session.pc && session.pc.connectionState === "connected";
  }

  /** @param {boolean} stopMedia stop the camera and microphone (not when the pre-join page keeps them) */
  function dispose(stopMedia) {
    if (disposed) return;
    disposed = true;
    clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisibility);
    onResize.disconnect();
    receive.dispose();
    status.dispose();
    speaking.stop();
    if (session.state !== "closed" && session.state !== "idle") session.leave();
    if (stopMedia) {
      for (const track of Object.values(session.localTracks)) track?.stop();
      controls.dispose(true);
    }
    audio.dispose();
    tiles.dispose();
    if (/** @type {any} */ (window).__tertulia && /** @type {any} */ (window).__tertulia.session === session) {
      /** @type {any} */ (window).__tertulia.closed = true;
    }
  }

  function start() {
    // For tests and debugging: the page's peer connection and session.
    /** @type {any} */ (window).__tertulia = {
      session,
      get pc() { return session.pc; },
      closed: false,
    };
    onLeavePage(() => dispose(true));
    document.addEventListener("visibilitychange", onVisibility);
    onResize.observe(videos);
    speaking.listenToMicrophone();
    chat.showHistory();
    render();
    timer = window.setInterval(() => { speaking.poll().then(render).catch(() => {}); }, POLL_MS);
    status.setConnection(mediaConnected() ? CONNECTED : CONNECTING_MEDIA);
  }

  return { el, start, dispose };
}

/**
 * The heights the videos are drawn at, in device pixels: the stage, a gallery tile, a strip
 * tile (0 when there is none to measure; the request then uses its own default).
 * @param {{stage: HTMLElement, grid: HTMLElement}} tiles
 * @returns {import("./receive.js").DrawnHeights}
 */
function drawnHeights(tiles) {
  const scale = window.devicePixelRatio || 1;
  const first = tiles.grid.firstElementChild;
  const tile = first instanceof HTMLElement ? first.getBoundingClientRect().height : 0;
  const strip = tiles.grid.classList.contains("strip");
  return {
    stage: (tiles.stage.hidden ? 0 : tiles.stage.getBoundingClientRect().height) * scale || 720,
    tile: (strip ? 0 : tile) * scale || 360,
    strip: (strip ? tile || tiles.grid.getBoundingClientRect().height : 0) * scale || 180,
  };
}

/** localStorage, or null where the browser refuses it. */
function safeStorage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
