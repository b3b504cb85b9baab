// /recordings/{id}: one recording — the composed video, its track files, the composition's
// progress (polled), retry after a failure, delete.
//
// Files open with the short-lived links of POST /api/recordings/{id}/access (`?access=`, a
// token for this recording only); the sign-in token never goes into a URL.

import { appHeader } from "../account.js";
import { api, ApiError } from "../api.js";
import { navigate, onLeavePage } from "../nav.js";
import { confirmDialog, focusHeading, formatBytes, formatDuration, formatTime, h, messageOf, pageTitle, root } from "../widgets.js";
import { durationText, percent, stateText } from "./recordings.js";

/** @typedef {import("../api.js").Recording} Recording */
/** @typedef {import("../api.js").RecordingDetail} RecordingDetail */
/** @typedef {import("../api.js").RecordingAccess} RecordingAccess */

const POLL_MS = 1500;

/** @type {Record<string, string>} */
const SOURCE_LABELS = { microphone: "Microphone", camera: "Camera", screen: "Screen share" };

/** @param {string} rawId the path segment */
export async function showRecording(rawId) {
  pageTitle("Recording");
  let disposed = false;
  let pollTimer = 0;
  let accessTimer = 0;
  /** @type {HTMLVideoElement | null} */
  let video = null;
  onLeavePage(() => {
    disposed = true;
    window.clearTimeout(pollTimer);
    window.clearTimeout(accessTimer);
    if (video) {
      video.pause();
      video.removeAttribute("src");
      video.load();
    }
  });

  const page = h("div", { class: "page", "data-testid": "recording-page" },
    h("p", { role: "status" }, "Loading the recording…"));
  root().replaceChildren(page);
  const back = h("p", { class: "back" }, h("a", { href: "/recordings", "data-internal": true, "data-testid": "back-to-recordings" }, "← All recordings"));

  /** @type {import("../api.js").User} */
  let me;
  /** @type {RecordingDetail} */
  let recording;
  try {
    if (!/^\d{1,18}$/.test(rawId)) throw new ApiError(404, "recording-not-found", "no such recording");
    [me, recording] = await Promise.all([api("/api/me"), api(`/api/recordings/${rawId}`)]);
  } catch (error) {
    if (disposed || (error instanceof ApiError && error.status === 401)) return;
    /** @type {import("../api.js").User | null} */
    const who = await api("/api/me").catch(() => null);
    if (disposed) return;
    /** @type {[string, string, string]} */
    const [testid, heading, text] = error instanceof ApiError && error.status === 403
      ? ["recording-forbidden", "You cannot see this recording", error.code === "not-allowed"
        ? "Only administrators and the host of the meeting can see its recordings. Ask the host if you need a copy."
        : error.message]
      : error instanceof ApiError && error.status === 404
        ? ["recording-not-found", "Recording not found", "There is no recording at this address. It may have been deleted."]
        : ["recording-error", "Cannot open the recording", messageOf(error)];
    pageTitle(heading);
    page.replaceChildren(
      ...(who ? [appHeader(who)] : []),
      h("section", { class: "outcome", "data-testid": testid },
        h("h1", {}, heading),
        h("p", { role: "alert", "data-testid": "recording-message" }, text),
        back));
    focusHeading(page);
    return;
  }
  if (disposed) return;
  const id = recording.id;

  // --- the parts of the page --------------------------------------------------------------
  const heading = h("h1", {}, recording.meeting.title);
  const subtitle = h("p", { class: "muted" });
  const status = h("p", { class: "notice", role: "status", "aria-live": "polite", "data-testid": "recording-status" });
  const player = h("section", { class: "card stack player", "aria-labelledby": "player-heading", "data-testid": "recording-player" });
  const details = h("dl", { class: "details", "data-testid": "recording-details" });
  const tracks = h("ul", { class: "tracks", "data-testid": "track-list", "aria-labelledby": "tracks-heading" });
  const deleteError = h("p", { class: "error", role: "alert", "data-testid": "delete-error" });
  const deleteButton = h("button", { type: "button", class: "danger", "data-testid": "delete-recording" }, "Delete recording");
  /** @type {RecordingAccess | null} */
  let access = null;
  let lastState = recording.state;

  /** Links to the files, renewed a minute before they expire. */
  async function loadAccess() {
    window.clearTimeout(accessTimer);
    /** @type {RecordingAccess} */
    const fresh = await api(`/api/recordings/${id}/access`, { method: "POST" });
    if (disposed) return null;
    access = fresh;
    accessTimer = window.setTimeout(() => {
      loadAccess().then(updateLinks).catch(() => {});
    }, Math.max(30, fresh.expires_in - 60) * 1000);
    return fresh;
  }

  /** Point the download links at the current access token (the video keeps its src until it needs a new one). */
  function updateLinks() {
    if (!access) return;
    for (const link of page.querySelectorAll("a[data-file]")) {
      const track = link.getAttribute("data-file") || "";
      const url = track === "composed" ? access.file_url : access.track_urls[track];
      if (url) /** @type {HTMLAnchorElement} */ (link).href = `${url}&download=1`;
    }
  }

  /** @param {string} term @param {Node | string} value */
  function row(term, value) {
    return [h("dt", {}, term), h("dd", {}, value)];
  }

  function renderDetails() {
    const r = recording;
    subtitle.replaceChildren(`Recorded ${formatTime(r.started_at)}`);
    details.replaceChildren(
      ...row("State", h("span", { class: `badge ${r.state}`, "data-testid": "recording-state" }, stateText(r))),
      ...row("Started", h("time", { dateTime: r.started_at }, formatTime(r.started_at))),
      ...row("Stopped", r.stopped_at ? h("time", { dateTime: r.stopped_at }, formatTime(r.stopped_at)) : "not yet"),
      ...row("Duration", durationText(r)),
      ...row("Started by", r.started_by ? r.started_by.display_name : "—"),
      ...row("Participants", r.participants.length ? r.participants.join(", ") : "none recorded"),
      ...row("Track files", formatBytes(r.size_bytes)),
      ...row("Composed video", r.composed_size_bytes ? formatBytes(r.composed_size_bytes) : "—"),
    );
    deleteButton.disabled = r.state === "recording";
    deleteButton.title = r.state === "recording" ? "Stop the recording before deleting it" : "";
  }

  function renderTracks() {
    const r = recording;
    if (!r.tracks.length) {
      tracks.replaceChildren(h("li", { class: "empty" }, "No tracks were recorded."));
      return;
    }
    tracks.replaceChildren(...r.tracks.map((t) => {
      const what = `${(SOURCE_LABELS[t.source] || t.source).toLowerCase()} of ${t.display_name}`;
      const url = access && access.track_urls[String(t.id)];
      return h("li", { class: "track", "data-testid": "track-item", "data-track-id": String(t.id), "data-source": t.source },
        h("div", { class: "track-what" },
          h("strong", {}, t.display_name), " ",
          h("span", { class: "tag" }, SOURCE_LABELS[t.source] || t.source)),
        h("span", { class: "muted" },
          `${t.codec} · from ${formatDuration(t.start_offset)} · ${formatDuration(t.duration_seconds)} · ${formatBytes(t.size_bytes)}`),
        url && r.state !== "recording"
          ? h("a", { class: "button", href: `${url}&download=1`, download: "", "data-file": String(t.id), "data-testid": "track-download", "aria-label": `Download the ${what} (${t.codec}, ${formatBytes(t.size_bytes)})` }, "Download")
          : null);
    }));
  }

  function renderPlayer() {
    const r = recording;
    const title = h("h2", { id: "player-heading" }, "Video");
    if (r.state === "ready" && access && access.file_url) {
      if (!video) {
        const v = h("video", { controls: true, preload: "metadata", playsInline: true, src: access.file_url, "data-testid": "recording-video", "aria-label": `Recording of ${r.meeting.title}` });
        let renewed = false;
        v.addEventListener("error", async () => {
          // The link may have expired (a seek after ten minutes): renew it once, resume there.
          if (renewed || disposed) {
            status.textContent = "The video cannot be played here. Download it instead.";
            return;
          }
          renewed = true;
          const at = v.currentTime;
          const wasPlaying = !v.paused;
          try {
            const fresh = await loadAccess();
            if (!fresh || !fresh.file_url) return;
            updateLinks();
            v.src = fresh.file_url;
            v.currentTime = at;
            if (wasPlaying) await v.play();
          } catch (error) {
            status.textContent = `The video cannot be played: ${messageOf(error)}`;
          }
        });
        v.addEventListener("playing", () => { renewed = false; });
        video = v;
      }
      player.replaceChildren(title, video,
        h("p", {}, h("a", { class: "button", href: `${access.file_url}&download=1`, download: "", "data-file": "composed", "data-testid": "composed-download" },
          `Download the video (MP4, ${formatBytes(r.composed_size_bytes)})`)));
      return;
    }
    if (r.state === "processing") {
      player.replaceChildren(title,
        h("p", { id: "progress-label" }, "The video is being composed from the tracks…"),
        h("div", { class: "progress-row" },
          h("progress", { max: 1, value: r.progress, "aria-labelledby": "progress-label", "data-testid": "recording-progress" }),
          h("span", { "data-testid": "recording-percent" }, percent(r.progress))));
      return;
    }
    if (r.state === "recording") {
      player.replaceChildren(title, h("p", { "data-testid": "recording-live" },
        "This meeting is still being recorded. The video is composed when the recording stops."));
      return;
    }
    // failed or interrupted: the reason, and composing again (POST …/compose).
    const retry = h("button", { type: "button", class: "primary", "data-testid": "recording-retry" },
      r.state === "failed" ? "Retry composing" : "Compose the video");
    const retryError = h("p", { class: "error", role: "alert" });
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      retryError.textContent = "";
      try {
        /** @type {Recording} */
        const updated = await api(`/api/recordings/${id}/compose`, { method: "POST" });
        if (disposed) return;
        recording = { ...recording, ...updated, tracks: recording.tracks };
        status.textContent = "Composing the video again.";
        render();
        poll();
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) return;
        retry.disabled = false;
        retryError.textContent = `Could not start composing: ${messageOf(error)}`;
      }
    });
    player.replaceChildren(title,
      h("p", { class: "error", "data-testid": "recording-failure" }, r.state === "failed"
        ? `Composing the video failed${r.failure_reason ? `: ${r.failure_reason}` : "."}`
        : `The recording was interrupted${r.failure_reason ? `: ${r.failure_reason}` : ""}. What was recorded is kept; the video has not been composed.`),
      h("div", { class: "row" }, retry), retryError);
  }

  function render() {
    renderDetails();
    renderPlayer();
    renderTracks();
  }

  /**
   * While recording or composing, follow the state every 1.5 s. The list endpoint is polled
   * (filtered to this meeting): reading the detail is audited as a view, polling it is not one.
   */
  function poll() {
    window.clearTimeout(pollTimer);
    if (disposed || (recording.state !== "processing" && recording.state !== "recording")) return;
    pollTimer = window.setTimeout(async () => {
      try {
        const query = new URLSearchParams({ room_id: recording.meeting.room_id, limit: "100" });
        /** @type {import("../api.js").RecordingPage} */
        const result = await api(`/api/recordings?${query}`);
        if (disposed) return;
        const found = result.items.find((r) => r.id === id);
        /** @type {Recording} */
        const now = found || await api(`/api/recordings/${id}`);
        if (disposed) return;
        if (now.state === lastState && now.state === "processing") {
          recording = { ...recording, progress: now.progress };
          const bar = player.querySelector("progress");
          const pct = player.querySelector('[data-testid="recording-percent"]');
          if (bar instanceof HTMLProgressElement) bar.value = now.progress;
          if (pct) pct.textContent = percent(now.progress);
          const badge = details.querySelector('[data-testid="recording-state"]');
          if (badge) badge.textContent = stateText(recording);
        } else if (now.state !== lastState) {
          await refresh();
          return;
        }
      } catch (error) {
        if (disposed || (error instanceof ApiError && error.status === 401)) return;
        if (error instanceof ApiError && error.status === 404) {
          status.textContent = "This recording has been deleted.";
          return;
        }
        // a network hiccup: keep trying
      }
      poll();
    }, POLL_MS);
  }

  /** Reload the detail after a change of state (new tracks, sizes, the composed file). */
  async function refresh() {
    /** @type {RecordingDetail} */
    const fresh = await api(`/api/recordings/${id}`);
    if (disposed) return;
    const previous = lastState;
    recording = fresh;
    lastState = fresh.state;
    if (fresh.state !== "recording") await loadAccess();
    if (disposed) return;
    if (previous !== fresh.state) {
      status.textContent = fresh.state === "ready" ? "The video is ready."
        : fresh.state === "failed" ? "Composing the video failed."
          : fresh.state === "processing" ? "The recording stopped; the video is being composed."
            : `The recording is now ${stateText(fresh).toLowerCase()}.`;
    }
    render();
    poll();
  }

  deleteButton.addEventListener("click", async () => {
    deleteError.textContent = "";
    const when = formatTime(recording.started_at);
    if (!(await confirmDialog(`Delete the recording of “${recording.meeting.title}” (${when})? Its video and track files are removed. This cannot be undone.`, "Delete"))) {
      deleteButton.focus();
      return;
    }
    deleteButton.disabled = true;
    try {
      await api(`/api/recordings/${id}`, { method: "DELETE" });
      navigate("/recordings", { message: `Deleted the recording of “${recording.meeting.title}” (${when}).` });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      deleteButton.disabled = false;
      deleteError.textContent = error instanceof ApiError && error.code === "still-recording"
        ? "Stop the recording before deleting it."
        : `Could not delete: ${messageOf(error)}`;
    }
  });

  pageTitle(`Recording of ${recording.meeting.title}`);
  page.replaceChildren(
    appHeader(me),
    back,
    heading,
    subtitle,
    status,
    h("div", { class: "recording-layout" },
      player,
      h("section", { class: "card", "aria-labelledby": "details-heading" },
        h("h2", { id: "details-heading" }, "Details"), details)),
    h("section", { "aria-labelledby": "tracks-heading" },
      h("h2", { id: "tracks-heading" }, "Tracks"),
      h("p", { class: "muted" }, "Each person's microphone, camera and screen as recorded (WebM)."),
      tracks),
    h("section", { class: "danger-zone", "aria-labelledby": "delete-heading" },
      h("h2", { id: "delete-heading" }, "Delete"),
      h("div", { class: "row" }, deleteButton), deleteError));
  if (recording.state !== "recording") {
    try {
      await loadAccess();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      status.textContent = `The files cannot be opened: ${messageOf(error)}`;
    }
  }
  if (disposed) return;
  render();
  focusHeading(page);
  poll();
}
