// The entry point: the single-page app's routes over the paths the server serves
// (index.html). Pages move on with nav.js; this module only chooses the page.
//   /                 sign-in (signed out) or dashboard (signed in); `?next=/m/ID` returns there
//   /m/{room_id}      pre-join check, then the meeting room
//   /recordings       the recordings library (admins: all; hosts: their meetings')
//   /recordings/{id}  one recording: player, tracks, composition progress, delete
//   /audit            the audit trail (administrators)

import { ApiError, getToken, setUnauthorizedHandler } from "./api.js";
import { goToSignIn, leavePage, navigate, SESSION_EXPIRED, setRouter } from "./nav.js";
import { showSignIn } from "./pages/signin.js";
import { showDashboard } from "./pages/dashboard.js";
import { showMeeting } from "./pages/meeting.js";
import { showRecordings } from "./pages/recordings.js";
import { showRecording } from "./pages/recording.js";
import { showAudit } from "./pages/audit.js";

setUnauthorizedHandler((/** @type {ApiError} */ _error) => goToSignIn(SESSION_EXPIRED));

function route() {
  leavePage();
  const message = (history.state && history.state.message) || "";
  const path = location.pathname;
  const meeting = path.match(/^\/m\/([^/]+)\/?$/);
  const recording = path.match(/^\/recordings\/([^/]+)\/?$/);
  const recordings = /^\/recordings\/?$/.test(path);
  const audit = /^\/audit\/?$/.test(path);
  if (!getToken()) {
    if (meeting) {
      goToSignIn("Sign in to join the meeting.", path);
      return;
    }
    if (recording || recordings) {
      goToSignIn("Sign in to see the recordings.", path.replace(/\/$/, ""));
      return;
    }
    if (audit) {
      goToSignIn("Sign in to read the audit trail.", "/audit");
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
  if (audit) {
    showAudit(message);
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
  return next && /^\/(m\/[A-Za-z0-9_-]+|recordings(\/\d+)?|audit)$/.test(next) ? next : "";
}

setRouter(route);
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
