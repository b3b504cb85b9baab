// Side panels (chat, people, the waiting room's queue): each has a
// toggle button in the controls (`aria-expanded`) and a close button in its heading. One is
// open at a time; Escape closes it and focus goes back to its button. While one is open the
// room has the class `panel-open`.

import { icon } from "../icons.js";
import { h } from "../widgets.js";

/**
 * @typedef {object} Panel
 * @property {HTMLElement} panel
 * @property {HTMLElement} button the toggle in the controls
 * @property {HTMLElement} close the close button in the panel's heading
 * @property {() => void} [opened] called after the panel opened
 */

/**
 * A panel's frame: an <aside id="{name}-panel"> headed by <h2 id="{name}-heading"> and a close
 * button, then the content.
 * @param {{name: string, testid: string, heading: string, closeLabel: string}} options
 * @param {...(Node | string | null)} content
 */
export function panelFrame({ name, testid, heading, closeLabel }, ...content) {
  const id = `${name}-panel`;
  const headingId = `${name}-heading`;
  const close = h("button", { type: "button", class: "icon", "aria-label": closeLabel }, icon("close"));
  const panel = h("aside", { class: "panel", id, "data-testid": testid, "aria-labelledby": headingId, hidden: true },
    h("div", { class: "panel-head" }, h("h2", { id: headingId }, heading), close),
    ...content);
  return { panel, close };
}

/**
 * Make the panels toggle, one at a time, inside the room.
 * @param {HTMLElement} room
 * @param {Panel[]} panels
 */
export function connectPanels(room, panels) {
  /** @param {Panel} which @param {boolean} [open] */
  function toggle(which, open) {
    const show = open === undefined ? which.panel.hidden : open;
    which.panel.hidden = !show;
    which.button.setAttribute("aria-expanded", String(show));
    room.classList.toggle("panel-open", show || panels.some((p) => p !== which && !p.panel.hidden));
    if (show) {
      for (const other of panels) {
        if (other === which) continue;
        other.panel.hidden = true;
        other.button.setAttribute("aria-expanded", "false");
      }
      room.classList.add("panel-open");
      which.opened?.();
    } else {
      which.button.focus();
    }
  }

  for (const which of panels) {
    which.button.addEventListener("click", () => toggle(which));
    which.close.addEventListener("click", () => toggle(which, false));
  }
  room.addEventListener("keydown", (event) => {
    const open = panels.find((p) => !p.panel.hidden);
    if (event.key === "Escape" && open) toggle(open, false);
  });
}
