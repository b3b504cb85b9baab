// Who is speaking. For now the page guesses from levels: at every poll (POLL_MS), for each
// received microphone, the louder of the RMS level decoded since the last poll (getStats()
// inbound-rtp `totalAudioEnergy` / `totalSamplesDuration`, so a short sound between two polls
// counts) and the RTP audio level of the latest packet (`getSynchronizationSources()`); for
// me, the local microphone's level meter. Someone counts as speaking for SPEAKING_HOLD_MS
// after a level above SPEAKING_LEVEL. The server's active-speaker events will replace the
// guess: they would call `heard(participantId)` instead of `poll()` doing it.

import { openLevelMeter } from "../media.js";

/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */
/** @typedef {{energy: number, duration: number}} AudioTotals a decoder's running totals */

export const POLL_MS = 300;
export const SPEAKING_LEVEL = 0.02; // received level (0..1, linear) above which someone speaks
export const SELF_SPEAKING_LEVEL = 0.08; // the same for the local level meter
export const SPEAKING_HOLD_MS = 900;

/**
 * The RMS level between two readings of a decoder's totals (null: nothing new to measure).
 * @param {AudioTotals | undefined} last
 * @param {AudioTotals} now
 */
export function levelBetween(last, now) {
  if (!last || now.duration <= last.duration || now.energy < last.energy) return null;
  return Math.sqrt((now.energy - last.energy) / (now.duration - last.duration));
}

/**
 * @param {Pick<MeetingSession, "pc" | "slots" | "transceiverFor" | "media" | "localTracks">} session
 */
export function createSpeaking(session) {
  /** @type {Map<string, number>} participant id ("self" for me) → last time heard speaking */
  const lastSpoke = new Map();
  /** @type {Map<string, AudioTotals>} receiver track id → totals at the last poll */
  const totals = new Map();
  /** @type {import("../media.js").LevelMeter | null} */
  let meter = null;

  /** (Re)open the level meter on my microphone (after joining, or after opening it in the room). */
  function listenToMicrophone() {
    meter?.stop();
    const track = session.localTracks.microphone;
    meter = track ? openLevelMeter(track) : null;
  }

  /** @param {string} pid participant id, "self" for me @param {number} [at] */
  function heard(pid, at = performance.now()) {
    lastSpoke.set(pid, at);
  }

  /** @param {string} pid participant id, "self" for me @param {number} [now] */
  function isSpeaking(pid, now = performance.now()) {
    const last = lastSpoke.get(pid);
    return last !== undefined && now - last < SPEAKING_HOLD_MS;
  }

  /**
   * Loudness of each received audio track since the last poll.
   * @returns {Promise<Map<string, number>>} receiver track id → RMS level (0..1)
   */
  async function decodedLevels() {
    /** @type {Map<string, number>} */
    const levels = new Map();
    if (!session.pc) return levels;
    const stats = await session.pc.getStats();
    stats.forEach((r) => {
      if (r.type !== "inbound-rtp" || r.kind !== "audio" || typeof r.trackIdentifier !== "string") return;
      const energy = r.totalAudioEnergy;
      const duration = r.totalSamplesDuration;
      if (typeof energy !== "number" || typeof duration !== "number") return;
      const level = levelBetween(totals.get(r.trackIdentifier), { energy, duration });
      totals.set(r.trackIdentifier, { energy, duration });
      if (level !== null) levels.set(r.trackIdentifier, level);
    });
    return levels;
  }

  /** Measure once: who spoke since the last poll. */
  async function poll() {
    const now = performance.now();
    if (meter && session.media.microphone && meter.level() > SELF_SPEAKING_LEVEL) heard("self", now);
    const decoded = await decodedLevels();
    for (const slot of session.slots) {
      if (slot.kind !== "audio" || !slot.participant_id) continue;
      const transceiver = session.transceiverFor(slot.mid);
      if (!transceiver) continue;
      let level = decoded.get(transceiver.receiver.track.id) || 0;
      for (const s of transceiver.receiver.getSynchronizationSources()) {
        if (typeof s.audioLevel === "number" && now - s.timestamp < 1000) level = Math.max(level, s.audioLevel);
      }
      if (level > SPEAKING_LEVEL) heard(slot.participant_id, now);
    }
  }

  function stop() {
    meter?.stop();
    meter = null;
  }

  return { listenToMicrophone, heard, isSpeaking, poll, stop };
}
