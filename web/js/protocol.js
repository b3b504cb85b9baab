// Tertulia signaling protocol client (docs/protocol.md, version 1).
//
// One WebSocket and one RTCPeerConnection per participant. The client always offers; the
// server answers. This module knows nothing about the page: it emits events and keeps the
// state a UI needs (participants, receive slots, media). It has no imports so it can be
// reused and tested on its own.

export const PROTOCOL_VERSION = 1;

/** @typedef {"microphone" | "camera" | "screen"} Source */
/** @typedef {{microphone: boolean, camera: boolean, screen: boolean}} MediaFlags */
/**
 * @typedef {object} Participant
 * @property {string} participant_id
 * @property {number} user_id
 * @property {string} display_name
 * @property {string} role
 * @property {MediaFlags} media
 * @property {string | null} [hand_raised_at] when their hand went up (ISO 8601), null when down
 * @property {Source[]} [held] sources a moderator stopped and has not allowed back yet
 */
/**
 * A meeting's settings as the room knows them (`welcome.meeting.settings`, `meeting-updated`).
 * @typedef {object} MeetingSettings
 * @property {number} max_participants
 * @property {boolean} enable_chat
 * @property {boolean} enable_recording
 * @property {boolean} require_approval the waiting room is on
 * @property {boolean} [allow_self_unmute] people may turn on what a moderator stopped
 * @property {boolean} [locked] nobody new may join
 * @property {boolean} [end_on_schedule] the meeting ends at its scheduled end
 */
/** @typedef {{user_id: number, display_name: string}} Person */
/**
 * Someone in the waiting room (`welcome.waiting`, `knock`).
 * @typedef {{participant_id: string, user_id: number, display_name: string, since: string}} Knock
 */
/**
 * Held in the waiting room (the `waiting` event): sent instead of `welcome`, and again when
 * `host_present` changes.
 * @typedef {{meeting: {room_id: string, title: string}, host_present: boolean, may_be_recorded: boolean}} Waiting
 */
/**
 * @typedef {object} Slot
 * @property {string} mid
 * @property {"audio" | "video"} kind
 * @property {string | null} participant_id
 * @property {Source | null} source
 */
/**
 * @typedef {object} ChatMessage
 * @property {number} id
 * @property {{user_id: number, display_name: string} | null} author
 * @property {string} text
 * @property {string} kind
 * @property {string} created_at
 */
/**
 * @typedef {object} Welcome
 * @property {string} participant_id
 * @property {Participant} you
 * @property {{room_id: string, title: string, host_id: number, settings: MeetingSettings}} meeting
 * @property {Participant[]} participants
 * @property {ChatMessage[]} chat
 * @property {{active: boolean, recording_id: number | null}} [recording]
 * @property {RTCIceServer[]} ice_servers
 * @property {{max_message_bytes: number, chat_max_chars: number, audio_streams?: number, max_last_n?: number}} limits
 * @property {Speakers} [speakers] who speaks, at join (servers that send `active-speaker`)
 * @property {Knock[]} [waiting] the waiting room's queue (empty unless you may admit)
 */
/**
 * The server's speaker detection (`active-speaker`, `welcome.speakers`): the dominant speaker
 * (null before anyone spoke) and the recent speakers, most recent first.
 * @typedef {{participant_id: string | null, recent: string[]}} Speakers
 */
/**
 * What the server should forward to us (`receive`, docs/protocol.md section 3). Absolute:
 * each one replaces the last.
 * @typedef {object} ReceiveRequest
 * @property {number} last_n the most video streams to receive (0: audio only)
 * @property {string[] | null} visible the participants the page can show (null: the server picks by who speaks)
 * @property {string[]} [pinned]
 * @property {string[]} [on_stage]
 * @property {Record<string, number>} [max_height] participant id → largest drawn height
 * @property {number} [default_max_height]
 * @property {boolean} [screens]
 */
/** @typedef {"idle" | "connecting" | "waiting" | "connected" | "reconnecting" | "closed"} ConnectionState */
/** @typedef {Record<string, any>} ServerEvent */
/**
 * `renegotiate`: `*_slots` are how many more receive slots to add (protocol version 1);
 * `*_total`, when present, how many receive slots of each kind the next offer should hold in
 * all (the idempotent form: a repeated event adds nothing).
 * @typedef {object} RenegotiateEvent
 * @property {number} [audio_slots]
 * @property {number} [video_slots]
 * @property {number} [audio_total]
 * @property {number} [video_total]
 */

/**
 * Close codes after which the client must not reconnect by itself (section 6): among them
 * 4412 removed, 4413 denied at the waiting room, 4423 the meeting is locked.
 */
export const FINAL_CLOSE_CODES = new Set([1000, 1009, 4400, 4401, 4403, 4404, 4408, 4409, 4410, 4411, 4412, 4413, 4423, 4429]);

/** @type {Record<number, string>} what a close before the welcome means when no `error` said it */
const CLOSE_REFUSALS = { 4411: "meeting-ended", 4412: "removed", 4413: "denied", 4423: "meeting-locked" };

/** The moderation and hand messages (docs/protocol.md, "Moderation"). */
/** @typedef {"admit" | "deny" | "admit-all" | "waiting-room" | "lock" | "mute" | "mute-all" | "allow-unmute" | "remove" | "set-role" | "hand"} CommandType */

const SOURCE_KIND = /** @type {const} */ ({ microphone: "audio", camera: "video", screen: "video" });

