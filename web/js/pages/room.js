// The meeting room: video grid (or stage + strip when someone shares a screen), speaking
// highlight, controls, chat and participants panels, connection state and rejoin.

import { getToken } from "../api.js";
import { onLeavePage } from "../nav.js";
import { describeStatus, LevelMeter, openDevices } from "../media.js";
import { MeetingSession, SignalingError, socketUrl } from "../protocol.js";
import { icon } from "../icons.js";
import { confirmDialog, h, initials, messageOf, pageTitle, root } from "../widgets.js";
import { showRoomClosed } from "./outcome.js";

/** @typedef {import("../protocol.js").Participant} Participant */
/** @typedef {import("../protocol.js").ChatMessage} ChatMessage */
/** @typedef {import("../protocol.js").Source} Source */

const SPEAKING_LEVEL = 0.02; // RTP audio level (0..1, linear) above which someone speaks
const SPEAKING_HOLD_MS = 900;
const ANNOUNCEMENT_MS = 6000; // an announcement stays on screen this long, then clears

/**
 * @typedef {object} RoomOptions
 * @property {string} roomId
 * @property {import("../api.js").Meeting} meeting
 * @property {import("../api.js").User} me
 * @property {MediaStreamTrack | null} camera
 * @property {MediaStreamTrack | null} microphone
 * @property {boolean} microphoneOn
 * @property {boolean} cameraOn
 * @property {(code: string, message: string) => void} onRefused
 */

/**
 * A tile: one person's camera (or avatar), or one shared screen.
 * @typedef {object} Tile
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} name
 * @property {HTMLElement} avatar
 * @property {HTMLElement} muted
 * @property {MediaStreamTrack | null} track
 */

/** @param {RoomOptions} options */
export async function enterRoom(options) {
  const { roomId, meeting, microphone, camera } = options;
  const session = new MeetingSession({ url: socketUrl(roomId), token: getToken });
  /** @type {Partial<Record<Source, MediaStreamTrack>>} */
  const tracks = {};
  if (microphone) tracks.microphone = microphone;
  if (camera) tracks.camera = camera;
  const ui = buildRoom(session, options);
  try {
    await session.join(tracks, { microphone: options.microphoneOn, camera: options.cameraOn, screen: false });
  } catch (error) {
    ui.dispose(false);
    if (error instanceof SignalingError) {
      options.onRefused(error.code, error.message);
      return;
    }
    throw error;
  }
  pageTitle(meeting.title);
  root().replaceChildren(ui.el);
  ui.start();
}

/**
 * @param {MeetingSession} session
 * @param {RoomOptions} options
 */
