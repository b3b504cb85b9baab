// The meeting controls for your own media and the meeting: microphone, camera, screen share,
// record (host or moderator, when the meeting allows it), leave, and end for everyone (host).
// The Chat and People buttons belong to their panels (chat.js, people.js); a "raise hand"
// button would come here.

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
 */
export function createControls({ session, announce, problem, changed, microphoneOpened }) {
  const mic = controlButton("toggle-mic");
  const camera = controlButton("toggle-camera");
  const screen = controlButton("toggle-screen");
  const record = controlButton("toggle-recording");
  record.hidden = true;
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
    end.hidden = !session.isHost;
    const role = session.welcome ? session.welcome.you.role : "participant";
    record.hidden = !(!!session.welcome && session.welcome.meeting.settings.enable_recording && (role === "host" || role === "moderator"));
    const recording = session.recording.active;
    setControl(record, recording, "record", recording ? "Stop recording" : "Record", recording ? "Stop recording" : "Start recording", false);
  }

  mic.addEventListener("click", async () => {
    const track = session.localTracks.microphone;
    if (!track) {
      const opened = await openDevices({ camera: false, microphone: true });
      if (!opened.microphone) return problem(describeStatus("microphone", opened.microphoneStatus));
      await session.publish("microphone", opened.microphone);
      session.sendMediaState({ microphone: true });
      microphoneOpened();
    } else {
      track.enabled = !session.media.microphone;
      session.sendMediaState({ microphone: track.enabled });
    }
    announce(session.media.microphone ? "Your microphone is on." : "Your microphone is muted.");
    changed();
  });

  camera.addEventListener("click", async () => {
    const track = session.localTracks.camera;
    if (!track) {
      const opened = await openDevices({ camera: true, microphone: false });
      if (!opened.camera) return problem(describeStatus("camera", opened.cameraStatus));
      await session.publish("camera", opened.camera);
      session.sendMediaState({ camera: true });
    } else {
      track.enabled = !session.media.camera;
      session.sendMediaState({ camera: track.enabled });
    }
    announce(session.media.camera ? "Your camera is on." : "Your camera is off.");
    changed();
  });

  screen.addEventListener("click", async () => {
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
      if (name !== "NotAllowedError") problem("Your screen could not be shared.");
    }
    changed();
  });

  async function stopScreen() {
    screenTrack = null;
    await session.unpublish("screen");
    session.sendMediaState({ screen: false });
    announce("You stopped sharing your screen.");
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

  return { mic, camera, screen, record, leave, end, render, dispose };
}
