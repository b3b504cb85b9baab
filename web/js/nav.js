// Moving between pages: navigate(), going to sign-in and back, and the current page's
// cleanup. The pages import this module, never app.js (the entry point that routes), so no
// page depends on the router and no module imports itself round a cycle.

import { setToken } from "./api.js";

export const SESSION_EXPIRED = "Your session has expired. Please sign in again.";

/** @type {() => void} shows the page for the current location (app.js sets it) */
let router = () => {};

/** @type {(() => void) | null} cleanup of the current page (stop media, close sockets) */
let cleanup = null;

/** @param {() => void} route */
export function setRouter(route) {
  router = route;
}

/** What to do when the person leaves the current page. @param {(() => void) | null} fn */
export function onLeavePage(fn) {
  cleanup = fn;
}

/** Run (once) the cleanup the current page registered. */
export function leavePage() {
  if (cleanup) {
    const previous = cleanup;
    cleanup = null;
    previous();
  }
}

/**
 * Navigate inside the app.
 * @param {string} path
 * @param {{replace?: boolean, message?: string}} [options]
 */
export function navigate(path, { replace = false, message = "" } = {}) {
  if (replace) history.replaceState({ message }, "", path);
  else history.pushState({ message }, "", path);
  router();
}

/** Go to sign-in, coming back to `next` afterwards. @param {string} message @param {string} [next] */
export function goToSignIn(message, next = location.pathname) {
  setToken(null);
  const query = next && next !== "/" ? `?next=${encodeURIComponent(next)}` : "";
  navigate(`/${query}`, { replace: true, message });
}
