// Widgets shared by the pages: the h() element builder, page title and focus, the confirm
// <dialog>, and small formatting helpers (times, durations, sizes, error messages).

/**
 * Create an element. Attributes starting with "on" become listeners; `dataset`-style keys
 * (data-*) and aria-* are set as attributes; children may be strings or nodes. No `style`
 * attribute (the Content-Security-Policy refuses inline styles).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "style") {
      // Inline style attributes are refused by the Content-Security-Policy (style-src
      // 'self'): use a class, or el.style.setProperty() for computed values.
      throw new Error("h(): no inline style attribute; use a class or style.setProperty()");
    }
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = String(value);
    } else if (key in el && !key.includes("-")) {
      /** @type {any} */ (el)[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** @param {Element} el @param {...(Node | string)} children */
export function replace(el, ...children) {
  el.replaceChildren(...children);
}

/** The page's root element. */
export function root() {
  return /** @type {HTMLElement} */ (document.getElementById("app"));
}

/** Set the document title and move focus to the page heading, for screen readers. @param {string} title */
export function pageTitle(title) {
  document.title = title ? `${title} · Tertulia` : "Tertulia";
}

/** Focus the first heading inside an element (after navigation). @param {HTMLElement} el */
export function focusHeading(el) {
  const heading = el.querySelector("h1");
  if (heading instanceof HTMLElement) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

/** What went wrong, in the error's own words (for errors that are already meant for people). @param {unknown} error */
export function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

/** @param {string} name */
export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

/** @param {string | null} iso */
export function formatTime(iso) {
  if (!iso) return "Not scheduled";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A length of time as h:mm:ss or m:ss. @param {number} seconds */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** A file size in B, kB, MB or GB (powers of 1000). @param {number} bytes */
export function formatBytes(bytes) {
  if (bytes < 1000) return `${bytes}\u00a0B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1000;
    unit += 1;
  } while (value >= 1000 && unit < units.length - 1);
  return `${value.toLocaleString(undefined, { maximumFractionDigits: value < 10 ? 1 : 0 })}\u00a0${units[unit]}`;
}

/**
 * A modal confirmation built on <dialog>. Resolves true when confirmed.
 * @param {string} message
 * @param {string} confirmLabel
 * @returns {Promise<boolean>}
 */
export function confirmDialog(message, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "data-testid": "confirm-dialog", "aria-label": message });
    const done = (/** @type {boolean} */ value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.append(
      h("p", {}, message),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", "data-testid": "confirm-yes", onclick: () => done(true) }, confirmLabel),
        h("button", { type: "button", "data-testid": "confirm-no", onclick: () => done(false) }, "Cancel")),
    );
    dialog.addEventListener("cancel", () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * A modal confirmation with one checkbox (e.g. "Don't let them back in"). Resolves with
 * whether it was confirmed and whether the box was ticked.
 * @param {string} message
 * @param {string} confirmLabel
 * @param {string} optionLabel
 * @returns {Promise<{confirmed: boolean, checked: boolean}>}
 */
export function confirmWithOption(message, confirmLabel, optionLabel) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "data-testid": "confirm-dialog", "aria-label": message });
    const box = h("input", { type: "checkbox", id: "confirm-option", "data-testid": "confirm-option" });
    const done = (/** @type {boolean} */ confirmed) => {
      const checked = box.checked;
      dialog.close();
      dialog.remove();
      resolve({ confirmed, checked });
    };
    dialog.append(
      h("p", {}, message),
      h("p", {}, h("label", { class: "check", for: "confirm-option" }, box, " ", optionLabel)),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", "data-testid": "confirm-yes", onclick: () => done(true) }, confirmLabel),
        h("button", { type: "button", "data-testid": "confirm-no", onclick: () => done(false) }, "Cancel")),
    );
    dialog.addEventListener("cancel", () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * Previous / Next buttons around a "page x of y" text, hidden until a page says otherwise.
 * @param {string} label the navigation's accessible name
 * @param {string} className
 * @returns {{nav: HTMLElement, prev: HTMLButtonElement, next: HTMLButtonElement, info: HTMLElement}}
 */
export function pagerControls(label, className) {
  const prev = /** @type {HTMLButtonElement} */ (h("button", { type: "button", "data-testid": "page-prev" }, "Previous"));
  const next = /** @type {HTMLButtonElement} */ (h("button", { type: "button", "data-testid": "page-next" }, "Next"));
  const info = h("span", { class: "muted", "data-testid": "page-info" });
  const nav = h("nav", { class: `row ${className}`, "aria-label": label, hidden: true }, prev, info, next);
  return { nav, prev, next, info };
}

/** A `<input type="date">` value (local day) as the ISO instant that day starts. @param {string} day @param {number} [plusDays] */
export function dayStart(day, plusDays = 0) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();
}

/** An integer query parameter within [min, max], else `fallback`. @param {string | null} value @param {number} fallback @param {number} min @param {number} max */
export function intParam(value, fallback, min, max) {
  const n = Number(value);
  return value !== null && Number.isInteger(n) ? Math.min(max, Math.max(min, n)) : fallback;
}
