// finsent console: silence create/expire with a bearer token the analyst types (never stored), and a 30 s
// refresh. The refresh fetches the page and swaps its body in: a daemon that is down or restarting leaves the
// page as it was under a banner saying since when, and it is retried with a bounded backoff (a blind
// location.reload() left the tab on the browser's error page, which has no script, for good). A form is "in
// use" for 2 minutes after a text box in it got focus or was typed in, and a note says the refresh is paused
// (any value left typed paused it for good, with the clock bar showing old event time as current; then any
// focus left in a form did, the submit button's after a refused silence included; all found by review).
// Notes give the event time the page shows (#event-now), not when it was fetched. A 503 page from the daemon
// names the dependency that is down: the banner says so rather than "unreachable". Handlers are delegated to
// the document, so they survive the swap.
"use strict";
(function () {
  // tests shorten these (window.FINSENT_CONSOLE_TIMING, set before this script runs)
  const timing = Object.assign({ refreshMs: 30000, typingMs: 120000, firstRetryMs: 5000, fetchTimeoutMs: 20000 },
    window.FINSENT_CONSOLE_TIMING || {});
  let lastTyped = -Infinity;
  let lastFocused = -Infinity;
  let loadedAt = new Date();
  let eventNow = shownEventTime();
  let failingSince = null;
  let failures = 0;
  let timer = null;

  function say(text, ok) {
    const out = document.getElementById("silence-result");
    if (!out) return;
    out.textContent = text;
    out.className = ok ? "ok" : "err";
  }

  async function call(method, path, body) {
    const tokenInput = document.querySelector("#silence-form [name=token]");
    const token = tokenInput ? tokenInput.value.trim() : "";
    if (!token) { say("Type the API token first.", false); return null; }
    const init = { method: method, headers: { "Authorization": "Bearer " + token } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try { resp = await fetch(path, init); } catch (e) { say("The daemon did not answer: " + e.message, false); return null; }
    let answer = {};
    try { answer = await resp.json(); } catch (e) { answer = { error: resp.statusText }; }
    if (!resp.ok) { say(resp.status + ": " + (answer.error || resp.statusText), false); return null; }
    return answer;
  }

  document.addEventListener("submit", async function (ev) {
    const form = ev.target;
    if (!form || form.id !== "silence-form") return;
    ev.preventDefault();
    const f = form.elements;
    const answer = await call("POST", "/silences", {
      matcher: f.namedItem("matcher").value.trim(),
      duration_s: parseInt(f.namedItem("duration").value, 10),
      comment: f.namedItem("comment").value,
      created_by: f.namedItem("created_by").value,
    });
    const active = document.activeElement;  // the submit button, whatever the answer: it holds no typing
    if (active && active.matches && active.matches("button, input[type=submit]")) active.blur();
    if (answer) { say("Silence " + answer.id + " created.", true); setTimeout(function () { refresh(true); }, 400); }
  });

  document.addEventListener("click", async function (ev) {
    const button = ev.target && ev.target.closest ? ev.target.closest("button.expire") : null;
    if (!button) return;
    const answer = await call("DELETE", "/silences/" + encodeURIComponent(button.dataset.id));
    if (answer) { say("Silence " + answer.expired + " expired.", true); setTimeout(function () { refresh(true); }, 400); }
  });

  function inForm(node) { return !!(node && node.closest && node.closest("form")); }

  // a control text is typed in (not a button, checkbox or radio: a clicked submit button kept its focus)
  function textEntry(node) {
    if (!inForm(node) || !node.matches) return false;
    return node.matches("textarea, select") ||
      (node.matches("input") && !node.matches("[type=submit], [type=button], [type=reset], [type=checkbox], " +
                                              "[type=radio], [type=image], [type=hidden]"));
  }

  document.addEventListener("input", function (ev) {
    if (inForm(ev.target)) { lastTyped = Date.now(); showPaused(); }
  });
  let restoring = false;  // a refresh giving the focus back is no use of the form
  document.addEventListener("focusin", function (ev) {
    if (!restoring && textEntry(ev.target)) { lastFocused = Date.now(); showPaused(); }
  });

  // focus left in a text box counts for typingMs after it came there, and only while the tab has focus
  function busy() {
    const now = Date.now();
    if (now - lastTyped < timing.typingMs) return true;
    return textEntry(document.activeElement) && document.hasFocus() && now - lastFocused < timing.typingMs;
  }

  function utc(date) { return date.toISOString().slice(11, 19) + " UTC"; }

  function shownEventTime() {
    const now = document.getElementById("event-now");
    return now ? now.textContent.trim() : "";
  }

  // what the page shows: its event time (the clock bar's), and when it was fetched (the wall clock)
  function shown() {
    return "this page shows " + (eventNow ? "event time up to " + eventNow + ", fetched " : "what was fetched at ") +
      utc(loadedAt) + " (wall clock)";
  }

  // a bar under the clock (made here: it is only ever needed with this script running)
  function notice(text, alarm) {
    let bar = document.getElementById("refresh-state");
    if (!text) { if (bar) bar.remove(); return; }
    if (!bar) {
      bar = document.createElement("section");
      bar.id = "refresh-state";
      bar.className = "clockbar";
      bar.setAttribute("role", "status");
      const clock = document.getElementById("clock");
      if (clock) clock.after(bar); else document.body.prepend(bar);
    }
    const line = document.createElement("div");
    line.className = "note";
    const words = document.createElement(alarm ? "b" : "span");
    if (alarm) words.className = "neg";
    words.textContent = text;
    line.appendChild(words);
    bar.replaceChildren(line);
  }

  function showPaused() {
    if (failingSince) return;  // the outage banner says more
    notice("Auto-refresh paused while a form is in use (it resumes once nothing was typed in it for " +
      Math.round(timing.typingMs / 1000) + " s): " + shown() + ".", false);
  }

  // where a control is on the page: its form's id (or its place among the forms) and its name (or id)
  function fieldKey(node) {
    const form = node.closest("form");
    const forms = Array.prototype.indexOf.call(document.forms, form);
    return (form && form.id ? form.id : "form" + forms) + "/" + (node.name || node.id || "");
  }

  function typedValues() {
    const kept = {};
    document.querySelectorAll("form input, form textarea, form select").forEach(function (node) {
      if (!textEntry(node)) return;
      const typed = node.matches("select") ? Array.prototype.some.call(node.options, function (o) {
        return o.selected !== o.defaultSelected; }) : node.value !== node.defaultValue;
      if (typed) kept[fieldKey(node)] = node.value;
    });
    return kept;
  }

  // a refresh keeps what was typed and not sent, and the focus: it replaced a half-typed silence form of an
  // analyst who had looked at another tab for two minutes (found by the regression review)
  function restoreValues(kept, focusKey, selection) {
    document.querySelectorAll("form input, form textarea, form select").forEach(function (node) {
      if (!textEntry(node)) return;
      const key = fieldKey(node);
      if (Object.prototype.hasOwnProperty.call(kept, key)) node.value = kept[key];
      if (key === focusKey) {
        restoring = true;
        try { node.focus(); } finally { restoring = false; }
        if (selection && typeof node.setSelectionRange === "function") {
          try { node.setSelectionRange(selection[0], selection[1]); } catch (e) { /* not a text input */ }
        }
      }
    });
  }

  function swap(html) {
    const next = new DOMParser().parseFromString(html, "text/html");
    next.querySelectorAll("script").forEach(function (s) { s.remove(); });  // this one keeps running
    const kept = typedValues();
    const active = document.activeElement;
    const focusKey = textEntry(active) ? fieldKey(active) : null;
    const selection = focusKey && typeof active.selectionStart === "number" ?
      [active.selectionStart, active.selectionEnd] : null;
    document.title = next.title;
    document.body.replaceWith(document.adoptNode(next.body));
    restoreValues(kept, focusKey, selection);
    loadedAt = new Date();
    eventNow = shownEventTime();
    failingSince = null;
    failures = 0;
  }

  async function fetchPage() {
    const abort = new AbortController();
    const stop = setTimeout(function () { abort.abort(); }, timing.fetchTimeoutMs);
    try {
      const resp = await fetch(location.href, { headers: { "Accept": "text/html" }, cache: "no-store",
                                                signal: abort.signal });
      const type = resp.headers.get("Content-Type") || "";
      const html = type.indexOf("text/html") !== -1;
      // a 404 or 400 page is still this page's answer; a 5xx (a dependency down) or anything else is not
      if (resp.status === 503 && html) {
        const reason = dependencyDown(await resp.text());
        if (reason) {
          return { problem: "Daemon up, a dependency is unreachable", detail: ": " + reason + " (see /readyz)" };
        }
      }
      // not the daemon's own page: a reverse proxy answers 502/504 for a daemon that is down (regression review)
      if (resp.status >= 500 || !html) return { problem: "Daemon or its proxy answering " + resp.status, detail: "" };
      return { html: await resp.text() };
    } catch (e) {
      return { problem: "Daemon unreachable", detail: " (" + (abort.signal.aborted ? "no answer in " +
        Math.round(timing.fetchTimeoutMs / 1000) + " s" : "no connection") + ")" };
    } finally {
      clearTimeout(stop);
    }
  }

  // the reason a 503 page of monitor/web/errors.py gives ("" for any other page, e.g. a proxy's)
  function dependencyDown(html) {
    const reason = new DOMParser().parseFromString(html, "text/html").querySelector("main p.err");
    return reason ? reason.textContent.trim().slice(0, 300) : "";
  }

  async function refresh(force) {
    clearTimeout(timer);
    if (!force && busy()) { showPaused(); timer = setTimeout(refresh, timing.refreshMs); return; }
    const got = await fetchPage();
    if (got.html !== undefined) {
      if (!force && busy()) { showPaused(); timer = setTimeout(refresh, timing.refreshMs); return; }
      swap(got.html);
      timer = setTimeout(refresh, timing.refreshMs);
      return;
    }
    failures += 1;
    failingSince = failingSince || new Date();
    const delay = Math.min(timing.refreshMs, timing.firstRetryMs * Math.pow(2, failures - 1));
    notice(got.problem + " since " + utc(failingSince) + got.detail + ", retrying in " + Math.round(delay / 1000) +
      " s: " + shown() + " and does not change until the page can be fetched again.", true);
    timer = setTimeout(refresh, delay);
  }

  timer = setTimeout(refresh, timing.refreshMs);
})();