function buildRoom(session, options) {
  const { meeting, me, roomId } = options;
  /** @type {Map<string, Tile>} key: participant id + ":" + source ("self" for me) */
  const tiles = new Map();
  /** @type {Map<string, HTMLAudioElement>} by receive mid */
  const audios = new Map();
  /** @type {Map<string, number>} participant id ("self") → last time heard speaking */
  const lastSpoke = new Map();
  /** @type {LevelMeter | null} */
  let selfMeter = null;
  let unread = 0;
  let timer = 0;
  let announceTimer = 0;
  let disposed = false;
  /** @type {MediaStreamTrack | null} */
  let screenTrack = null;

  // --- layout -------------------------------------------------------------------------
  // The announcer is a live region that is always in the page (screen readers watch it);
  // it floats over the videos and takes no room when empty (style.css).
  const connection = h("span", { class: "pill", "data-testid": "connection-state", "data-state": "connecting", role: "status", "aria-live": "polite" }, "Connecting…");
  const count = h("span", { class: "muted", "data-testid": "participant-count" });
  const recordingPill = h("span", { class: "pill recording", "data-testid": "recording-indicator", role: "status", hidden: true }, "● Recording");
  const announcer = h("p", { class: "announcer", role: "status", "aria-live": "polite", "data-testid": "room-status" });
  const stage = h("div", { class: "stage", "data-testid": "stage", hidden: true });
  const grid = h("div", { class: "grid", "data-testid": "video-grid" });
  const audioBox = h("div", { hidden: true });

  const chatList = h("ol", { class: "chat-list", "data-testid": "chat-list", "aria-live": "polite" });
  const chatInput = h("input", { id: "chat-input", maxLength: 2000, autocomplete: "off", "data-testid": "chat-input", placeholder: "Write a message" });
  const chatError = h("p", { class: "error", role: "alert", "data-testid": "chat-error" });
  const chatForm = h("form", { class: "chat-form" }, h("label", { for: "chat-input", class: "visually-hidden" }, "Message"), chatInput,
    h("button", { type: "submit", "data-testid": "chat-send" }, "Send"));
  const chatPanel = h("aside", { class: "panel", id: "chat-panel", "data-testid": "chat-panel", "aria-labelledby": "chat-heading", hidden: true },
    h("div", { class: "panel-head" }, h("h2", { id: "chat-heading" }, "Chat"),
      h("button", { type: "button", class: "icon", "aria-label": "Close chat", onclick: () => togglePanel("chat", false) }, icon("close"))),
    chatList, chatError, meeting.settings.enable_chat ? chatForm : h("p", { class: "muted" }, "Chat is off in this meeting."));
  const peopleList = h("ul", { class: "people", "data-testid": "participants-list" });
  const peoplePanel = h("aside", { class: "panel", id: "people-panel", "data-testid": "participants-panel", "aria-labelledby": "people-heading", hidden: true },
    h("div", { class: "panel-head" }, h("h2", { id: "people-heading" }, "People"),
      h("button", { type: "button", class: "icon", "aria-label": "Close the participants panel", onclick: () => togglePanel("people", false) }, icon("close"))),
    peopleList);

  const micButton = h("button", { type: "button", class: "control", "data-testid": "toggle-mic", "aria-pressed": "false" });
  const camButton = h("button", { type: "button", class: "control", "data-testid": "toggle-camera", "aria-pressed": "false" });
  const screenButton = h("button", { type: "button", class: "control", "data-testid": "toggle-screen", "aria-pressed": "false" });
  const unreadBadge = h("span", { class: "badge-count", "data-testid": "chat-unread", hidden: true });
  const chatButton = h("button", { type: "button", class: "control", "data-testid": "toggle-chat", "aria-expanded": "false", "aria-controls": "chat-panel" },
    icon("chat"), h("span", { class: "label" }, "Chat"), unreadBadge);
  const peopleButton = h("button", { type: "button", class: "control", "data-testid": "toggle-participants", "aria-expanded": "false", "aria-controls": "people-panel" },
    icon("people"), h("span", { class: "label" }, "People"));
  const recordButton = h("button", { type: "button", class: "control", "data-testid": "toggle-recording", "aria-pressed": "false", hidden: true });
  const leaveButton = h("button", { type: "button", class: "control danger", "data-testid": "leave" },
    icon("leave"), h("span", { class: "label" }, "Leave"));
  const endButton = h("button", { type: "button", class: "control danger", "data-testid": "end-meeting", hidden: true },
    icon("end"), h("span", { class: "label" }, "End for everyone"));
  const mediaMessage = h("p", { class: "warning", role: "alert", "data-testid": "media-message", hidden: true });

  const el = h("section", { class: "room", "data-testid": "room", "aria-label": `Meeting: ${meeting.title}` },
    h("header", { class: "room-bar" },
      h("h1", { class: "room-title" }, meeting.title), connection, recordingPill, count),
    mediaMessage,
    h("div", { class: "room-main" },
      announcer,
      h("div", { class: "videos" }, stage, grid),
      chatPanel, peoplePanel),
    h("nav", { class: "controls", "aria-label": "Meeting controls" },
      micButton, camButton, screenButton, chatButton, peopleButton, recordButton, leaveButton, endButton),
    audioBox);

  // --- helpers -----------------------------------------------------------------------
  /** Say something in the live region; it clears by itself after a few seconds. @param {string} text */
  function announce(text) {
    clearTimeout(announceTimer);
    announcer.textContent = text;
    announceTimer = window.setTimeout(() => { announcer.textContent = ""; }, ANNOUNCEMENT_MS);
  }

  /** @param {string} key @param {string} source */
  function tileFor(key, source) {
    let tile = tiles.get(key);
    if (tile) return tile;
    const video = h("video", { autoplay: true, playsInline: true, muted: true, "data-testid": "tile-video" });
    const name = h("span", { class: "name", "data-testid": "tile-name" });
    const muted = h("span", { class: "mic-off", "data-testid": "tile-muted", role: "img", "aria-label": "Microphone off", title: "Microphone off", hidden: true }, icon("micOff"));
    const avatar = h("div", { class: "avatar", "aria-hidden": "true" });
    const tileEl = h("figure", { class: "tile", "data-testid": "tile", "data-source": source },
      video, avatar, h("figcaption", {}, muted, name));
    tile = { el: tileEl, video, name, avatar, muted, track: null };
    tiles.set(key, tile);
    return tile;
  }

  /** @param {Tile} tile @param {MediaStreamTrack | null} track */
  function showTrack(tile, track) {
    if (tile.track === track) return;
    tile.track = track;
    tile.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) tile.video.play().catch(() => {});
  }

  /** @param {string} participantId @returns {number} */
  function speakingSince(participantId) {
    return lastSpoke.get(participantId) || 0;
  }

  // --- rendering -----------------------------------------------------------------------
  function render() {
    if (disposed) return;
    const now = performance.now();
    /** @type {{key: string, source: Source, pid: string, name: string, media: {microphone: boolean, camera: boolean, screen: boolean}, track: MediaStreamTrack | null, self: boolean}[]} */
    const wanted = [];
    const selfName = session.welcome ? session.welcome.you.display_name : me.display_name;
    wanted.push({ key: "self:camera", source: "camera", pid: "self", name: `${selfName} (you)`, media: session.media, track: session.localTracks.camera || null, self: true });
    const screens = [];
    if (session.localTracks.screen) {
      screens.push({ key: "self:screen", source: /** @type {Source} */ ("screen"), pid: "self", name: "Your screen", media: session.media, track: session.localTracks.screen, self: true });
    }
    for (const person of session.participants.values()) {
      const received = session.tracksOf(person.participant_id);
      wanted.push({ key: `${person.participant_id}:camera`, source: "camera", pid: person.participant_id, name: person.display_name, media: person.media, track: received.camera ? received.camera.track : null, self: false });
      if (received.screen) {
        screens.push({ key: `${person.participant_id}:screen`, source: /** @type {Source} */ ("screen"), pid: person.participant_id, name: `${person.display_name}’s screen`, media: person.media, track: received.screen.track, self: false });
      }
    }
    // Someone else's screen takes the stage before our own.
    screens.sort((a, b) => Number(a.self) - Number(b.self));
    const all = [...screens, ...wanted];
    const keys = new Set(all.map((w) => w.key));
    for (const [key, tile] of tiles) {
      if (!keys.has(key)) {
        tile.video.srcObject = null;
        tile.el.remove();
        tiles.delete(key);
      }
    }
    const onStage = screens[0];
    stage.hidden = !onStage;
    grid.classList.toggle("strip", !!onStage);
    /** @type {HTMLElement[]} */
    const gridTiles = [];
    for (const w of all) {
      const tile = tileFor(w.key, w.source);
      const showVideo = !!w.track && (w.source === "screen" || w.media.camera);
      showTrack(tile, w.track);
      tile.video.hidden = !showVideo;
      tile.video.classList.toggle("mirror", w.self && w.source === "camera");
      tile.avatar.hidden = showVideo;
      tile.avatar.textContent = initials(w.name.replace(" (you)", ""));
      tile.name.textContent = w.name;
      tile.el.dataset.participantId = w.pid === "self" ? session.participantId || "self" : w.pid;
      tile.el.dataset.self = String(w.self);
      const micOn = !!w.media.microphone;
      tile.el.dataset.mic = micOn ? "on" : "off";
      tile.muted.hidden = micOn || w.source === "screen";
      const speaking = w.source === "camera" && micOn && now - speakingSince(w.pid) < SPEAKING_HOLD_MS;
      tile.el.dataset.speaking = String(speaking);
      tile.el.classList.toggle("speaking", speaking);
      tile.el.setAttribute("aria-label", `${w.name}${w.source === "camera" && !micOn ? ", microphone off" : ""}${speaking ? ", speaking" : ""}`);
      if (w === onStage) {
        if (tile.el.parentElement !== stage) stage.append(tile.el);
      } else {
        gridTiles.push(tile.el);
      }
    }
    gridTiles.forEach((tileEl, i) => {
      if (grid.children[i] !== tileEl) grid.insertBefore(tileEl, grid.children[i] || null);
    });
    const n = gridTiles.length;
    const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    grid.style.setProperty("--cols", String(cols));
    grid.style.setProperty("--rows", String(Math.ceil(n / cols)));
    const phoneCols = n <= 2 ? 1 : n <= 6 ? 2 : 3;
    grid.style.setProperty("--cols-phone", String(phoneCols));
    grid.style.setProperty("--rows-phone", String(Math.ceil(n / phoneCols)));
    grid.dataset.count = String(n);
    count.textContent = `${session.participants.size + 1} in the meeting`;
    renderControls();
    renderPeople();
    renderAudio();
  }

  function renderAudio() {
    const pc = session.pc;
    const active = new Set();
    for (const slot of session.slots) {
      if (slot.kind !== "audio" || !slot.participant_id) continue;
      const transceiver = session.transceiverFor(slot.mid);
      if (!transceiver) continue;
      active.add(slot.mid);
      let audio = audios.get(slot.mid);
      if (!audio || !pc) {
        audio = h("audio", { autoplay: true, "data-mid": slot.mid });
        audios.set(slot.mid, audio);
        audioBox.append(audio);
      }
      const track = transceiver.receiver.track;
      const current = audio.srcObject instanceof MediaStream ? audio.srcObject.getTracks()[0] : null;
      if (current !== track) {
        audio.srcObject = new MediaStream([track]);
        audio.play().catch(() => {});
      }
    }
    for (const [mid, audio] of audios) {
      if (!active.has(mid)) {
        audio.srcObject = null;
        audio.remove();
        audios.delete(mid);
      }
    }
  }

  function renderControls() {
    const hasMic = !!session.localTracks.microphone;
    const hasCam = !!session.localTracks.camera;
    const micOn = hasMic && session.media.microphone;
    const camOn = hasCam && session.media.camera;
    const sharing = !!session.localTracks.screen;
    setControl(micButton, micOn, micOn ? "mic" : "micOff", micOn ? "Mute" : "Unmute", micOn ? "Mute microphone" : "Unmute microphone");
    setControl(camButton, camOn, camOn ? "camera" : "cameraOff", camOn ? "Stop video" : "Start video", camOn ? "Turn camera off" : "Turn camera on");
    setControl(screenButton, sharing, "screen", sharing ? "Stop sharing" : "Share screen", sharing ? "Stop sharing your screen" : "Share your screen");
    screenButton.hidden = !(navigator.mediaDevices && "getDisplayMedia" in navigator.mediaDevices);
    endButton.hidden = !session.isHost;
    const role = session.welcome ? session.welcome.you.role : "participant";
    const mayRecord = !!session.welcome && session.welcome.meeting.settings.enable_recording && (role === "host" || role === "moderator");
    recordButton.hidden = !mayRecord;
    const recording = session.recording.active;
    setControl(recordButton, recording, "record", recording ? "Stop recording" : "Record", recording ? "Stop recording" : "Start recording");
    recordButton.classList.remove("off");
    recordingPill.hidden = !recording;
  }

  /**
   * @param {HTMLButtonElement} button @param {boolean} on @param {import("../icons.js").IconName} iconName
   * @param {string} label @param {string} accessible
   */
  function setControl(button, on, iconName, label, accessible) {
    button.setAttribute("aria-pressed", String(on));
    button.setAttribute("aria-label", accessible);
    button.classList.toggle("off", !on && button !== screenButton);
    button.replaceChildren(icon(iconName), h("span", { class: "label" }, label));
  }

  function renderPeople() {
    /** @type {{pid: string, name: string, role: string, media: {microphone: boolean, camera: boolean, screen: boolean}, self: boolean}[]} */
    const people = [];
    if (session.welcome) {
      people.push({ pid: session.welcome.participant_id, name: `${session.welcome.you.display_name} (you)`, role: session.welcome.you.role, media: session.media, self: true });
    }
    for (const p of session.participants.values()) people.push({ pid: p.participant_id, name: p.display_name, role: p.role, media: p.media, self: false });
    peopleList.replaceChildren(...people.map((p) => h("li", { "data-testid": "participant-item", "data-participant-id": p.pid },
      h("span", { class: "person-name" }, p.name, p.role === "host" ? h("span", { class: "tag" }, "host") : null),
      h("span", { class: "states" },
        h("span", { "data-testid": "state-mic", "data-on": String(p.media.microphone), title: p.media.microphone ? "Microphone on" : "Microphone off", role: "img", "aria-label": p.media.microphone ? "Microphone on" : "Microphone off" }, icon(p.media.microphone ? "mic" : "micOff")),
        h("span", { "data-testid": "state-camera", "data-on": String(p.media.camera), title: p.media.camera ? "Camera on" : "Camera off", role: "img", "aria-label": p.media.camera ? "Camera on" : "Camera off" }, icon(p.media.camera ? "camera" : "cameraOff")),
        p.media.screen ? h("span", { "data-testid": "state-screen", title: "Sharing the screen", role: "img", "aria-label": "Sharing the screen" }, icon("screen")) : null))));
  }

  /** @param {ChatMessage} message @param {boolean} mine */
  function chatItem(message, mine) {
    const time = new Date(message.created_at).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    if (message.kind === "system" || !message.author) {
      return h("li", { class: "system", "data-testid": "chat-message" }, message.text);
    }
    return h("li", { class: mine ? "mine" : "", "data-testid": "chat-message" },
      h("div", { class: "meta" }, h("strong", {}, message.author.display_name), " ", h("time", { datetime: message.created_at }, time)),
      h("div", { class: "text" }, message.text));
  }

  function renderChatHistory() {
    const myId = session.welcome ? session.welcome.you.user_id : -1;
    chatList.replaceChildren(...session.chat.map((m) => chatItem(m, !!m.author && m.author.user_id === myId)));
    chatList.scrollTop = chatList.scrollHeight;
  }

  /** @param {"chat" | "people"} which @param {boolean} [open] */
  function togglePanel(which, open) {
    const panel = which === "chat" ? chatPanel : peoplePanel;
    const button = which === "chat" ? chatButton : peopleButton;
    const other = which === "chat" ? peoplePanel : chatPanel;
    const otherButton = which === "chat" ? peopleButton : chatButton;
    const show = open === undefined ? panel.hidden : open;
    panel.hidden = !show;
    button.setAttribute("aria-expanded", String(show));
    el.classList.toggle("panel-open", show || !other.hidden);
    if (show) {
      other.hidden = true;
      otherButton.setAttribute("aria-expanded", "false");
      el.classList.add("panel-open");
      if (which === "chat") {
        unread = 0;
        unreadBadge.hidden = true;
        chatList.scrollTop = chatList.scrollHeight;
        if (meeting.settings.enable_chat) chatInput.focus();
      }
    } else {
      button.focus();
    }
  }

  function setConnection(/** @type {string} */ state, /** @type {string} */ text) {
    connection.dataset.state = state;
    connection.textContent = text;
  }

  // --- speaking detection --------------------------------------------------------------
  /** @type {Map<string, {energy: number, duration: number}>} receiver track id → last totals */
  const audioTotals = new Map();

  /**
   * Loudness of each received audio track since the last poll, from the decoder's running
   * energy totals: a short sound between two polls still counts (the RTP level extension
   * only tells the level of the latest packet).
   * @returns {Promise<Map<string, number>>} receiver track id → RMS level (0..1)
   */
  async function levelsSinceLastPoll() {
    /** @type {Map<string, number>} */
    const levels = new Map();
    if (!session.pc) return levels;
    const stats = await session.pc.getStats();
    stats.forEach((r) => {
      if (r.type !== "inbound-rtp" || r.kind !== "audio" || typeof r.trackIdentifier !== "string") return;
      const energy = r.totalAudioEnergy;
      const duration = r.totalSamplesDuration;
      if (typeof energy !== "number" || typeof duration !== "number") return;
      const last = audioTotals.get(r.trackIdentifier);
      audioTotals.set(r.trackIdentifier, { energy, duration });
      if (last && duration > last.duration && energy >= last.energy) {
        levels.set(r.trackIdentifier, Math.sqrt((energy - last.energy) / (duration - last.duration)));
      }
    });
    return levels;
  }

  async function pollLevels() {
    const now = performance.now();
    if (selfMeter && session.media.microphone && selfMeter.level() > 0.08) lastSpoke.set("self", now);
    const decoded = await levelsSinceLastPoll();
    for (const slot of session.slots) {
      if (slot.kind !== "audio" || !slot.participant_id) continue;
      const transceiver = session.transceiverFor(slot.mid);
      if (!transceiver) continue;
      let level = decoded.get(transceiver.receiver.track.id) || 0;
      for (const s of transceiver.receiver.getSynchronizationSources()) {
        if (typeof s.audioLevel === "number" && now - s.timestamp < 1000) level = Math.max(level, s.audioLevel);
      }
      if (level > SPEAKING_LEVEL) lastSpoke.set(slot.participant_id, now);
    }
    render();
  }

  // --- actions -------------------------------------------------------------------------
  micButton.addEventListener("click", async () => {
    let track = session.localTracks.microphone;
    if (!track) {
      const opened = await openDevices({ camera: false, microphone: true });
      if (!opened.microphone) return mediaProblem(describeStatus("microphone", opened.microphoneStatus));
      track = opened.microphone;
      await session.publish("microphone", track);
      session.sendMediaState({ microphone: true });
      startSelfMeter();
    } else {
      track.enabled = !session.media.microphone;
      session.sendMediaState({ microphone: track.enabled });
    }
    announce(session.media.microphone ? "Your microphone is on." : "Your microphone is muted.");
    render();
  });

  camButton.addEventListener("click", async () => {
    let track = session.localTracks.camera;
    if (!track) {
      const opened = await openDevices({ camera: true, microphone: false });
      if (!opened.camera) return mediaProblem(describeStatus("camera", opened.cameraStatus));
      track = opened.camera;
      await session.publish("camera", track);
      session.sendMediaState({ camera: true });
    } else {
      track.enabled = !session.media.camera;
      session.sendMediaState({ camera: track.enabled });
    }
    announce(session.media.camera ? "Your camera is on." : "Your camera is off.");
    render();
  });

  screenButton.addEventListener("click", async () => {
    if (session.localTracks.screen) {
      await stopScreen();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = stream.getVideoTracks()[0];
      screenTrack = track;
      // The browser's own "Stop sharing" button ends the track.
      track.addEventListener("ended", () => { if (screenTrack === track) stopScreen(); });
      await session.publish("screen", track);
      session.sendMediaState({ screen: true });
      announce("You are sharing your screen.");
    } catch (error) {
      const name = error instanceof Error ? error.name : "";
      if (name !== "NotAllowedError") mediaProblem("Your screen could not be shared.");
    }
    render();
  });

  async function stopScreen() {
    screenTrack = null;
    await session.unpublish("screen");
    session.sendMediaState({ screen: false });
    announce("You stopped sharing your screen.");
    render();
  }

  /** @param {string} text */
  function mediaProblem(text) {
    mediaMessage.textContent = text;
    mediaMessage.hidden = false;
    setTimeout(() => { mediaMessage.hidden = true; }, 8000);
  }

  chatButton.addEventListener("click", () => togglePanel("chat"));
  peopleButton.addEventListener("click", () => togglePanel("people"));
  chatForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = chatInput.value.trim();
    if (!text) return;
    chatError.textContent = "";
    chatInput.value = "";
    try {
      await session.sendChat(text);
    } catch (error) {
      chatInput.value = text;
      chatError.textContent = messageOf(error);
    }
  });
  el.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !(chatPanel.hidden && peoplePanel.hidden)) {
      togglePanel(chatPanel.hidden ? "people" : "chat", false);
    }
  });

  recordButton.addEventListener("click", async () => {
    recordButton.disabled = true;
    try {
      if (session.recording.active) await session.stopRecording();
      else await session.startRecording();
    } catch (error) {
      mediaProblem(`Recording: ${messageOf(error)}`);
    } finally {
      recordButton.disabled = false;
      render();
    }
  });

  leaveButton.addEventListener("click", () => {
    session.leave();
  });
  endButton.addEventListener("click", async () => {
    if (await confirmDialog("End the meeting for everyone?", "End meeting")) session.endMeeting();
  });

  // --- session events ------------------------------------------------------------------
  session.addEventListener("welcome", () => {
    renderChatHistory();
    render();
  });
  session.addEventListener("tracks", render);
  session.addEventListener("participants", render);
  session.addEventListener("recording", (e) => {
    const { recording } = /** @type {CustomEvent} */ (e).detail;
    const who = recording.by ? recording.by.display_name : "The server";
    announce(recording.active ? `${who} started recording this meeting.` : `Recording stopped${recording.reason ? ` (${recording.reason})` : ""}.`);
    render();
  });
  session.addEventListener("participant-joined", (e) => announce(`${/** @type {CustomEvent} */ (e).detail.event.participant.display_name} joined.`));
  session.addEventListener("participant-left", (e) => {
    const pid = /** @type {CustomEvent} */ (e).detail.event.participant_id;
    const tile = tiles.get(`${pid}:camera`);
    announce(`${tile ? tile.name.textContent : "Someone"} left.`);
  });
  session.addEventListener("chat", (e) => {
    const message = /** @type {CustomEvent} */ (e).detail.message;
    const mine = !!message.author && !!session.welcome && message.author.user_id === session.welcome.you.user_id;
    chatList.append(chatItem(message, mine));
    chatList.scrollTop = chatList.scrollHeight;
    if (chatPanel.hidden && !mine) {
      unread++;
      unreadBadge.textContent = String(unread);
      unreadBadge.hidden = false;
      chatButton.setAttribute("aria-label", `Chat, ${unread} unread`);
    } else {
      chatButton.removeAttribute("aria-label");
    }
  });
  session.addEventListener("error", (e) => {
    const event = /** @type {CustomEvent} */ (e).detail.event;
    if (event.code === "chat-disabled" || event.code === "chat-too-long") chatError.textContent = event.message;
  });
  session.addEventListener("media-connection", (e) => {
    const state = /** @type {CustomEvent} */ (e).detail.state;
    if (session.state !== "connected") return;
    if (state === "connected") setConnection("connected", "Connected");
    else if (state === "disconnected") setConnection("unstable", "Media connection unstable…");
    else if (state === "connecting" || state === "new") setConnection("connecting", "Connecting media…");
  });
  session.addEventListener("state", (e) => {
    const { state } = /** @type {CustomEvent} */ (e).detail;
    if (state === "connected") setConnection(session.pc && session.pc.connectionState === "connected" ? "connected" : "connecting", session.pc && session.pc.connectionState === "connected" ? "Connected" : "Connecting media…");
    if (state === "reconnecting") {
      setConnection("reconnecting", "Reconnecting…");
      announce("The connection dropped. Reconnecting…");
    }
  });
  session.addEventListener("reconnected", () => {
    announce("Reconnected: you are back in the meeting.");
    if (session.localTracks.screen && !session.media.screen) session.sendMediaState({ screen: true });
  });
  session.addEventListener("closed", (e) => {
    const { code, reason, ended } = /** @type {CustomEvent} */ (e).detail;
    dispose(true);
    showRoomClosed({ code, reason, ended, endedReason: session._ended && session._ended !== "meeting-ended" ? session._ended : undefined }, { roomId, title: meeting.title });
  });

  function startSelfMeter() {
    selfMeter?.stop();
    selfMeter = null;
    const track = session.localTracks.microphone;
    if (track) {
      try { selfMeter = new LevelMeter(track); } catch { selfMeter = null; }
    }
  }

  /** @param {boolean} stopMedia stop the camera and microphone (not when the pre-join page keeps them) */
  function dispose(stopMedia) {
    if (disposed) return;
    disposed = true;
    clearInterval(timer);
    clearTimeout(announceTimer);
    selfMeter?.stop();
    if (session.state !== "closed" && session.state !== "idle") session.leave();
    if (stopMedia) {
      for (const track of Object.values(session.localTracks)) track?.stop();
      screenTrack?.stop();
    }
    for (const audio of audios.values()) audio.srcObject = null;
    for (const tile of tiles.values()) tile.video.srcObject = null;
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
    startSelfMeter();
    renderChatHistory();
    render();
    timer = window.setInterval(() => { pollLevels().catch(() => {}); }, 300);
    setConnection("connecting", "Connecting media…");
    if (session.pc && session.pc.connectionState === "connected") setConnection("connected", "Connected");
  }

  return { el, start, dispose };
}
