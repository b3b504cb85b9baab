// Sign-in page.

import { api, ApiError, setToken } from "../api.js";
import { navigate } from "../nav.js";
import { focusHeading, h, messageOf, pageTitle, root } from "../widgets.js";

/**
 * @param {string} message shown above the form (e.g. the session expired)
 * @param {string} next where to go after signing in ("" → dashboard)
 */
export function showSignIn(message, next) {
  pageTitle("Sign in");
  const notice = h("p", { class: "notice", role: "status", "data-testid": "signin-message" }, message);
  notice.hidden = !message;
  const error = h("p", { class: "error", role: "alert", "data-testid": "signin-error" });
  const email = h("input", { name: "email", type: "email", required: true, autocomplete: "username", id: "signin-email" });
  const password = h("input", { name: "password", type: "password", required: true, autocomplete: "current-password", id: "signin-password" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "signin-submit" }, "Sign in");
  const form = h("form", { class: "card stack", "aria-labelledby": "signin-heading", novalidate: false },
    h("label", { for: "signin-email" }, "E-mail"), email,
    h("label", { for: "signin-password" }, "Password"), password,
    submit, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const result = await api("/api/auth/login", { method: "POST", body: { email: email.value, password: password.value }, auth: false });
      setToken(result.token);
      navigate(next || "/", { replace: true });
    } catch (failure) {
      error.textContent = failure instanceof ApiError && failure.code === "invalid-credentials"
        ? "The e-mail or password is not right."
        : messageOf(failure);
      submit.disabled = false;
      password.select();
    }
  });
  const page = h("section", { class: "narrow", "data-testid": "signin-page" },
    h("h1", { id: "signin-heading" }, "Sign in to Tertulia"),
    next ? h("p", {}, next.startsWith("/m/") ? "Sign in to continue to the meeting." : "Sign in to continue.") : null,
    notice, form);
  root().replaceChildren(page);
  focusHeading(page);
  email.focus();
}
