// The view the person chose and what fits in it: speaker or gallery view (a switch in the room's
// bar, remembered in this browser; phones start in the speaker view), the gallery page and its
// "previous / next page" controls with the count of people not shown, who is pinned, and how
// many tiles a gallery page (9, 16 or 25) and the strip under the stage hold at the size the
// videos are drawn.

import { icon } from "../icons.js";
import { h } from "../widgets.js";

/** @typedef {import("./tiles.js").ViewName} ViewName */
/** @typedef {import("./tiles.js").Views} Views */
/** @typedef {import("./tiles.js").LayoutChoice} LayoutChoice */
/** @typedef {import("../protocol.js").Speakers} Speakers */

export const VIEW_KEY = "tertulia.view"; // localStorage: "speaker" or "gallery"
export const PHONE_WIDTH = 700; // the style sheet's breakpoint
/** Gallery pages hold 25, 16 or 9 tiles: the most whose tiles stay at least this large. */
export const PAGE_SIZES = [25, 16, 9];
export const MIN_TILE = { width: 240, height: 135 };
const GAP = 8; // .grid gap (0.5rem)
/** The strip under the stage (style.css `.grid.strip`): its tiles' width and height, and gap. */
export const STRIP = { width: 192, height: 120, gap: 8 };
export const PHONE_STRIP = { width: 128, height: 96, gap: 5.6 };
export const PAGER_HEIGHT = 44; // the pager's row under the gallery

/**
 * How many tiles a gallery page holds in a box of this size (CSS pixels).
 * @param {number} width
 * @param {number} height
 */
export function pageSizeFor(width, height) {
  for (const n of PAGE_SIZES) {
    const side = Math.sqrt(n);
    const tileWidth = (width - (side - 1) * GAP) / side;
    const tileHeight = (height - (side - 1) * GAP) / side;
    if (tileWidth >= MIN_TILE.width && tileHeight >= MIN_TILE.height) return n;
  }
  return PAGE_SIZES[PAGE_SIZES.length - 1];
}

/**
 * How many tiles fit side by side in the strip under the stage.
 * @param {number} width
 * @param {boolean} phone
 */
export function stripSizeFor(width, phone) {
  const strip = phone ? PHONE_STRIP : STRIP;
  return Math.max(1, Math.floor((width + strip.gap) / (strip.width + strip.gap)));
}

/** Phones start in the speaker view, larger windows in the gallery. @param {number} width */
export function defaultView(width) {
  return width <= PHONE_WIDTH ? "speaker" : "gallery";
}

/**
 * The view remembered in this browser, else the default for the window's width.
 * @param {Pick<Storage, "getItem"> | null} storage
 * @param {number} width
 * @returns {ViewName}
 */
export function savedView(storage, width) {
  try {
    const saved = storage ? storage.getItem(VIEW_KEY) : null;
    if (saved === "speaker" || saved === "gallery") return saved;
  } catch {
    // storage refused (private mode): the default
  }
  return defaultView(width);
}

/**
 * @param {object} options
 * @param {Pick<Storage, "getItem" | "setItem"> | null} options.storage where the view is remembered
 * @param {() => number} options.windowWidth
 * @param {() => {width: number, height: number}} options.box the videos' box (CSS pixels)
 * @param {() => void} options.changed the choice changed: show the room again
 */
export function createView({ storage, windowWidth, box, changed }) {
  const state = {
    /** @type {ViewName} */
    view: savedView(storage, windowWidth()),
    page: 0,
    /** @type {string | null} */
    pinned: null,
  };

  const viewSwitch = h("button", { type: "button", class: "view-switch", "data-testid": "view-switch" });
  const previous = h("button", { type: "button", class: "icon", "data-testid": "page-previous", "aria-label": "Previous page", title: "Previous page" }, icon("previous"));
  const next = h("button", { type: "button", class: "icon", "data-testid": "page-next", "aria-label": "Next page", title: "Next page" }, icon("next"));
  const count = h("span", { "data-testid": "page-count" });
  const notShown = h("span", { class: "not-shown", "data-testid": "not-shown" });
  const pager = h("nav", { class: "pager", "data-testid": "pager", "aria-label": "Pages of the gallery", hidden: true },
    previous, count, next, notShown);
  let pages = 1;

  viewSwitch.addEventListener("click", () => setView(state.view === "gallery" ? "speaker" : "gallery"));
  previous.addEventListener("click", () => goTo(state.page - 1));
  next.addEventListener("click", () => goTo(state.page + 1));

  /** @param {ViewName} view */
  function setView(view) {
    state.view = view;
    try {
      storage?.setItem(VIEW_KEY, view);
    } catch {
      // not remembered: still switched
    }
    changed();
  }

  /** @param {number} page */
  function goTo(page) {
    const wanted = Math.min(Math.max(0, page), pages - 1);
    if (wanted === state.page) return;
    state.page = wanted;
    changed();
  }

  /** Pin someone (or unpin them if they are pinned). @param {string} participantId */
  function togglePin(participantId) {
    state.pinned = state.pinned === participantId ? null : participantId;
    changed();
  }

  /** Forget a pin on someone who is no longer here. @param {(pid: string) => boolean} present */
  function keepPin(present) {
    if (state.pinned && !present(state.pinned)) state.pinned = null;
  }

  /**
   * The choice for tileViews(): the view, page and pin, and what fits in the videos' box.
   * @param {Speakers | null} speakers
   * @returns {LayoutChoice}
   */
  function choice(speakers) {
    const phone = windowWidth() <= PHONE_WIDTH;
    let { width, height } = box();
    if (!(width > 0 && height > 0)) {
      width = windowWidth();
      height = window.innerHeight;
    }
    return {
      view: state.view,
      page: state.page,
      pageSize: pageSizeFor(width, height - PAGER_HEIGHT),
      stripSize: stripSizeFor(width, phone),
      pinned: state.pinned,
      speakers,
    };
  }

  /** Show the switch and the pager for what is drawn. @param {Views} views */
  function show(views) {
    state.page = views.page;
    pages = views.pages;
    const other = state.view === "gallery" ? "speaker" : "gallery";
    const label = other === "speaker" ? "Speaker view" : "Gallery view";
    viewSwitch.dataset.view = state.view;
    viewSwitch.setAttribute("aria-label", `Switch to the ${other} view`);
    viewSwitch.title = `Switch to the ${other} view`;
    if (viewSwitch.dataset.shows !== other) {
      viewSwitch.dataset.shows = other;
      viewSwitch.replaceChildren(icon(other), h("span", { class: "label" }, label));
    }
    const paged = views.layout === "gallery" && views.pages > 1;
    pager.hidden = !paged && views.notShown === 0;
    previous.hidden = next.hidden = count.hidden = !paged;
    previous.disabled = views.page === 0;
    next.disabled = views.page >= views.pages - 1;
    count.textContent = `Page ${views.page + 1} of ${views.pages}`;
    notShown.hidden = views.notShown === 0;
    notShown.textContent = `${views.notShown} not shown`;
    notShown.title = `${views.notShown} ${views.notShown === 1 ? "person" : "people"} in the meeting not shown${paged ? " on this page" : ""}`;
  }

  return { state, viewSwitch, pager, choice, show, setView, goTo, togglePin, keepPin };
}
