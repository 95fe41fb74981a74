// finsent console: silence create/expire with a bearer token the analyst types (never stored),
// and a 30 s refresh that waits while a form is being filled in.
"use strict";
(function () {
  const form = document.getElementById("silence-form");
  const out = document.getElementById("silence-result");
  const tokenInput = form ? form.elements.namedItem("token") : null;

  function say(text, ok) {
    if (!out) return;
    out.textContent = text;
    out.className = ok ? "ok" : "err";
  }

  async function call(method, path, body) {
    const token = tokenInput ? tokenInput.value.trim() : "";
    if (!token) { say("Type the API token first.", false); return null; }
    const init = { method: method, headers: { "Authorization": "Bearer " + token } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    let answer = {};
    try { answer = await resp.json(); } catch (e) { answer = { error: resp.statusText }; }
    if (!resp.ok) { say(resp.status + ": " + (answer.error || resp.statusText), false); return null; }
    return answer;
  }

  if (form) {
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const f = form.elements;
      const answer = await call("POST", "/silences", {
        matcher: f.namedItem("matcher").value.trim(),
        duration_s: parseInt(f.namedItem("duration").value, 10),
        comment: f.namedItem("comment").value,
        created_by: f.namedItem("created_by").value,
      });
      if (answer) { say("Silence " + answer.id + " created.", true); setTimeout(function () { location.reload(); }, 400); }
    });
  }
  document.querySelectorAll("button.expire").forEach(function (button) {
    button.addEventListener("click", async function () {
      const answer = await call("DELETE", "/silences/" + encodeURIComponent(button.dataset.id));
      if (answer) { say("Silence " + answer.expired + " expired.", true); setTimeout(function () { location.reload(); }, 400); }
    });
  });

  function busy() {
    const active = document.activeElement;
    if (active && active.closest && active.closest("form")) return true;
    return Array.from(document.querySelectorAll("form input")).some(function (i) { return i.value !== i.defaultValue; });
  }
  setInterval(function () { if (!busy()) location.reload(); }, 30000);
})();
