// Who is speaking. The server says it (`active-speaker` events and `welcome.speakers`, kept in
// `session.speakers`): its dominant speaker is the one highlighted and the one the speaker
// view puts on the stage. Until a server has sent any (an older server never does), the page
// guesses from levels: at every poll (POLL_MS), for each received microphone, the louder of
// the RMS level decoded since the last poll (getStats() inbound-rtp `totalAudioEnergy` /
// `totalSamplesDuration`, so a short sound between two polls counts) and the RTP audio level
// of the latest packet (`getSynchronizationSources()`); for me, the local microphone's level
// meter. Someone counts as speaking for SPEAKING_HOLD_MS after a level above SPEAKING_LEVEL,
// and the guessed dominant speaker is the one who spoke last, kept while they go on speaking.

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
 * @param {Pick<MeetingSession, "pc" | "slots" | "transceiverFor" | "media" | "localTracks"> & Partial<Pick<MeetingSession, "speakers" | "participantId">>} session
 */
export function createSpeaking(session) {
  /** @type {Map<string, number>} participant id ("self" for me) → last time heard speaking */
  const lastSpoke = new Map();
  /** @type {string | null} the guessed dominant speaker (participant id, "self" for me) */
  let guessed = null;
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

  /** Whether the server tells who speaks (then the guess is not used). */
  function fromServer() {
    return !!session.speakers;
  }

  /** @param {string} pid participant id, "self" for me @param {number} [now] */
  function heardRecently(pid, now = performance.now()) {
    const last = lastSpoke.get(pid);
    return last !== undefined && now - last < SPEAKING_HOLD_MS;
  }

  /**
   * Whether this person's tile is highlighted: the server's dominant speaker, or (an older
   * server) someone heard in the last SPEAKING_HOLD_MS.
   * @param {string} pid participant id, "self" for me @param {number} [now]
   */
  function isSpeaking(pid, now = performance.now()) {
    if (session.speakers) {
      const id = pid === "self" ? session.participantId : pid;
      return !!id && session.speakers.participant_id === id;
    }
    return heardRecently(pid, now);
  }

  /**
   * The dominant speaker and the recent ones (most recent first), by participant id: the
   * server's, or guessed from levels (me as `session.participantId`).
   * @param {number} [now]
   * @returns {import("../protocol.js").Speakers}
   */
  function speakers(now = performance.now()) {
    if (session.speakers) return session.speakers;
    const me = session.participantId || "self";
    const recent = [...lastSpoke.entries()].sort((a, b) => b[1] - a[1]).map(([pid]) => (pid === "self" ? me : pid));
    // The one who spoke last takes over only once the current one has stopped speaking.
    if (guessed === null || !heardRecently(guessed, now)) {
      const latest = [...lastSpoke.entries()].sort((a, b) => b[1] - a[1])[0];
      if (latest && heardRecently(latest[0], now)) guessed = latest[0];
    }
    const dominant = guessed === null ? null : guessed === "self" ? me : guessed;
    return { participant_id: dominant, recent: recent.slice(0, 8) };
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

  /** Measure once: who spoke since the last poll (nothing to do while the server says it). */
  async function poll() {
    if (fromServer()) return;
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

  /** Someone left: forget them. @param {string} pid */
  function forget(pid) {
    lastSpoke.delete(pid);
    if (guessed === pid) guessed = null;
  }

  return { listenToMicrophone, heard, isSpeaking, speakers, fromServer, poll, forget, stop };
}
