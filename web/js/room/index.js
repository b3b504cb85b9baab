// The meeting room: joins with a MeetingSession, builds the page from its parts and keeps them
// in step with the session's events. Each part has one job and gets what it needs passed in:
//   status.js    connection pill, recording indicator, head count, announcer, media problems
//   tiles.js     video tiles and their layout (a gallery page, or the stage + strip)
//   view.js      speaker or gallery view, the gallery's pages, pins, how many tiles fit
//   receive.js   what the page asks the server to forward (what it draws, at that size)
//   audio.js     the <audio> elements that play what others say
//   speaking.js  who is speaking (the server's active speaker; tiles light up)
//   controls.js  microphone, camera, screen share, raise hand, record, leave, end for everyone
//   chat.js      chat panel; people.js participants panel; panels.js one panel open at a time
//   moderation.js  what the host and moderators may do: the people panel's buttons, lock,
//                mute everyone, the waiting room switch, the lock indicator
//   admission.js the waiting room's queue (panel, badge, knock notice) for moderators
//   notices.js   "muted by the moderator", the countdown to a scheduled end
// Held in the waiting room (at join, or when a reconnection lands there) the caller shows
// its waiting screen (`onWaiting`); the room comes back on the welcome. What happens after
// the room (left, ended, removed, disconnected…) is the caller's (`onClosed`).

import { getToken } from "../api.js";
import { onLeavePage } from "../nav.js";
import { MeetingSession, SignalingError, socketUrl } from "../protocol.js";
import { h, pageTitle, root } from "../widgets.js";
import { createAdmission } from "./admission.js";
import { createAudio } from "./audio.js";
import { createChat } from "./chat.js";
import { createControls } from "./controls.js";
import { createModeration } from "./moderation.js";
import { createNotices, sourcesInWords } from "./notices.js";
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
 * reason it ended when it was not simply "meeting-ended"; the error code when a reconnection
 * was refused for good (`refusal`: `barred`, `meeting-locked`, `denied-recently`, …); the
 * `removed` event when a moderator removed us, the `denied` one when refused at the waiting room.
 * @typedef {object} RoomClosed
 * @property {number} code
 * @property {string} reason
 * @property {boolean} ended
 * @property {string} [endedReason]
 * @property {string | null} [refusal]
 * @property {{barred?: boolean, by?: {display_name: string} | null} | null} [removed]
 * @property {{reason?: string, retry_after?: number} | null} [denied]
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
 * @property {(code: string, message: string, details: {retryAfter?: number | null}) => void} onRefused the server
 *   refused the join (the room was not shown); `retryAfter`: when a refused person may knock again (seconds)
 * @property {(closed: RoomClosed) => void} onClosed the room closed: show what follows
 * @property {(waiting: import("../protocol.js").Waiting, session: MeetingSession) => void} onWaiting
 *   held in the waiting room (at join, after a reconnection, and when `host_present` changes): show the waiting screen
 */

