// Local media: cameras and microphones, with the reasons they may be unavailable, and a
// microphone level meter.

/** @typedef {"ok" | "refused" | "missing" | "busy" | "error" | "off"} DeviceStatus */

/**
 * Why getUserMedia failed, in words a person can act on.
 * @param {unknown} error
 * @returns {DeviceStatus}
 */
export function classify(error) {
  const name = error instanceof DOMException || error instanceof Error ? error.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") return "refused";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "missing";
  if (name === "NotReadableError" || name === "AbortError") return "busy";
  return "error";
}

/** @param {"camera" | "microphone"} what @param {DeviceStatus} status */
export function describeStatus(what, status) {
  switch (status) {
    case "refused": return `Access to your ${what} was refused. You can still join; allow it in the browser's site settings to use it.`;
    case "missing": return `No ${what} was found. You can still join without one.`;
    case "busy": return `Your ${what} is in use by another application or could not be started.`;
    case "error": return `Your ${what} could not be started.`;
    default: return "";
  }
}

export const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };

/**
 * Open the camera and the microphone, each on its own so one refusal keeps the other.
 * @param {{cameraId?: string, microphoneId?: string, camera?: boolean, microphone?: boolean}} choice
 * @returns {Promise<{camera: MediaStreamTrack | null, microphone: MediaStreamTrack | null, cameraStatus: DeviceStatus, microphoneStatus: DeviceStatus}>}
 */
export async function openDevices({ cameraId, microphoneId, camera = true, microphone = true }) {
  const devices = navigator.mediaDevices;
  /** @type {{camera: MediaStreamTrack | null, microphone: MediaStreamTrack | null, cameraStatus: DeviceStatus, microphoneStatus: DeviceStatus}} */
  const result = { camera: null, microphone: null, cameraStatus: camera ? "ok" : "off", microphoneStatus: microphone ? "ok" : "off" };
  if (!devices || !devices.getUserMedia) {
    result.cameraStatus = result.microphoneStatus = "missing";
    return result;
  }
  const [video, audio] = await Promise.allSettled([
    camera ? devices.getUserMedia({ video: { ...VIDEO_CONSTRAINTS, ...(cameraId ? { deviceId: { exact: cameraId } } : {}) } }) : Promise.resolve(null),
    microphone ? devices.getUserMedia({ audio: microphoneId ? { deviceId: { exact: microphoneId } } : true }) : Promise.resolve(null),
  ]);
  if (video.status === "fulfilled") result.camera = video.value ? video.value.getVideoTracks()[0] || null : null;
  else result.cameraStatus = classify(video.reason);
  if (audio.status === "fulfilled") result.microphone = audio.value ? audio.value.getAudioTracks()[0] || null : null;
  else result.microphoneStatus = classify(audio.reason);
  return result;
}

/** @returns {Promise<{cameras: MediaDeviceInfo[], microphones: MediaDeviceInfo[]}>} */
export async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { cameras: [], microphones: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === "videoinput" && d.deviceId),
    microphones: all.filter((d) => d.kind === "audioinput" && d.deviceId),
  };
}

/** Microphone level (0..1, RMS) of a track; `stop()` releases it. */
export class LevelMeter {
  /** @param {MediaStreamTrack} track */
  constructor(track) {
    const Context = window.AudioContext;
    this.context = new Context();
    this.source = this.context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 512;
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
  }

  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    return Math.min(1, Math.sqrt(sum / this.samples.length) * 4);
  }

  stop() {
    this.source.disconnect();
    this.context.close().catch(() => {});
  }
}

/** A level meter on the track, or null where Web Audio is missing or refuses it. @param {MediaStreamTrack} track */
export function openLevelMeter(track) {
  try {
    return new LevelMeter(track);
  } catch {
    return null;
  }
}
