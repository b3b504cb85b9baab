// /m/{room_id}: the pre-join check (preview, level meter, devices, start muted), then — in a
// meeting with a waiting room, for everyone but its host, moderators and admins — the waiting
// screen until a moderator lets the person in (or refuses), then the room.

import { appHeader } from "../account.js";
import { api, ApiError } from "../api.js";
import { describeStatus, listDevices, openDevices, openLevelMeter } from "../media.js";
import { goToSignIn, onLeavePage, SESSION_EXPIRED } from "../nav.js";
import { enterRoom } from "../room/index.js";
import { focusHeading, h, messageOf, pageTitle, root } from "../widgets.js";
import { showMeetingEnded, showOutcome, showRefusal, showRoomClosed } from "./outcome.js";

/** @typedef {import("../api.js").Meeting} Meeting */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {import("../protocol.js").Waiting} Waiting */

/** The waiting screen's status line for each state. */
export const WAITING_WORDS = {
  host: ["The host has been told you are here.", "You will join as soon as they let you in."],
  noHost: ["Waiting for the host to let you in.", "Nobody who can let you in is in the meeting yet: they will see you are waiting as soon as they join."],
  reconnecting: ["The connection dropped. Reconnecting…", "You keep your place: the host will still see you waiting."],
};

/**
 * The waiting screen: the meeting's title, a live status (the host is there and knows, or
 * nobody who can admit is inside yet, or reconnecting), "this meeting may be recorded", and
 * Leave. Shown while the server holds the person in the waiting room; the room replaces it
 * on the welcome (same socket).
 * @param {import("../api.js").User} me
 * @param {() => void} onLeave
 */