/** The camera's temporal layers (sendEncodings' scalabilityMode; not in TypeScript's DOM types yet). */
export const CAMERA_LAYERS = "L1T3";
/** @typedef {RTCRtpEncodingParameters & {scalabilityMode?: string}} LayeredEncoding */

/**
 * A join refused by a server that is leaving (a worker or node draining, docs/protocol.md):
 * connect again at once, the new connection lands elsewhere.
 */
export const CLOSE_DRAINING = 4503;

/** Reconnection back-off: the first retry after 0.5 s, doubling up to 5 s, ±20 % jitter. */
export const RECONNECT_FIRST_MS = 500;
export const RECONNECT_MAX_MS = 5000;

/**
 * The wait before reconnection attempt `attempt` (0 for the first).
 * @param {number} attempt
 * @param {() => number} [random]
 */
export function reconnectDelay(attempt, random = Math.random) {
  const base = Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(attempt, 16), RECONNECT_MAX_MS);
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** An `error` event from the server, or a refused handshake. */
export class SignalingError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number | null} [closeCode]
   */
  constructor(code, message, closeCode = null) {
    super(message);
    this.name = "SignalingError";
    this.code = code;
    this.closeCode = closeCode;
  }
}

/**
 * The WebSocket URL of a meeting, from the page's origin.
 * @param {string} roomId
 * @param {Location | URL} [where]
 */