/** Join the meeting and show the room; `onRefused` when the server says no. @param {RoomOptions} options */
export async function enterRoom(options) {
  const { roomId, meeting, microphone, camera } = options;
  // `?ice=relay` on the meeting's link: media only through TURN (to check a TURN set-up)
  const relay = new URLSearchParams(location.search).get("ice") === "relay";
  const session = new MeetingSession({ url: socketUrl(roomId), token: getToken, iceTransportPolicy: relay ? "relay" : "all" });
  /** @type {Partial<Record<Source, MediaStreamTrack>>} */
  const tracks = {};
  if (microphone) tracks.microphone = microphone;
  if (camera) tracks.camera = camera;
  const room = buildRoom(session, options);
  try {
    await session.join(tracks, { microphone: options.microphoneOn, camera: options.cameraOn, screen: false });
  } catch (error) {
    // Left from the waiting room (or refused there): `onClosed` has shown what follows.
    if (room.isDisposed() || session.leaving) return;
    room.dispose(false);
    if (error instanceof SignalingError) {
      options.onRefused(error.code, error.message, { retryAfter: session.denied ? session.denied.retry_after : null });
      return;
    }
    throw error;
  }
  if (room.isDisposed()) return;
  pageTitle(meeting.title);
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
  let started = false;
  const admin = () => me.role === "admin";

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
  const moderation = createModeration({ session, admin, problem: status.problem });
  const people = createPeople({
    session, pinned: () => view.state.pinned, onPin: view.togglePin,
    moderation: { powers: moderation.powers, actions: moderation.actions, tools: moderation.tools },
  });
  const admission = createAdmission({ session, canAdmit: () => moderation.powers().moderate, problem: status.problem });
  const notices = createNotices({ session });
  /** @type {Map<string, string>} participant id → name, for saying who left */
  const names = new Map();
  const controls = createControls({
    session, announce: status.announce, problem: status.problem, changed: render, microphoneOpened: speaking.listenToMicrophone, admin,
  });
  /** @type {Source[]} what a moderator turned off last (a refused unmute turns them off again) */
  let lastMuted = [];
  /** the lock and the waiting room as last said (to announce their changes) */
  let settingsShown = { locked: false, waitingRoom: !!meeting.settings.require_approval };

  const el = h("section", { class: "room", "data-testid": "room", "aria-label": `Meeting: ${meeting.title}` },
    h("header", { class: "room-bar" },
      h("h1", { class: "room-title" }, meeting.title), status.connection, status.recording, moderation.lockIndicator, status.count, view.viewSwitch),
    status.problemLine,
    notices.el,
    h("div", { class: "room-main" },
      status.announcer,
      admission.notice,
      videos,
      chat.panel, people.panel, admission.panel),
    h("nav", { class: "controls", "aria-label": "Meeting controls" },
      controls.mic, controls.camera, controls.screen, controls.hand, chat.button, people.button, admission.button, controls.record, controls.leave, controls.end),
    audio.el);
  videos.append(tiles.stage, tiles.grid, view.pager);
  connectPanels(el, [chat, people, admission]);

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
    moderation.render();
    people.render();
    admission.render();
    notices.render();
    audio.play(session);
  }

  /** Put the room on the page (at the start, and back from the waiting screen after a reconnection). */
  function show() {
    pageTitle(meeting.title);
    root().replaceChildren(el);
  }

  /** The name of someone in the meeting (or who was). @param {string} pid */
  function nameOf(pid) {
    return session.participants.get(pid)?.display_name ?? names.get(pid) ?? tiles.nameOf(pid) ?? "Someone";
  }

  // --- session events ------------------------------------------------------------------
  /** @param {Event} e */
  const detail = (e) => /** @type {CustomEvent} */ (e).detail;
  session.addEventListener("welcome", (e) => {
    const { welcome } = detail(e);
    // A reconnection that waited in the waiting room: back to the room.
    if (started && !disposed && !el.isConnected) show();
    chat.showHistory();
    settingsShown = { locked: !!welcome.meeting.settings.locked, waitingRoom: !!welcome.meeting.settings.require_approval };
    // Turned off by a moderator before a reconnection: still off.
    const held = welcome.you.held || [];
    if (held.length) controls.stoppedByModerator(held);
    render();
  });
  session.addEventListener("waiting", (e) => {
    if (disposed) return;
    // Leaving the page while waiting leaves the waiting room (the room is not started yet).
    if (!started) onLeavePage(() => dispose(true));
    options.onWaiting(detail(e).event, session);
  });
  session.addEventListener("knocks", render);
  session.addEventListener("knock", (e) => {
    render();
    admission.knocked(detail(e).event);
  });
  session.addEventListener("muted", (e) => {
    const { event } = detail(e);
    lastMuted = event.sources;
    notices.mutedBy(event);
    controls.stoppedByModerator(event.sources);
    status.announce(`Muted by the moderator: your ${sourcesInWords(event.sources)} ${event.sources.length > 1 ? "were" : "was"} turned off.`);
  });
  session.addEventListener("unmute-allowed", (e) => {
    notices.unmuteAllowed(detail(e).event);
    status.announce("A moderator allowed you to unmute.");
    render();
  });
  session.addEventListener("role-changed", (e) => {
    const { event, mine } = detail(e);
    const words = { host: "the host", moderator: "a moderator", participant: "a participant" };
    const role = /** @type {keyof typeof words} */ (event.role);
    if (mine) status.announce(`You are now ${words[role] || role}.`);
    else if (role !== "participant") status.announce(`${nameOf(event.participant_id)} is now ${words[role] || role}.`);
    render();
  });
  session.addEventListener("meeting-updated", () => {
    const settings = session.welcome ? session.welcome.meeting.settings : null;
    if (settings) {
      const now = { locked: !!settings.locked, waitingRoom: !!settings.require_approval };
      if (now.locked !== settingsShown.locked) status.announce(now.locked ? "The meeting is locked: nobody new can join." : "The meeting is unlocked.");
      else if (now.waitingRoom !== settingsShown.waitingRoom) status.announce(now.waitingRoom ? "The waiting room is on." : "The waiting room is off.");
      settingsShown = now;
    }
    render();
  });
  session.addEventListener("hand", (e) => {
    const { event, mine } = detail(e);
    if (mine) status.announce(event.raised ? "Your hand is raised." : "Your hand is lowered.");
    else if (event.raised && moderation.powers().moderate) status.announce(`${nameOf(event.participant_id)} raised a hand.`);
    render();
  });
  session.addEventListener("meeting-ending", (e) => notices.meetingEnding(detail(e).event));
  session.addEventListener("refused", (e) => moderation.refused(detail(e).event));
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
    const { participant_id: pid, reason } = detail(e).event;
    status.announce(reason === "removed" ? `${nameOf(pid)} was removed from the meeting.` : `${nameOf(pid)} left.`);
    speaking.forget(pid);
  });
  session.addEventListener("chat", (e) => chat.received(detail(e).message));
  session.addEventListener("error", (e) => {
    const { event } = detail(e);
    chat.refused(event);
    if (event.code === "muted-by-moderator") {
      // The server holds what a moderator turned off: off again here too.
      status.problem("A moderator muted you: you can turn it on again when a moderator allows it.");
      controls.stoppedByModerator(lastMuted.length ? lastMuted : ["microphone"]);
    }
  });
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
    const { code, reason, ended, refusal } = detail(e);
    dispose(true);
    const endedReason = session._ended && session._ended !== "meeting-ended" ? session._ended : undefined;
    options.onClosed({ code, reason, ended, endedReason, refusal, removed: session.removed, denied: session.denied });
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
    notices.dispose();
    admission.dispose();
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
    started = true;
    show();
    onLeavePage(() => dispose(true));
    document.addEventListener("visibilitychange", onVisibility);
    onResize.observe(videos);
    speaking.listenToMicrophone();
    chat.showHistory();
    render();
    timer = window.setInterval(() => { speaking.poll().then(render).catch(() => {}); }, POLL_MS);
    status.setConnection(mediaConnected() ? CONNECTED : CONNECTING_MEDIA);
  }

  // For tests and debugging: the page's peer connection and session (from the join on, so
  // also while waiting in the waiting room).
  /** @type {any} */ (window).__tertulia = {
    session,
    get pc() { return session.pc; },
    closed: false,
  };

  return { el, start, dispose, isDisposed: () => disposed };
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
