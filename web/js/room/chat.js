// The chat panel and its toggle button: the history from the welcome, sending, messages as
// they come, the unread count while the panel is closed, the server's refusals (chat off,
// message too long). Files in chat would come here (with a request in protocol.js).

import { icon } from "../icons.js";
import { h, messageOf } from "../widgets.js";
import { panelFrame } from "./panels.js";

/** @typedef {import("../protocol.js").ChatMessage} ChatMessage */
/** @typedef {import("../protocol.js").MeetingSession} MeetingSession */

/** @param {ChatMessage} message @param {boolean} mine */
export function chatItem(message, mine) {
  const time = new Date(message.created_at).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (message.kind === "system" || !message.author) {
    return h("li", { class: "system", "data-testid": "chat-message" }, message.text);
  }
  return h("li", { class: mine ? "mine" : "", "data-testid": "chat-message" },
    h("div", { class: "meta" }, h("strong", {}, message.author.display_name), " ", h("time", { datetime: message.created_at }, time)),
    h("div", { class: "text" }, message.text));
}

/**
 * @param {object} options
 * @param {Pick<MeetingSession, "welcome" | "chat" | "sendChat">} options.session
 * @param {boolean} options.enabled the meeting allows chat
 */
export function createChat({ session, enabled }) {
  const list = h("ol", { class: "chat-list", "data-testid": "chat-list", "aria-live": "polite" });
  const input = h("input", { id: "chat-input", maxLength: 2000, autocomplete: "off", "data-testid": "chat-input", placeholder: "Write a message" });
  const error = h("p", { class: "error", role: "alert", "data-testid": "chat-error" });
  const form = h("form", { class: "chat-form" }, h("label", { for: "chat-input", class: "visually-hidden" }, "Message"), input,
    h("button", { type: "submit", "data-testid": "chat-send" }, "Send"));
  const { panel, close } = panelFrame({ name: "chat", testid: "chat-panel", heading: "Chat", closeLabel: "Close chat" },
    list, error, enabled ? form : h("p", { class: "muted" }, "Chat is off in this meeting."));
  const unreadBadge = h("span", { class: "badge-count", "data-testid": "chat-unread", hidden: true });
  const button = h("button", { type: "button", class: "control", "data-testid": "toggle-chat", "aria-expanded": "false", "aria-controls": "chat-panel" },
    icon("chat"), h("span", { class: "label" }, "Chat"), unreadBadge);
  let unread = 0;

  /** @param {ChatMessage} message */
  function isMine(message) {
    return !!message.author && !!session.welcome && message.author.user_id === session.welcome.you.user_id;
  }

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  /** Show the whole history (the welcome's, and what came since). */
  function showHistory() {
    list.replaceChildren(...session.chat.map((m) => chatItem(m, isMine(m))));
    scrollToEnd();
  }

  /** A message arrived (ours come back too). @param {ChatMessage} message */
  function received(message) {
    const mine = isMine(message);
    list.append(chatItem(message, mine));
    scrollToEnd();
    if (panel.hidden && !mine) {
      unread++;
      unreadBadge.textContent = String(unread);
      unreadBadge.hidden = false;
      button.setAttribute("aria-label", `Chat, ${unread} unread`);
    } else {
      button.removeAttribute("aria-label");
    }
  }

  /** The server refused something (an `error` event): say it when it is about chat. @param {{code: string, message: string}} event */
  function refused(event) {
    if (event.code === "chat-disabled" || event.code === "chat-too-long") error.textContent = event.message;
  }

  function opened() {
    unread = 0;
    unreadBadge.hidden = true;
    scrollToEnd();
    if (enabled) input.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    error.textContent = "";
    input.value = "";
    try {
      await session.sendChat(text);
    } catch (failure) {
      input.value = text;
      error.textContent = messageOf(failure);
    }
  });

  return { panel, button, close, opened, showHistory, received, refused };
}