export function socketUrl(roomId, where = window.location) {
  const scheme = where.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${where.host}/api/meetings/${encodeURIComponent(roomId)}/ws`;
}

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A participant's session in one meeting: signaling, media negotiation, reconnection.
 *
 * Events (`addEventListener(type, (e) => e.detail)`):
 * - `state` {state, code?, reason?}: connection state changes (`connecting`, `connected`,
 *   `reconnecting`, `closed`);
 * - `welcome` {welcome}: after every (re)join; participants and chat history are reset;
 * - `participants` {}: someone joined, left or changed media state;
 * - `participant-joined` / `participant-left` / `media-state` / `chat` / `meeting-ended` /
 *   `error` {event}: the server's events as they are;
 * - `tracks` {slots}: receive slots changed (also after an answer: transceivers may be new);
 * - `active-speaker` {speakers}: the server's dominant and recent speakers changed;
 * - `server-leaving` {event}: the server said `reconnect` (it is draining): the next drop is
 *   followed by a reconnection at once, without back-off;
 * - `reconnect-attempt` {attempt, delayMs}: a reconnection attempt starts (after its delay);
 * - `reconnected` {attempts}: joined again after a drop, with a new peer connection;
 * - `closed` {code, reason, ended, refusal}: the session is over (left, ended, refused,
 *   replaced, removed); `refusal` is the error code of a join refused for good, if any.
 * The waiting room and moderation (docs/protocol.md):
 * - `waiting` {event}: held in the waiting room (instead of a welcome; again when
 *   `host_present` changes); `welcome` follows on the same socket when admitted;
 * - `knocks` {}: the waiting room's queue (`session.knocks`) changed; `knock` /
 *   `knock-resolved` {event} as the server sent them;
 * - `muted` {event}: a moderator stopped some of your sources (`session.holds` has those you
 *   may not turn on again yourself); `unmute-allowed` {event};
 * - `removed` {event} (the socket closes with 4412 next); `role-changed` {event, mine};
 *   `meeting-updated` {event}; `hand` {event, mine}; `meeting-ending` {event};
 * - `refused` {event, command}: the server refused a moderation or hand message.
 */
export class MeetingSession extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url WebSocket URL (see `socketUrl`)
   * @param {() => string | null} options.token returns the current JWT
   * @param {boolean} [options.reconnect] rejoin by itself after a dropped connection
   * @param {number} [options.gatherTimeoutMs]
   * @param {number} [options.connectTimeoutMs] give up on a socket that brings no welcome
   * @param {RTCIceTransportPolicy} [options.iceTransportPolicy] "relay": only through the TURN
   *   server of the welcome's `ice_servers` (to check a TURN set-up; docs/web.md)
   */
  constructor({ url, token, reconnect = true, gatherTimeoutMs = 5000, connectTimeoutMs = 15000, iceTransportPolicy = "all" }) {
    super();
    this.iceTransportPolicy = iceTransportPolicy;
    this.url = url;
    this.getToken = token;
    this.autoReconnect = reconnect;
    this.gatherTimeoutMs = gatherTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
    /** @type {ConnectionState} */
    this.state = "idle";
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {Welcome | null} */
    this.welcome = null;
    /** @type {Map<string, Participant>} other participants by id */
    this.participants = new Map();
    /** @type {Slot[]} */
    this.slots = [];
    /** @type {Speakers | null} the server's speakers; null until it sent any (an older server never does) */
    this.speakers = null;
    /** @type {ReceiveRequest | null} what we ask the server to forward (sent again after every join) */
    this.receive = null;
    /** the server answered `receive` with `unknown-type` (an older server): not sent again on this connection */
    this.receiveRefused = false;
    /** @type {string} the `receive` last sent on this connection (JSON), to send each change once */
    this._receiveSent = "";
    /** @type {Set<string>} ids of `receive` messages whose error would name them */
    this._receiveIds = new Set();
    /** @type {ChatMessage[]} */
    this.chat = [];
    /** @type {{active: boolean, recording_id: number | null, by?: {user_id: number, display_name: string} | null, reason?: string}} */
    this.recording = { active: false, recording_id: null };
    /** @type {Partial<Record<Source, MediaStreamTrack>>} what we publish */
    this.localTracks = {};
    /** @type {MediaFlags} what we announce */
    this.media = { microphone: false, camera: false, screen: false };
    /** @type {Partial<Record<Source, RTCRtpTransceiver>>} */
    this.senders = {};
    this.pendingSlots = { audio: 0, video: 0 };
    /** successful reconnections in this session */
    this.reconnects = 0;
    /** attempts made by the current (or last) reconnection */
    this.reconnectAttempts = 0;
    this._ids = 0;
    /** @type {Map<string, {resolve: (e: ServerEvent) => void, reject: (e: Error) => void}>} */
    this._requests = new Map();
    /** @type {Promise<void>} */
    this._negotiation = Promise.resolve();
    this._offerWanted = false;
    this._leaving = false;
    /** @type {string | null} why the meeting ended, once it has */
    this._ended = null;
    this._generation = 0;
    /** identifies the running reconnection loop (a newer loop or leaving stops it) */
    this._reconnectRun = 0;
    /** @type {(() => void) | null} ends the reconnection loop's current wait early */
    this._wake = null;
    /** the server said `reconnect` (it is leaving): reconnect without waiting */
    this._reconnectAtOnce = false;
    /** @type {Waiting | null} held in the waiting room: the last `waiting` event (null once admitted) */
    this.admission = null;
    /** @type {Map<string, Knock>} the waiting room's queue, oldest first (moderators only) */
    this.knocks = new Map();
    /** @type {Set<Source>} sources a moderator stopped that we may not turn on ourselves */
    this.holds = new Set();
    /** @type {string | null} when our own hand went up (null: down) */
    this.handRaisedAt = null;
    /** @type {ServerEvent | null} the `removed` event, once a moderator removed us */
    this.removed = null;
    /** @type {ServerEvent | null} the `denied` event, once a moderator refused us at the waiting room */
    this.denied = null;
    /** @type {ServerEvent | null} the `meeting-ending` warning, once it came */
    this.ending = null;
    /** @type {Map<string, string>} ids of moderation messages in flight → their type */
    this._commandIds = new Map();
  }

  /** @param {string} type @param {object} [detail] */
  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {ConnectionState} state @param {object} [extra] */
  _setState(state, extra = {}) {
    this.state = state;
    this._emit("state", { state, ...extra });
  }

  get participantId() {
    return this.welcome ? this.welcome.participant_id : null;
  }

  get isHost() {
    return !!this.welcome && this.welcome.you.role === "host";
  }

  /** Our role in the meeting: `host`, `moderator` or `participant` (admins are told apart by their account). */
  get role() {
    return this.welcome ? this.welcome.you.role : "participant";
  }

  /** The person left (or is leaving) the meeting. */
  get leaving() {
    return this._leaving;
  }

  /**
   * Whether our own `media-state` may turn this source on again (no moderator's hold on it,
   * or the meeting lets people unmute themselves).
   * @param {Source} source
   */
  mayTurnOn(source) {
    return !this.holds.has(source);
  }

  // --- joining -------------------------------------------------------------------------

  /**
   * Connect, authenticate, and publish the given tracks. Resolves with the welcome;
   * rejects with a SignalingError when the server refuses (meeting full, ended, ...).
   * @param {Partial<Record<Source, MediaStreamTrack>>} tracks
   * @param {Partial<MediaFlags>} [media] announced state (e.g. microphone muted)
   * @returns {Promise<Welcome>}
   */
  async join(tracks, media = {}) {
    this.localTracks = { ...tracks };
    this.media = {
      microphone: !!tracks.microphone,
      camera: !!tracks.camera,
      screen: !!tracks.screen,
      ...media,
    };
    this._setState("connecting");
    this.admission = null;
    let drained = false;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this._connect();
      } catch (error) {
        // Held in the waiting room when the connection dropped (not refused): knock again, as
        // a reconnection would, until admitted, refused or the person leaves. Refused by a
        // server that is leaving (4503): the same, the first retry at once (it lands elsewhere).
        const leaving = draining(error);
        if ((this.admission || leaving) && this.autoReconnect && !this._over() && retryable(error)) {
          this._setState("reconnecting", { code: error instanceof SignalingError ? error.closeCode : null });
          await this._pause(leaving && !drained ? 0 : reconnectDelay(attempt));
          drained = drained || leaving;
          if (!this._over()) continue;
          error = new SignalingError("cancelled", "the person left while waiting");
        }
        if (!this._over()) {
          this._generation++;
          this._setState("closed", { code: error instanceof SignalingError ? error.closeCode : null });
        }
        throw error;
      }
    }
  }

  /** The person left, or the session closed for good. */
  _over() {
    return this._leaving || this.state === "closed";
  }

  /** @returns {Promise<Welcome>} */
  async _connect() {
    const generation = ++this._generation;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    /** @type {Welcome} */
    const welcome = await new Promise((resolve, reject) => {
      /** @type {ServerEvent | null} */
      let refusal = null;
      // A server that accepts the connection but never welcomes us (starting, overloaded).
      const timer = setTimeout(() => ws.close(), this.connectTimeoutMs);
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: "hello", version: PROTOCOL_VERSION, token: this.getToken() || "" }));
      };
      ws.onmessage = (message) => {
        const event = JSON.parse(String(message.data));
        if (event.type === "welcome") {
          clearTimeout(timer);
          ws.onmessage = (m) => this._onMessage(generation, m);
          ws.onclose = (e) => this._onClose(generation, e.code, e.reason);
          resolve(event);
        } else if (event.type === "waiting") {
          // Held in the waiting room: this may last, so no deadline while waiting.
          clearTimeout(timer);
          if (generation !== this._generation) return;
          this.admission = { meeting: event.meeting, host_present: !!event.host_present, may_be_recorded: !!event.may_be_recorded };
          this.participants = new Map();
          this.knocks = new Map();
          this.slots = [];
          if (this.state !== "waiting") this._setState("waiting");
          this._emit("waiting", { event: this.admission });
        } else if (event.type === "denied") {
          this.denied = event;
          refusal = { code: "denied", message: event.reason || "the host did not let you in" };
        } else if (event.type === "meeting-ended") {
          refusal = { code: "meeting-ended", message: event.reason || "the meeting has ended" };
        } else if (event.type === "error") {
          refusal = event;
        }
      };
      ws.onclose = (e) => {
        clearTimeout(timer);
        const code = refusal ? refusal.code : CLOSE_REFUSALS[e.code] || "connection-failed";
        const text = refusal ? refusal.message : CLOSE_REFUSALS[e.code] ? e.reason || CLOSE_REFUSALS[e.code] : "could not reach the meeting server";
        reject(new SignalingError(code, text, e.code));
      };
    });
    if (generation !== this._generation) {
      // The person left (or the session finished) while this connection was being made.
      ws.onclose = null;
      ws.close(1000);
      throw new SignalingError("cancelled", "the session was closed while joining");
    }
    this.welcome = welcome;
    this.admission = null;
    this.participants = new Map(welcome.participants.map((p) => [p.participant_id, p]));
    this.knocks = new Map((welcome.waiting || []).map((k) => [k.participant_id, k]));
    this.handRaisedAt = welcome.you.hand_raised_at || null;
    // What a moderator stopped before (a reconnection): off, and not ours to turn on again
    // unless the meeting lets people unmute themselves.
    const held = (welcome.you.held || []).filter(isSource);
    for (const source of held) this.media[source] = false;
    this.holds = new Set(welcome.meeting.settings.allow_self_unmute === false ? held : []);
    this.chat = [...welcome.chat];
    this.recording = welcome.recording ? { ...welcome.recording } : { active: false, recording_id: null };
    this.slots = [];
    this.speakers = welcome.speakers ? readSpeakers(welcome.speakers) : null;
    this.receiveRefused = false;
    this._receiveSent = "";
    this._receiveIds.clear();
    this._setupPeerConnection(welcome.ice_servers);
    this._setState("connected");
    this._emit("welcome", { welcome });
    this.requestOffer();
    this.sendMediaState();
    this._sendReceive(); // a new connection starts from the server's defaults
    return welcome;
  }

  /** @param {RTCIceServer[]} iceServers */
  _setupPeerConnection(iceServers) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle", iceTransportPolicy: this.iceTransportPolicy });
    this.pc = pc;
    this.senders = {};
    this.pendingSlots = { audio: 0, video: 0 };
    for (const [source, track] of Object.entries(this.localTracks)) {
      if (track) this._addSender(/** @type {Source} */ (source), track);
    }
    pc.addEventListener("connectionstatechange", () => {
      this._emit("media-connection", { state: pc.connectionState });
    });
  }

  /** @param {Source} source @param {MediaStreamTrack} track */
  _addSender(source, track) {
    if (!this.pc) return;
    const existing = this.senders[source];
    if (existing) {
      existing.sender.replaceTrack(track);
      existing.direction = "sendonly";
      return;
    }
    if (source === "screen" && "contentHint" in track) track.contentHint = "detail";
    if (source === "camera") {
      // The camera in VP8 temporal layers (L1T3: every 4th frame in layer 0, every other one in
      // layers 0-1): the server drops the upper layers for a receiver that draws this camera
      // small (a quarter or half of the frame rate), as aiortc has no simulcast. One SSRC, so a
      // server or receiver that ignores the layers gets the whole stream as before.
      try {
        this.senders[source] = this.pc.addTransceiver(track, {
          direction: "sendonly", sendEncodings: [/** @type {LayeredEncoding} */ ({ scalabilityMode: CAMERA_LAYERS })],
        });
        return;
      } catch (error) {
        // A browser that refuses the mode: one layer, full rate for everybody.
        console.info(`camera sent without ${CAMERA_LAYERS}:`, error);
      }
    }
    this.senders[source] = this.pc.addTransceiver(track, { direction: "sendonly" });
  }

  // --- incoming ------------------------------------------------------------------------

  /** @param {number} generation @param {MessageEvent} message */
  _onMessage(generation, message) {
    if (generation !== this._generation) return;
    /** @type {ServerEvent} */
    let event;
    try {
      event = JSON.parse(String(message.data));
    } catch {
      return;
    }
    if (event.type === "error" && event.ref && this._receiveIds.has(event.ref)) {
      this._receiveIds.delete(event.ref);
      this._receiveError(event);
      return;
    }
    if (event.ref && this._commandIds.has(event.ref)) {
      const command = this._commandIds.get(event.ref);
      this._commandIds.delete(event.ref);
      if (event.type === "error") {
        this._emit("refused", { event, command });
        return;
      }
    }
    if (event.ref && this._requests.has(event.ref)) {
      const pending = this._requests.get(event.ref);
      this._requests.delete(event.ref);
      if (pending) {
        if (event.type === "error") pending.reject(new SignalingError(event.code, event.message));
        else pending.resolve(event);
      }
    }
    switch (event.type) {
      case "tracks":
        this.slots = event.slots;
        this._emit("tracks", { slots: this.slots });
        break;
      case "active-speaker":
        this.speakers = readSpeakers(event);
        this._emit("active-speaker", { speakers: this.speakers });
        break;
      case "renegotiate":
        this._addReceiveSlots(event);
        this.requestOffer();
        break;
      case "participant-joined":
        this.participants.set(event.participant.participant_id, event.participant);
        this._emit("participant-joined", { event });
        this._emit("participants");
        break;
      case "participant-left":
        this.participants.delete(event.participant_id);
        this._emit("participant-left", { event });
        this._emit("participants");
        break;
      case "media-state": {
        const { microphone, camera, screen } = event;
        const who = this.participants.get(event.participant_id);
        if (who) who.media = { microphone, camera, screen };
        this._emit("media-state", { event });
        this._emit("participants");
        break;
      }
      case "chat":
        this.chat.push(event.message);
        this._emit("chat", { event, message: event.message });
        break;
      case "recording-started":
      case "recording-stopped":
        this.recording = {
          active: event.type === "recording-started",
          recording_id: event.recording_id,
          by: event.by || null,
          reason: event.reason,
        };
        this._emit("recording", { event, recording: this.recording });
        break;
      case "meeting-ended":
        this._ended = event.reason || "the meeting has ended";
        this._emit("meeting-ended", { event });
        break;
      case "knock":
        this.knocks.set(event.participant_id, {
          participant_id: event.participant_id, user_id: event.user_id, display_name: event.display_name, since: event.since,
        });
        this._emit("knock", { event });
        this._emit("knocks");
        break;
      case "knock-resolved":
        this.knocks.delete(event.participant_id);
        this._emit("knock-resolved", { event });
        this._emit("knocks");
        break;
      case "muted": {
        const sources = (Array.isArray(event.sources) ? event.sources : []).filter(isSource);
        if (!event.may_unmute) for (const source of sources) this.holds.add(source);
        this._emit("muted", { event: { ...event, sources } });
        break;
      }
      case "unmute-allowed":
        this.holds.clear();
        this._emit("unmute-allowed", { event });
        break;
      case "removed":
        this.removed = event;
        this._emit("removed", { event });
        break;
      case "role-changed": {
        const mine = event.participant_id === this.participantId;
        if (mine && this.welcome) this.welcome.you.role = event.role;
        const who = this.participants.get(event.participant_id);
        if (who) who.role = event.role;
        this._emit("role-changed", { event, mine });
        this._emit("participants");
        break;
      }
      case "meeting-updated":
        if (this.welcome) {
          const meeting = this.welcome.meeting;
          if (typeof event.host_id === "number") meeting.host_id = event.host_id;
          meeting.settings = { ...meeting.settings, ...(event.settings || {}) };
          if (meeting.settings.allow_self_unmute) this.holds.clear();
        }
        this._emit("meeting-updated", { event });
        break;
      case "hand": {
        const mine = event.participant_id === this.participantId;
        const at = event.raised ? event.at || new Date().toISOString() : null;
        if (mine) this.handRaisedAt = at;
        const who = this.participants.get(event.participant_id);
        if (who) who.hand_raised_at = at;
        this._emit("hand", { event, mine });
        this._emit("participants");
        break;
      }
      case "meeting-ending":
        this.ending = event;
        this._emit("meeting-ending", { event });
        break;
      case "reconnect":
        // The server is leaving (draining): its socket closes with 1001 next, and the next
        // connection, made at once, lands on another worker where the meeting goes on.
        this._reconnectAtOnce = true;
        this._emit("server-leaving", { event });
        break;
      case "error":
        if (!event.ref) this._emit("error", { event });
        break;
      default:
        break;
    }
  }

  /** @param {number} generation @param {number} code @param {string} reason */
  _onClose(generation, code, reason) {
    if (generation !== this._generation) return;
    this._teardownMedia();
    for (const pending of this._requests.values()) pending.reject(new SignalingError("closed", `closed (${code})`, code));
    this._requests.clear();
    if (code === 4411 && !this._ended) this._ended = reason || "the host ended the meeting";
    if (this._leaving || this._ended || FINAL_CLOSE_CODES.has(code) || !this.autoReconnect) {
      this._finish(code, this._ended ? "meeting-ended" : reason);
      return;
    }
    this._reconnectLoop(code);
  }

  /** @param {number} code @param {string} reason @param {string | null} [refusal] the error code of a refused join */
  _finish(code, reason, refusal = null) {
    this._generation++;
    this._setState("closed", { code, reason });
    this._emit("closed", { code, reason, ended: !!this._ended, refusal });
    this.retryNow(); // a reconnection loop waiting for its next attempt ends now
  }

  /**
   * Join again after a dropped connection, with back-off, until it works, the person
   * leaves, or the server refuses for good (meeting ended, not allowed: FINAL_CLOSE_CODES).
   * Each attempt is a full join: new socket, welcome, new peer connection publishing the
   * same tracks, receive slots again.
   * @param {number} code the close code of the dropped connection
   */
  async _reconnectLoop(code) {
    const loop = ++this._reconnectRun;
    // A reconnection may land in the waiting room (state `waiting`) until admitted.
    const current = () => loop === this._reconnectRun && !this._leaving && !this._ended
      && (this.state === "reconnecting" || this.state === "waiting");
    this.reconnectAttempts = 0;
    this._setState("reconnecting", { code });
    // Told `reconnect` by a server that is leaving: the first attempt goes at once; so does
    // the next after a join refused by such a server (4503), but never twice in a row.
    let atOnce = this._reconnectAtOnce;
    this._reconnectAtOnce = false;
    for (let attempt = 0; ; attempt++) {
      const delayMs = atOnce ? 0 : reconnectDelay(attempt);
      const wasAtOnce = atOnce;
      atOnce = false;
      await this._pause(delayMs);
      if (!current()) return;
      this.reconnectAttempts = attempt + 1;
      this._emit("reconnect-attempt", { attempt: attempt + 1, delayMs });
      try {
        await this._connect();
      } catch (error) {
        if (!current()) return;
        if (error instanceof SignalingError && error.closeCode !== null && FINAL_CLOSE_CODES.has(error.closeCode)) {
          if (error.code === "meeting-ended") this._ended = error.message || "the meeting has ended";
          this._finish(error.closeCode, this._ended ? "meeting-ended" : error.message || error.code, error.code);
          return;
        }
        if (this.state === "waiting") this._setState("reconnecting", { code: error instanceof SignalingError ? error.closeCode : null });
        atOnce = draining(error) && !wasAtOnce;
        continue; // the server is unreachable or not ready yet: try again after a longer wait
      }
      this.reconnects++;
      this._emit("reconnected", { attempts: attempt + 1 });
      return;
    }
  }

  /**
   * Wait before the next reconnection attempt; the browser coming back online, or
   * `retryNow()`, ends the wait early.
   * @param {number} ms
   * @returns {Promise<void>}
   */
  _pause(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (typeof removeEventListener === "function") removeEventListener("online", done);
        if (this._wake === done) this._wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (typeof addEventListener === "function") addEventListener("online", done);
      this._wake = done;
    });
  }

  /** While reconnecting: try now instead of at the end of the current wait. */
  retryNow() {
    if (this._wake) this._wake();
  }

  _teardownMedia() {
    const pc = this.pc;
    if (pc) {
      this.pc = null;
      pc.close();
      // close() fires no state events: wake whatever waits on this connection (an offer in
      // flight) so that it gives up now instead of at its timeout.
      pc.dispatchEvent(new Event("connectionstatechange"));
      pc.dispatchEvent(new Event("icegatheringstatechange"));
    }
    this.senders = {};
    this.slots = [];
    this._emit("tracks", { slots: this.slots });
  }

  // --- negotiation ---------------------------------------------------------------------

  /**
   * Queue an offer; several requests while one is in flight make one more offer. The offer
   * is made on the peer connection current when its turn comes (after a reconnection, the
   * new one).
   */
  requestOffer() {
    if (this._offerWanted) return this._negotiation;
    this._offerWanted = true;
    this._negotiation = this._negotiation.then(async () => {
      this._offerWanted = false;
      const pc = this.pc;
      if (!pc) return;
      try {
        await this._offer(pc);
      } catch (error) {
        if (pc !== this.pc) return; // replaced meanwhile (a reconnection): nothing to report
        const e = /** @type {{code?: string, message?: string}} */ (error);
        console.error("negotiation failed:", error);
        this._emit("error", { event: { type: "error", code: e.code || "negotiation-failed", message: String(e.message || error) } });
      }
    });
    return this._negotiation;
  }

  /**
   * Receive slots asked for by a `renegotiate` event: up to `*_total` (counting the
   * receive-only transceivers we have and those already queued) when the server sends it,
   * else `*_slots` more.
   * @param {RenegotiateEvent} event
   */
  _addReceiveSlots(event) {
    for (const kind of /** @type {const} */ (["audio", "video"])) {
      const total = kind === "audio" ? event.audio_total : event.video_total;
      const more = kind === "audio" ? event.audio_slots : event.video_slots;
      const add = typeof total === "number"
        ? total - (this.receiveSlotCount(kind) + this.pendingSlots[kind])
        : Number(more) || 0;
      this.pendingSlots[kind] += Math.max(0, add);
    }
  }

  /**
   * The receive-only transceivers of a kind on the current peer connection.
   * @param {"audio" | "video"} kind
   */
  receiveSlotCount(kind) {
    if (!this.pc) return 0;
    return this.pc.getTransceivers().filter((t) => t.direction === "recvonly" && t.receiver.track.kind === kind).length;
  }

  /** @param {RTCPeerConnection} pc */
  async _offer(pc) {
    if (pc.remoteDescription) await waitConnected(pc, 10000);
    if (pc !== this.pc) return;
    for (const kind of /** @type {const} */ (["audio", "video"])) {
      for (; this.pendingSlots[kind] > 0; this.pendingSlots[kind]--) {
        pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
    // Nothing to publish and no receive slots yet: an empty offer has nothing to negotiate.
    if (!pc.getTransceivers().length) return;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await waitGathered(pc, this.gatherTimeoutMs);
    if (pc !== this.pc || !pc.localDescription) return;
    /** @type {Record<string, Source>} */
    const tracks = {};
    for (const [source, transceiver] of Object.entries(this.senders)) {
      if (transceiver && transceiver.mid !== null && this.localTracks[/** @type {Source} */ (source)]) {
        tracks[transceiver.mid] = /** @type {Source} */ (source);
      }
    }
    const answer = await this.request({ type: "offer", sdp: pc.localDescription.sdp, tracks });
    if (pc !== this.pc) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    // New receive slots send nothing until the server knows their m-lines are applied here.
    this.send({ type: "answer-applied" });
    this._emit("tracks", { slots: this.slots });
  }

  /**
   * The receive transceiver of a slot's mid.
   * @param {string} mid
   */
  transceiverFor(mid) {
    if (!this.pc) return null;
    return this.pc.getTransceivers().find((t) => t.mid === mid) || null;
  }

  /**
   * Active slots of a participant: {source: {slot, track}}.
   * @param {string} participantId
   * @returns {Partial<Record<Source, {slot: Slot, track: MediaStreamTrack}>>}
   */
  tracksOf(participantId) {
    /** @type {Partial<Record<Source, {slot: Slot, track: MediaStreamTrack}>>} */
    const found = {};
    for (const slot of this.slots) {
      if (slot.participant_id !== participantId || !slot.source) continue;
      const transceiver = this.transceiverFor(slot.mid);
      if (transceiver) found[slot.source] = { slot, track: transceiver.receiver.track };
    }
    return found;
  }

  // --- publishing ----------------------------------------------------------------------

  /**
   * Publish (or replace) a source's track and renegotiate when the m-line set changes.
   * @param {Source} source
   * @param {MediaStreamTrack} track
   */
  async publish(source, track) {
    const had = !!this.localTracks[source] && !!this.senders[source] && this.senders[source]?.direction === "sendonly";
    this.localTracks[source] = track;
    if (!this.pc) return;
    if (had) {
      await this.senders[source]?.sender.replaceTrack(track);
      return;
    }
    if (SOURCE_KIND[source] !== track.kind) throw new Error(`${source} needs an ${SOURCE_KIND[source]} track`);
    this._addSender(source, track);
    await this.requestOffer();
  }

  /**
   * Stop publishing a source: its m-line goes inactive and leaves `tracks` in the next offer.
   * @param {Source} source
   */
  async unpublish(source) {
    const track = this.localTracks[source];
    delete this.localTracks[source];
    if (track) track.stop();
    const transceiver = this.senders[source];
    if (!transceiver || !this.pc) return;
    await transceiver.sender.replaceTrack(null);
    transceiver.direction = "inactive";
    await this.requestOffer();
  }

  /**
   * Announce microphone / camera / screen (all three every time).
   * @param {Partial<MediaFlags>} [changes]
   */
  sendMediaState(changes = {}) {
    this.media = { ...this.media, ...changes };
    if (this.state === "connected") this.send({ type: "media-state", ...this.media });
  }

  // --- what we receive ---------------------------------------------------------------

  /**
   * Ask the server to forward this (docs/protocol.md, `receive`). Kept and sent again after
   * every (re)join; an unchanged request is not sent twice.
   * @param {ReceiveRequest} request
   * @returns {boolean} whether it was sent now
   */
  setReceive(request) {
    this.receive = { ...request };
    return this._sendReceive();
  }

  _sendReceive() {
    if (!this.receive || this.receiveRefused || this.state !== "connected") return false;
    const body = JSON.stringify(this.receive);
    if (body === this._receiveSent) return false;
    const id = `r${++this._ids}`;
    if (!this.send({ type: "receive", id, ...this.receive })) return false;
    this._receiveSent = body;
    if (this._receiveIds.size > 50) this._receiveIds.clear(); // errors come back at once or never
    this._receiveIds.add(id);
    return true;
  }

  /** @param {ServerEvent} event an error naming a `receive` we sent */
  _receiveError(event) {
    if (event.code === "unknown-type") {
      // An older server: it forwards everything, as before `receive` existed.
      this.receiveRefused = true;
      console.info("the server does not know `receive`; receiving everything");
      return;
    }
    console.warn("receive refused:", event.code, event.message);
  }

  // --- messages ------------------------------------------------------------------------

  /** @param {Record<string, unknown>} message */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /**
   * Send with an `id` and resolve with the reply that carries it as `ref`.
   * @param {Record<string, unknown>} message
   * @param {number} [timeoutMs]
   * @returns {Promise<ServerEvent>}
   */
  request(message, timeoutMs = 20000) {
    const id = `w${++this._ids}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._requests.delete(id);
        reject(new SignalingError("timeout", `no reply to ${String(message.type)}`));
      }, timeoutMs);
      this._requests.set(id, {
        resolve: (e) => { clearTimeout(timer); resolve(e); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      if (!this.send({ ...message, id })) {
        this._requests.delete(id);
        clearTimeout(timer);
        reject(new SignalingError("not-connected", "not connected"));
      }
    });
  }

  /** @param {string} text */
  sendChat(text) {
    return this.request({ type: "chat", text });
  }

  /** Host or moderator: start recording (resolves on the `recording-started` broadcast's arrival or an error). */
  startRecording() {
    return this._recordingRequest("start-recording");
  }

  stopRecording() {
    return this._recordingRequest("stop-recording");
  }

  /**
   * Success has no reply with `ref` (the broadcast carries none): wait for the broadcast,
   * or reject with the error that names this request.
   * @param {"start-recording" | "stop-recording"} type
   * @returns {Promise<void>}
   */
  _recordingRequest(type) {
    const wanted = type === "start-recording" ? "recording-started" : "recording-stopped";
    return new Promise((resolve, reject) => {
      const done = () => {
        this.removeEventListener("recording", onRecording);
        clearTimeout(timer);
      };
      const onRecording = (/** @type {Event} */ e) => {
        if (/** @type {CustomEvent} */ (e).detail.event.type === wanted) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => { done(); reject(new SignalingError("timeout", `no reply to ${type}`)); }, 20000);
      this.addEventListener("recording", onRecording);
      this.request({ type }).catch((error) => {
        done();
        reject(error);
      });
    });
  }

  endMeeting() {
    return this.send({ type: "end-meeting" });
  }

  // --- the waiting room and moderation (the server decides; a refusal is a `refused` event) ---

  /**
   * Send a moderation or hand message with an `id`; an error naming it comes back as a
   * `refused` event {event, command}. Success shows in the broadcast that follows
   * (`knock-resolved`, `muted`, `role-changed`, `meeting-updated`, `hand`, …).
   * @param {CommandType} type
   * @param {Record<string, unknown>} [fields]
   * @returns {boolean} whether it was sent
   */
  command(type, fields = {}) {
    const id = `m${++this._ids}`;
    if (!this.send({ type, id, ...fields })) return false;
    if (this._commandIds.size > 100) this._commandIds.clear(); // errors come back at once or never
    this._commandIds.set(id, type);
    return true;
  }

  /** Let one waiting person in. @param {string} participantId */
  admit(participantId) {
    return this.command("admit", { participant_id: participantId });
  }

  /** Refuse one waiting person. @param {string} participantId */
  deny(participantId) {
    return this.command("deny", { participant_id: participantId });
  }

  admitAll() {
    return this.command("admit-all");
  }

  /** Host or admin: the waiting room on or off (off admits everyone waiting). @param {boolean} enabled */
  setWaitingRoom(enabled) {
    return this.command("waiting-room", { enabled });
  }

  /** @param {boolean} locked */
  lock(locked) {
    return this.command("lock", { locked });
  }

  /** Stop someone's microphone, camera or screen. @param {string} participantId @param {Source[]} sources */
  mute(participantId, sources) {
    return this.command("mute", { participant_id: participantId, sources });
  }

  /** Mute every microphone but ours. */
  muteAll() {
    return this.command("mute-all");
  }

  /** Let someone turn on again what a moderator stopped. @param {string} participantId */
  allowUnmute(participantId) {
    return this.command("allow-unmute", { participant_id: participantId });
  }

  /** @param {string} participantId @param {boolean} [bar] never let them back into this meeting */
  remove(participantId, bar = false) {
    return this.command("remove", { participant_id: participantId, bar });
  }

  /** Host or admin. @param {string} participantId @param {"host" | "moderator" | "participant"} role */
  setRole(participantId, role) {
    return this.command("set-role", { participant_id: participantId, role });
  }

  /**
   * Raise or lower our own hand, or (a moderator) lower someone else's.
   * @param {boolean} raised
   * @param {string} [participantId]
   */
  hand(raised, participantId) {
    return this.command("hand", participantId ? { raised, participant_id: participantId } : { raised });
  }

  /** Leave the meeting: tell the server, stop local media, close everything. */
  leave() {
    this._leaving = true;
    this.send({ type: "leave" });
    for (const track of Object.values(this.localTracks)) track?.stop();
    this._teardownMedia();
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      // The server closes with 1000 after `leave`; close ourselves if it does not.
      setTimeout(() => ws.close(1000), 2000);
    }
    if (this.state !== "closed") this._finish(1000, "left");
  }

  /** For tests: drop the socket as a network failure would (the session reconnects, or knocks again while waiting). */
  dropConnection() {
    const ws = this.ws;
    if (ws && this.state === "waiting") {
      const closed = ws.onclose;
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(4000, "dropped for a test");
      closed?.call(ws, new CloseEvent("close", { code: 1006, reason: "connection dropped" }));
      return;
    }
    if (!ws || this.state !== "connected") return;
    ws.onclose = null;
    ws.onmessage = null;
    ws.close(4000, "dropped for a test");
    this._onClose(this._generation, 1006, "connection dropped");
  }
}

