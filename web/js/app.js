// The single-page app: client-side routes over the paths the server serves (index.html).
//   /                 sign-in (signed out) or dashboard (signed in); `?next=/m/ID` returns there
//   /m/{room_id}      pre-join check, then the meeting room
//   /recordings       the recordings library (admins: all; hosts: their meetings')
//   /recordings/{id}  one recording: player, tracks, composition progress, delete

import { ApiError, getToken, setToken, setUnauthorizedHandler } from "./api.js";
import { showSignIn } from "./pages/signin.js";
import { showDashboard } from "./pages/dashboard.js";
import { showMeeting } from "./pages/meeting.js";
import { showRecordings } from "./pages/recordings.js";
import { showRecording } from "./pages/recording.js";

/** @type {(() => void) | null} cleanup of the current page (stop media, close sockets) */
let cleanup = null;

/** @param {(() => void) | null} fn */
export function onLeavePage(fn) {
  cleanup = fn;
}

/**
 * Navigate inside the app.
 * @param {string} path
 * @param {{replace?: boolean, message?: string}} [options]
 */
export function navigate(path, { replace = false, message = "" } = {}) {
  if (replace) history.replaceState({ message }, "", path);
  else history.pushState({ message }, "", path);
  route();
}

/** Go to sign-in, coming back to `next` afterwards. @param {string} message @param {string} [next] */
export function goToSignIn(message, next = location.pathname) {
  setToken(null);
  const query = next && next !== "/" ? `?next=${encodeURIComponent(next)}` : "";
  navigate(`/${query}`, { replace: true, message });
}

export const SESSION_EXPIRED = "Your session has expired. Please sign in again.";

setUnauthorizedHandler((/** @type {ApiError} */ _error) => goToSignIn(SESSION_EXPIRED));

export function route() {
  if (cleanup) {
    const previous = cleanup;
    cleanup = null;
    previous();
  }
  const message = (history.state && history.state.message) || "";
  const path = location.pathname;
  const meeting = path.match(/^\/m\/([^/]+)\/?$/);
  const recording = path.match(/^\/recordings\/([^/]+)\/?$/);
  const recordings = /^\/recordings\/?$/.test(path);
  if (!getToken()) {
    if (meeting) {
      goToSignIn("Sign in to join the meeting.", path);
      return;
    }
    if (recording || recordings) {
      goToSignIn("Sign in to see the recordings.", path.replace(/\/$/, ""));
      return;
    }
    showSignIn(message, safeNext(new URLSearchParams(location.search).get("next")));
    return;
  }
  if (meeting) {
    showMeeting(decodeURIComponent(meeting[1]));
    return;
  }
  if (recordings) {
    showRecordings(message);
    return;
  }
  if (recording) {
    showRecording(decodeURIComponent(recording[1]));
    return;
  }
  const next = safeNext(new URLSearchParams(location.search).get("next"));
  if (next) {
    navigate(next, { replace: true });
    return;
  }
  showDashboard(message);
}

/** Only same-app paths are followed after sign-in. @param {string | null} next */
export function safeNext(next) {
  return next && /^\/(m\/[A-Za-z0-9_-]+|recordings(\/\d+)?)$/.test(next) ? next : "";
}

window.addEventListener("popstate", route);
document.addEventListener("click", (event) => {
  // Internal links navigate without reloading the page.
  const target = event.target instanceof Element ? event.target.closest("a[data-internal]") : null;
  if (!target || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  const link = /** @type {HTMLAnchorElement} */ (target);
  navigate(link.pathname + link.search);
});

route();
