// The meeting controls for your own media and the meeting: microphone, camera, screen share,
// raise / lower your hand, record (host or moderator, when the meeting allows it), leave, and
// end for everyone (host, moderators, admins). The Chat, People and Waiting buttons belong to
// their panels (chat.js, people.js, admission.js).
//
// A moderator's `muted` turns your sources off through the same functions as these buttons
// (`stoppedByModerator`), so what you send and what you announce stay the same; while the
// server holds a source (`session.mayTurnOn`), its button cannot turn it on.

import { icon } from "../icons.js";
import { describeStatus, openDevices } from "../media.js";
import { confirmDialog, h, messageOf } from "../widgets.js";

/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */

/** @param {string} testid @param {string} [className] */
function controlButton(testid, className = "control") {
  return h("button", { type: "button", class: className, "data-testid": testid, "aria-pressed": "false" });
}

/**
 * A toggle's look: pressed or not, icon, visible label, accessible name.
 * @param {HTMLButtonElement} button @param {boolean} on @param {import("../icons.js").IconName} iconName
 * @param {string} label @param {string} accessible @param {boolean} offLook red while not pressed (microphone, camera)
 */
function setControl(button, on, iconName, label, accessible, offLook) {
  button.setAttribute("aria-pressed", String(on));
  button.setAttribute("aria-label", accessible);
  button.classList.toggle("off", !on && offLook);
  button.replaceChildren(icon(iconName), h("span", { class: "label" }, label));
}

/**
 * @param {object} options
 * @param {MeetingSession} options.session
 * @param {(text: string) => void} options.announce say what changed
 * @param {(text: string) => void} options.problem say what could not be done
 * @param {() => void} options.changed something changed: show the room again
 * @param {() => void} options.microphoneOpened the microphone was opened here (the room had none)
 * @param {() => boolean} [options.admin] the person is an administrator (may end any meeting)
 */
