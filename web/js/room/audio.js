// What we hear: one hidden <audio> element per receive slot that carries someone's microphone.

import { h } from "../widgets.js";

/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */

export function createAudio() {
  const el = h("div", { hidden: true });
  /** @type {Map<string, HTMLAudioElement>} by receive mid */
  const audios = new Map();

  /**
   * Play every received microphone (and stop the ones whose slot went away).
   * @param {Pick<MeetingSession, "slots" | "transceiverFor">} session
   */
  function play(session) {
    const active = new Set();
    for (const slot of session.slots) {
      if (slot.kind !== "audio" || !slot.participant_id) continue;
      const transceiver = session.transceiverFor(slot.mid);
      if (!transceiver) continue;
      active.add(slot.mid);
      let audio = audios.get(slot.mid);
      if (!audio) {
        audio = h("audio", { autoplay: true, "data-mid": slot.mid });
        audios.set(slot.mid, audio);
        el.append(audio);
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

  function dispose() {
    for (const audio of audios.values()) audio.srcObject = null;
  }

  return { el, play, dispose };
}