function createWaitingScreen(me, onLeave) {
  const heading = h("h1", { "data-testid": "waiting-title" });
  const status = h("p", { class: "waiting-status", role: "status", "aria-live": "polite", "data-testid": "waiting-status" });
  const hint = h("p", { class: "muted", "data-testid": "waiting-hint" });
  const recorded = h("p", { class: "warning", "data-testid": "may-be-recorded", hidden: true }, "This meeting may be recorded.");
  const leave = h("button", { type: "button", class: "danger", "data-testid": "waiting-leave", onclick: onLeave }, "Leave");
  const page = h("div", { class: "page", "data-testid": "waiting-room" },
    appHeader(me),
    h("section", { class: "narrow waiting card stack", "aria-labelledby": "waiting-heading" },
      h("p", { class: "muted eyebrow" }, "Waiting room"),
      heading,
      h("div", { class: "waiting-dots", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
      status, hint, recorded,
      h("div", { class: "row" }, leave)));
  heading.id = "waiting-heading";
  /** @type {Waiting | null} */
  let last = null;

  /** @param {keyof typeof WAITING_WORDS} which */
  function say(which) {
    const [line, more] = WAITING_WORDS[which];
    if (status.textContent !== line) status.textContent = line;
    hint.textContent = more;
    status.dataset.state = which;
  }

  /** The server's `waiting` (again when `host_present` changes). @param {Waiting} waiting */
  function update(waiting) {
    last = waiting;
    heading.textContent = waiting.meeting.title;
    recorded.hidden = !waiting.may_be_recorded;
    say(waiting.host_present ? "host" : "noHost");
  }

  /** The session's connection state while waiting. @param {string} state */
  function connection(state) {
    if (state === "reconnecting") say("reconnecting");
    else if (state === "waiting" && last) update(last);
  }

  return { page, update, connection };
}

/** @param {string} roomId */
export async function showMeeting(roomId) {
  pageTitle("Join meeting");
  root().replaceChildren(h("p", { class: "narrow", role: "status" }, "Loading the meeting…"));
  /** @type {Meeting} */
  let meeting;
  /** @type {import("../api.js").User} */
  let me;
  try {
    [me, meeting] = await Promise.all([api("/api/me"), api(`/api/meetings/${encodeURIComponent(roomId)}`)]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // handled: back to sign-in
    if (error instanceof ApiError && error.status === 404) {
      showOutcome("meeting-not-found", "Meeting not found", "There is no meeting at this link. Check the link you were given, or ask the host for a new one.");
    } else {
      showOutcome("meeting-error", "Cannot open the meeting", messageOf(error));
    }
    return;
  }
  if (meeting.status === "ended") {
    showMeetingEnded(meeting.title);
    return;
  }
  showPreJoin(roomId, meeting, me);
}

/**
 * @param {string} roomId
 * @param {Meeting} meeting
 * @param {import("../api.js").User} me
 */
function showPreJoin(roomId, meeting, me) {
  pageTitle(`Join ${meeting.title}`);
  /** @type {MediaStreamTrack | null} */
  let camera = null;
  /** @type {MediaStreamTrack | null} */
  let microphone = null;
  /** @type {import("../media.js").LevelMeter | null} */
  let meter = null;
  let meterTimer = 0;
  let handedOver = false;
  /** @type {{session: MeetingSession, screen: ReturnType<typeof createWaitingScreen>} | null} */
  let waiting = null;

  const video = h("video", { autoplay: true, muted: true, playsInline: true, class: "mirror", "data-testid": "preview-video", "aria-label": "Camera preview" });
  const noVideo = h("div", { class: "no-video", "data-testid": "preview-off" }, "Camera off");
  const level = h("meter", { min: 0, max: 1, value: 0, low: 0.1, high: 0.8, optimum: 0.5, id: "mic-level", "data-testid": "mic-level" });
  const cameraSelect = h("select", { id: "camera-select", "data-testid": "camera-select" });
  const micSelect = h("select", { id: "mic-select", "data-testid": "mic-select" });
  const startMuted = h("input", { type: "checkbox", id: "start-muted", "data-testid": "start-muted" });
  const startCameraOff = h("input", { type: "checkbox", id: "start-camera-off", "data-testid": "start-camera-off" });
  const cameraMessage = h("p", { class: "warning", "data-testid": "camera-message", role: "status" });
  const micMessage = h("p", { class: "warning", "data-testid": "mic-message", role: "status" });
  const joinError = h("p", { class: "error", role: "alert", "data-testid": "join-error" });
  const joinButton = h("button", { type: "button", class: "primary big", "data-testid": "join-button", disabled: true }, "Checking devices…");

  function stopMeter() {
    clearInterval(meterTimer);
    meter?.stop();
    meter = null;
  }

  /** Show the microphone's level (without Web Audio there is no meter). */
  function startMeter() {
    stopMeter();
    const m = microphone && openLevelMeter(microphone);
    if (!m) return;
    meter = m;
    meterTimer = window.setInterval(() => { level.value = m.level(); }, 120);
  }

  const stopPreview = () => {
    stopMeter();
    if (!handedOver) {
      camera?.stop();
      microphone?.stop();
    }
  };
  onLeavePage(stopPreview);

  /** Open (or re-open) the chosen devices and refresh the preview. */
  async function openChosen() {
    stopMeter();
    camera?.stop();
    microphone?.stop();
    const opened = await openDevices({ cameraId: cameraSelect.value || undefined, microphoneId: micSelect.value || undefined });
    camera = opened.camera;
    microphone = opened.microphone;
    cameraMessage.textContent = describeStatus("camera", opened.cameraStatus);
    micMessage.textContent = describeStatus("microphone", opened.microphoneStatus);
    cameraMessage.hidden = !cameraMessage.textContent;
    micMessage.hidden = !micMessage.textContent;
    video.srcObject = camera ? new MediaStream([camera]) : null;
    showPreviewState();
    startMeter();
    const { cameras, microphones } = await listDevices();
    fillSelect(cameraSelect, cameras, camera, "camera");
    fillSelect(micSelect, microphones, microphone, "microphone");
    if (joinButton.textContent === "Checking devices…") {
      joinButton.disabled = false;
      joinButton.textContent = "Join meeting";
    }
  }

  function showPreviewState() {
    const on = !!camera && !startCameraOff.checked;
    video.hidden = !on;
    noVideo.hidden = on;
    noVideo.textContent = camera ? "Camera off" : "No camera";
  }

  /**
   * @param {HTMLSelectElement} select
   * @param {MediaDeviceInfo[]} devices
   * @param {MediaStreamTrack | null} current
   * @param {string} what
   */
  function fillSelect(select, devices, current, what) {
    const currentId = current ? current.getSettings().deviceId : "";
    select.replaceChildren(...devices.map((d, i) => h("option", { value: d.deviceId, selected: d.deviceId === currentId }, d.label || `${what} ${i + 1}`)));
    if (!devices.length) select.append(h("option", { value: "" }, `No ${what}`));
    select.disabled = devices.length < 2;
  }

  cameraSelect.addEventListener("change", openChosen);
  micSelect.addEventListener("change", openChosen);
  startCameraOff.addEventListener("change", showPreviewState);

  joinButton.addEventListener("click", async () => {
    joinError.textContent = "";
    joinButton.disabled = true;
    joinButton.textContent = "Joining…";
    stopMeter();
    if (camera) camera.enabled = !startCameraOff.checked;
    if (microphone) microphone.enabled = !startMuted.checked;
    try {
      handedOver = true;
      await enterRoom({
        roomId, meeting, me,
        camera, microphone,
        microphoneOn: !!microphone && !startMuted.checked,
        cameraOn: !!camera && !startCameraOff.checked,
        onRefused: (code, message, details) => {
          handedOver = false;
          refused(code, message, details);
        },
        onClosed: (closed) => showRoomClosed(closed, { roomId, title: meeting.title }),
        onWaiting: showWaiting,
      });
    } catch (error) {
      handedOver = false;
      joinError.textContent = messageOf(error);
      joinButton.disabled = false;
      joinButton.textContent = "Join meeting";
    }
  });

  /**
   * Held in the waiting room: show (or update) the waiting screen.
   * @param {Waiting} event
   * @param {MeetingSession} session
   */
  function showWaiting(event, session) {
    if (!waiting || waiting.session !== session) {
      const screen = createWaitingScreen(me, () => session.leave());
      waiting = { session, screen };
      session.addEventListener("state", (e) => screen.connection(/** @type {CustomEvent} */ (e).detail.state));
    }
    const { screen } = waiting;
    screen.update(event);
    if (!screen.page.isConnected) {
      pageTitle(`Waiting to join ${event.meeting.title}`);
      root().replaceChildren(screen.page);
      focusHeading(screen.page);
    }
  }

  /**
   * The server refused the join.
   * @param {string} code @param {string} message
   * @param {{retryAfter?: number | null}} [details]
   */
  function refused(code, message, details = {}) {
    if (code === "denied" || code === "denied-recently" || code === "meeting-locked" || code === "barred") {
      stopPreview();
      showRefusal(code, { roomId, title: meeting.title, retryAfter: details.retryAfter });
      return;
    }
    if (code === "meeting-ended") {
      stopPreview();
      showMeetingEnded(meeting.title);
      return;
    }
    if (code === "meeting-not-found") {
      stopPreview();
      showOutcome("meeting-not-found", "Meeting not found", "This meeting no longer exists.");
      return;
    }
    if (["missing-token", "invalid-token", "token-expired"].includes(code)) {
      stopPreview();
      goToSignIn(SESSION_EXPIRED);
      return;
    }
    // Back on the pre-join page with the reason (e.g. full): the person may try again.
    onLeavePage(stopPreview);
    pageTitle(`Join ${meeting.title}`);
    root().replaceChildren(page);
    joinError.textContent = code === "meeting-full"
      ? `This meeting is full: it allows ${meeting.settings.max_participants} people and they are all inside. Try again when someone leaves.`
      : code === "waiting-room-full"
        ? "Too many people are waiting to join this meeting. Try again in a little while."
        : message;
    joinButton.disabled = false;
    joinButton.textContent = "Try again";
    if (microphone) microphone.enabled = true;
    if (camera) camera.enabled = true;
    startMeter();
  }

  const page = h("div", { class: "page", "data-testid": "prejoin" },
    appHeader(me),
    h("h1", {}, meeting.title),
    h("p", { class: "muted" }, `Hosted by ${meeting.host.display_name}. Check your camera and microphone, then join.`),
    h("div", { class: "prejoin" },
      h("div", { class: "preview tile" }, video, noVideo),
      h("div", { class: "card stack" },
        h("div", { class: "field" }, h("label", { for: "camera-select" }, "Camera"), cameraSelect),
        cameraMessage,
        h("div", { class: "field" }, h("label", { for: "mic-select" }, "Microphone"), micSelect),
        h("div", { class: "field" }, h("label", { for: "mic-level" }, "Microphone level"), level),
        micMessage,
        h("label", { class: "check", for: "start-muted" }, startMuted, " Start with my microphone muted"),
        h("label", { class: "check", for: "start-camera-off" }, startCameraOff, " Start with my camera off"),
        joinButton,
        joinError)));
  root().replaceChildren(page);
  focusHeading(page);
  openChosen();
}