export function createControls({ session, announce, problem, changed, microphoneOpened, admin = () => false }) {
  const mic = controlButton("toggle-mic");
  const camera = controlButton("toggle-camera");
  const screen = controlButton("toggle-screen");
  const record = controlButton("toggle-recording");
  record.hidden = true;
  const hand = controlButton("toggle-hand");
  const leave = h("button", { type: "button", class: "control danger", "data-testid": "leave" },
    icon("leave"), h("span", { class: "label" }, "Leave"));
  const end = h("button", { type: "button", class: "control danger", "data-testid": "end-meeting", hidden: true },
    icon("end"), h("span", { class: "label" }, "End for everyone"));
  /** @type {MediaStreamTrack | null} the screen being shared from here */
  let screenTrack = null;

  /** Show each control as the session is. */
  function render() {
    const micOn = !!session.localTracks.microphone && session.media.microphone;
    const camOn = !!session.localTracks.camera && session.media.camera;
    const sharing = !!session.localTracks.screen;
    setControl(mic, micOn, micOn ? "mic" : "micOff", micOn ? "Mute" : "Unmute", micOn ? "Mute microphone" : "Unmute microphone", true);
    setControl(camera, camOn, camOn ? "camera" : "cameraOff", camOn ? "Stop video" : "Start video", camOn ? "Turn camera off" : "Turn camera on", true);
    setControl(screen, sharing, "screen", sharing ? "Stop sharing" : "Share screen", sharing ? "Stop sharing your screen" : "Share your screen", false);
    screen.hidden = !(navigator.mediaDevices && "getDisplayMedia" in navigator.mediaDevices);
    // Held by a moderator: the button cannot turn it on (the server would refuse).
    holdLook(mic, !micOn && !session.mayTurnOn("microphone"));
    holdLook(camera, !camOn && !session.mayTurnOn("camera"));
    holdLook(screen, !sharing && !session.mayTurnOn("screen"));
    const raised = !!session.handRaisedAt;
    setControl(hand, raised, "hand", raised ? "Lower hand" : "Raise hand", raised ? "Lower your hand" : "Raise your hand", false);
    const role = session.role;
    end.hidden = !(role === "host" || role === "moderator" || admin());
    record.hidden = !(!!session.welcome && session.welcome.meeting.settings.enable_recording && (role === "host" || role === "moderator" || admin()));
    const recording = session.recording.active;
    setControl(record, recording, "record", recording ? "Stop recording" : "Record", recording ? "Stop recording" : "Start recording", false);
  }

  /**
   * Turn the microphone on or off: the track is enabled or disabled (it stays published) and
   * the new state announced. Turning it on opens a microphone when there is none yet.
   * @param {boolean} on
   */
  async function setMicrophone(on) {
    const track = session.localTracks.microphone;
    if (!track) {
      if (!on) {
        if (session.media.microphone) session.sendMediaState({ microphone: false });
        return;
      }
      const opened = await openDevices({ camera: false, microphone: true });
      if (!opened.microphone) return problem(describeStatus("microphone", opened.microphoneStatus));
      await session.publish("microphone", opened.microphone);
      session.sendMediaState({ microphone: true });
      microphoneOpened();
    } else {
      track.enabled = on;
      session.sendMediaState({ microphone: on });
    }
  }

  /** The camera on or off, as `setMicrophone`. @param {boolean} on */
  async function setCamera(on) {
    const track = session.localTracks.camera;
    if (!track) {
      if (!on) {
        if (session.media.camera) session.sendMediaState({ camera: false });
        return;
      }
      const opened = await openDevices({ camera: true, microphone: false });
      if (!opened.camera) return problem(describeStatus("camera", opened.cameraStatus));
      await session.publish("camera", opened.camera);
      session.sendMediaState({ camera: true });
    } else {
      track.enabled = on;
      session.sendMediaState({ camera: on });
    }
  }

  mic.addEventListener("click", async () => {
    const on = !(!!session.localTracks.microphone && session.media.microphone);
    if (on && !session.mayTurnOn("microphone")) return problem(HELD);
    await setMicrophone(on);
    announce(session.media.microphone ? "Your microphone is on." : "Your microphone is muted.");
    changed();
  });

  camera.addEventListener("click", async () => {
    const on = !(!!session.localTracks.camera && session.media.camera);
    if (on && !session.mayTurnOn("camera")) return problem(HELD);
    await setCamera(on);
    announce(session.media.camera ? "Your camera is on." : "Your camera is off.");
    changed();
  });

  hand.addEventListener("click", () => {
    // The `hand` broadcast (to everybody, us too) changes the button.
    if (!session.hand(!session.handRaisedAt)) problem("Not connected: your hand could not be raised.");
  });

  screen.addEventListener("click", async () => {
    if (session.localTracks.screen) {
      await stopScreen();
      return;
    }
    if (!session.mayTurnOn("screen")) return problem(HELD);
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
      if (name !== "NotAllowedError") problem("Your screen could not be shared.");
    }
    changed();
  });

  /** @param {boolean} [quiet] say nothing (a moderator stopped it: the room says so) */
  async function stopScreen(quiet = false) {
    screenTrack = null;
    await session.unpublish("screen");
    session.sendMediaState({ screen: false });
    if (!quiet) announce("You stopped sharing your screen.");
    changed();
  }

  /**
   * A moderator stopped these sources (`muted`), or they were stopped before a reconnection
   * (`welcome.you.held`): turn them off here the way their buttons do.
   * @param {import("../protocol.js").Source[]} sources
   */
  async function stoppedByModerator(sources) {
    for (const source of sources) {
      if (source === "microphone") await setMicrophone(false);
      else if (source === "camera") await setCamera(false);
      else if (source === "screen" && session.localTracks.screen) await stopScreen(true);
    }
    changed();
  }

  record.addEventListener("click", async () => {
    record.disabled = true;
    try {
      if (session.recording.active) await session.stopRecording();
      else await session.startRecording();
    } catch (error) {
      problem(`Recording: ${messageOf(error)}`);
    } finally {
      record.disabled = false;
      changed();
    }
  });

  leave.addEventListener("click", () => {
    session.leave();
  });
  end.addEventListener("click", async () => {
    if (await confirmDialog("End the meeting for everyone?", "End meeting")) session.endMeeting();
  });

  /** @param {boolean} stopMedia stop the shared screen too */
  function dispose(stopMedia) {
    if (stopMedia) screenTrack?.stop();
  }

  return { mic, camera, screen, hand, record, leave, end, render, stoppedByModerator, dispose };
}

const HELD = "A moderator turned this off: you can turn it on again when a moderator allows it.";

/**
 * A control that a moderator's hold keeps off: disabled, and says why.
 * @param {HTMLButtonElement} button @param {boolean} held
 */
function holdLook(button, held) {
  button.disabled = held;
  button.dataset.held = String(held);
  if (held) button.title = "A moderator turned this off";
  else button.removeAttribute("title");
}
