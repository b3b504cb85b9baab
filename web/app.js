// Minimal client: sign in and list your meetings (the full client lives in later pages).
const app = document.getElementById("app");
const TOKEN_KEY = "tertulia.token";

async function api(path, options = {}) {
  const token = localStorage.getItem(TOKEN_KEY);
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw Object.assign(new Error(body.error.message), { status: response.status });
  return body;
}

function signInForm(message = "") {
  app.innerHTML = `<h1>Tertulia</h1>
    <form id="login"><label>E-mail <input name="email" type="email" required autocomplete="username"></label>
    <label>Password <input name="password" type="password" required autocomplete="current-password"></label>
    <button>Sign in</button><p class="error" role="alert"></p></form>`;
  const form = app.querySelector("#login");
  form.querySelector(".error").textContent = message;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    try {
      const { token } = await api("/api/auth/login", { method: "POST", body: JSON.stringify(data) });
      localStorage.setItem(TOKEN_KEY, token);
      await dashboard();
    } catch (error) {
      form.querySelector(".error").textContent = error.message;
    }
  });
}

async function dashboard() {
  try {
    const me = await api("/api/me");
    const { items } = await api("/api/meetings");
    app.innerHTML = `<h1>Tertulia</h1><p>Signed in as <strong></strong>. <button id="out">Sign out</button></p>
      <h2>Your meetings</h2><ul id="meetings"></ul>`;
    app.querySelector("strong").textContent = me.display_name;
    const list = app.querySelector("#meetings");
    for (const meeting of items) {
      const item = document.createElement("li");
      item.textContent = `${meeting.title} (${meeting.status}) — ${meeting.join_url}`;
      list.append(item);
    }
    app.querySelector("#out").addEventListener("click", () => {
      localStorage.removeItem(TOKEN_KEY);
      signInForm();
    });
  } catch (error) {
    localStorage.removeItem(TOKEN_KEY);
    signInForm(error.status === 401 ? "Your session has expired; sign in again." : error.message);
  }
}

if (localStorage.getItem(TOKEN_KEY)) dashboard(); else signInForm();