/** @param {unknown} value @returns {value is Source} */
function isSource(value) {
  return value === "microphone" || value === "camera" || value === "screen";
}

/**
 * A join refused by a server that is leaving (4503): worth trying again at once.
 * @param {unknown} error
 */
function draining(error) {
  return error instanceof SignalingError && error.closeCode === CLOSE_DRAINING;
}

/**
 * A failed join worth trying again: the connection dropped or could not be made (not a
 * refusal, whose close code is final).
 * @param {unknown} error
 */
function retryable(error) {
  return error instanceof SignalingError && error.closeCode !== null && !FINAL_CLOSE_CODES.has(error.closeCode);
}

/**
 * The speakers in an `active-speaker` event or `welcome.speakers`, checked.
 * @param {Record<string, any>} event
 * @returns {Speakers}
 */
function readSpeakers(event) {
  const id = typeof event.participant_id === "string" ? event.participant_id : null;
  const recent = Array.isArray(event.recent) ? event.recent.filter((p) => typeof p === "string") : [];
  return { participant_id: id, recent };
}

/**
 * Resolves once `settled()` holds, checked at each `event` of the peer connection, or after
 * `timeoutMs` whatever the state.
 * @param {RTCPeerConnection} pc
 * @param {"icegatheringstatechange" | "connectionstatechange"} event
 * @param {() => boolean} settled
 * @param {number} timeoutMs
 * @returns {Promise<void>}
 */
function waitForPeerState(pc, event, settled, timeoutMs) {
  if (settled()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (!settled()) return;
      pc.removeEventListener(event, done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener(event, done);
      resolve();
    }, timeoutMs);
    pc.addEventListener(event, done);
  });
}

/**
 * ICE gathering completed (the server does not trickle: the offer carries every candidate).
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 */
export function waitGathered(pc, timeoutMs) {
  return waitForPeerState(pc, "icegatheringstatechange",
    () => pc.iceGatheringState === "complete" || pc.signalingState === "closed", timeoutMs);
}

/**
 * aiortc cannot take a new offer while the previous answer's transports still start.
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 */
export function waitConnected(pc, timeoutMs) {
  return waitForPeerState(pc, "connectionstatechange",
    () => ["connected", "failed", "closed"].includes(pc.connectionState) || pc.signalingState === "closed", timeoutMs);
}
