// REST API helper (docs/api.md) and the sign-in token kept in localStorage.

const TOKEN_KEY = "tertulia.token";

/** An API error: `{"error": {"code", "message"}}` with its HTTP status. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {Array<{field: string, message: string}>} [details]
   */
  constructor(status, code, message, details = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY);
}

/** @param {string | null} token */
export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** @type {(error: ApiError) => void} */
let onUnauthorized = () => {};

/** Called on every 401 from a signed-in request (the session expired). @param {(error: ApiError) => void} handler */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * @param {string} path
 * @param {{method?: string, body?: unknown, auth?: boolean}} [options]
 * @returns {Promise<any>}
 */
export async function api(path, { method = "GET", body, auth = true } = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  const token = getToken();
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network-error", "The server cannot be reached. Check your connection and try again.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : { code: "http-error", message: `HTTP ${response.status}` };
    const failure = new ApiError(response.status, error.code, error.message, error.details || []);
    // Only the session that is still current can have expired: a request that went out
    // without a token, or whose person signed out meanwhile, is not news to anyone.
    if (response.status === 401 && auth && token && getToken() === token) onUnauthorized(failure);
    throw failure;
  }
  return data;
}

/**
 * @typedef {object} Meeting
 * @property {string} room_id
 * @property {string} title
 * @property {string} description
 * @property {{id: number, display_name: string}} host
 * @property {string | null} scheduled_start
 * @property {number} duration_minutes
 * @property {{max_participants: number, require_approval: boolean, enable_recording: boolean, enable_chat: boolean}} settings
 * @property {"scheduled" | "active" | "ended"} status
 * @property {string | null} started_at
 * @property {string | null} ended_at
 * @property {string} join_url
 * @property {boolean} is_host
 */
/** @typedef {{id: number, email: string, display_name: string, role: string}} User */

/**
 * A recording in the library (docs/recording.md).
 * @typedef {object} Recording
 * @property {number} id
 * @property {{room_id: string, title: string}} meeting
 * @property {string} started_at
 * @property {string | null} stopped_at
 * @property {{id: number, display_name: string} | null} started_by
 * @property {"recording" | "processing" | "ready" | "failed" | "interrupted"} state
 * @property {string | null} failure_reason
 * @property {number} duration_seconds
 * @property {number} size_bytes all track files
 * @property {number} composed_size_bytes
 * @property {number} progress composition, 0..1
 * @property {string[]} participants
 */
/**
 * @typedef {object} RecordingTrack
 * @property {number} id
 * @property {string} participant_id
 * @property {number | null} user_id
 * @property {string} display_name
 * @property {"audio" | "video"} kind
 * @property {"microphone" | "camera" | "screen"} source
 * @property {string} codec
 * @property {number} start_offset
 * @property {number} duration_seconds
 * @property {number} size_bytes
 */
/** @typedef {Recording & {tracks: RecordingTrack[]}} RecordingDetail */
/** @typedef {{items: Recording[], total: number, limit: number, offset: number}} RecordingPage */
/** Short-lived links (`?access=`) to a recording's files. @typedef {{access: string, expires_in: number, file_url: string | null, track_urls: Record<string, string>}} RecordingAccess */
