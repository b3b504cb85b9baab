// The signed-in person: who it is (`signedInUser`), and the header of the signed-in pages
// with their name, the Recordings link, the Audit trail link (admins) and sign-out.

import { api, ApiError, setToken } from "./api.js";
import { navigate } from "./nav.js";
import { h, messageOf } from "./widgets.js";

/**
 * The app header with the signed-in user and sign-out. The Recordings link shows for admins
 * (they see every recording); `revealRecordingsLink` shows it to hosts.
 * @param {import("./api.js").User} me
 */
export function appHeader(me) {
  const here = location.pathname.startsWith("/recordings");
  const exact = /^\/recordings\/?$/.test(location.pathname);
  const onAudit = /^\/audit\/?$/.test(location.pathname);
  return h("header", { class: "topbar" },
    h("a", { href: "/", "data-internal": true, class: "brand" }, "Tertulia"),
    h("nav", { "aria-label": "Main", "data-testid": "main-nav", hidden: !(me.role === "admin" || here) },
      h("a", {
        href: "/recordings", "data-internal": true, "data-testid": "recordings-link",
        "aria-current": exact ? "page" : here ? "true" : null,
      }, "Recordings"),
      me.role === "admin"
        ? h("a", { href: "/audit", "data-internal": true, "data-testid": "audit-link", "aria-current": onAudit ? "page" : null }, "Audit trail")
        : null),
    h("span", { class: "who", "data-testid": "signed-in-as" }, me.display_name),
    h("button", { type: "button", "data-testid": "signout", onclick: signOut }, "Sign out"));
}

/** Show the header's Recordings link (the person hosts meetings). @param {ParentNode} header */
export function revealRecordingsLink(header) {
  const nav = header.querySelector('[data-testid="main-nav"]');
  if (nav instanceof HTMLElement) nav.hidden = false;
}

export function signOut() {
  setToken(null);
  navigate("/", { replace: true, message: "You have signed out." });
}

/**
 * The signed-in user, or null after saying why not in `page` (a 401 has already sent the
 * browser to the sign-in page).
 * @param {HTMLElement} page
 * @returns {Promise<import("./api.js").User | null>}
 */
export async function signedInUser(page) {
  try {
    return await api("/api/me");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      page.replaceChildren(h("p", { class: "error", role: "alert" }, messageOf(error)));
    }
    return null;
  }
}
