// dmgate review inbox: keyboard review (j/k move, a approve, e edit, r reject, x select)
// and live updates (polls /review/live; swaps the page content without a reload).
// No inline script anywhere: the Content-Security-Policy allows only this file.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page;
  const pollMs = Number(body.dataset.liveMs || 0);
  let current = 0;

  function rows() { return Array.from(document.querySelectorAll("#holds [data-hold-id]")); }

  function mark(index, focus) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("current", i === current));
    if (focus) { all[current].focus({ preventScroll: false }); }
    all[current].scrollIntoView({ block: "nearest" });
  }

  function selectedCount() {
    const n = document.querySelectorAll("#holds input[type=checkbox]:checked").length;
    const label = document.querySelector("[data-field=selected]");
    if (label) label.textContent = n + " selected";
    return n;
  }

  function typing(event) {
    const t = event.target;
    return t && (t.tagName === "INPUT" && t.type !== "checkbox" || t.tagName === "TEXTAREA" || t.isContentEditable);
  }

  function onInboxKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
    const all = rows();
    if (!all.length) return;
    const row = all[current];
    const open = row.querySelector("[data-action=open]").getAttribute("href");
    switch (event.key) {
      case "j": mark(current + 1, true); break;
      case "k": mark(current - 1, true); break;
      case "x": {
        const box = row.querySelector("input[type=checkbox]");
        box.checked = !box.checked; selectedCount(); break;
      }
      case "a":
        if (selectedCount() > 0) {
          document.querySelector("[data-action=bulk-approve]").click();
        } else {
          row.querySelector("[data-action=quick-approve]").click();
        }
        break;
      case "e": window.location.assign(open + "#text"); break;
      case "r":
        if (selectedCount() > 0) {
          document.getElementById("bulk-reason").focus();  // then Enter: reject the selection
        } else {
          window.location.assign(open + "#reason");
        }
        break;
      default: return;
    }
    event.preventDefault();
  }

  function onHoldKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
    const approve = document.querySelector("[data-action=approve]");
    if (!approve) return;
    if (event.key === "a") { approve.click(); }
    else if (event.key === "e") { document.getElementById("text").focus(); }
    else if (event.key === "r") { document.getElementById("reason").focus(); }
    else return;
    event.preventDefault();
  }

  function wirePresets() {
    document.querySelectorAll("[data-preset]").forEach((button) => {
      button.addEventListener("click", () => {
        const input = document.getElementById("reason");
        input.value = button.dataset.preset;
        input.focus();
      });
    });
  }

  function focusFromHash() {
    const id = window.location.hash.slice(1);
    if (id === "text" || id === "reason") {
      const el = document.getElementById(id);
      if (el) el.focus();
    }
  }

  async function swapFrom(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
    if (!resp.ok || resp.redirected) return;
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = doc.getElementById("content");
    if (!fresh) return;
    const selected = new Set(Array.from(document.querySelectorAll("#holds input:checked")).map((b) => b.value));
    const currentId = (rows()[current] || {}).dataset ? rows()[current].dataset.holdId : null;
    document.getElementById("content").replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
    body.dataset.version = doc.body.dataset.version || "";
    body.dataset.status = doc.body.dataset.status || "";
    document.title = doc.title;
    document.querySelectorAll("#holds input[type=checkbox]").forEach((b) => { b.checked = selected.has(b.value); });
    const again = rows().findIndex((r) => r.dataset.holdId === currentId);
    mark(again >= 0 ? again : current, false);
    selectedCount();
    wirePresets();
  }

  async function poll() {
    try {
      const hold = body.dataset.hold ? "?hold=" + encodeURIComponent(body.dataset.hold) : "";
      const resp = await fetch("/review/live" + hold, { credentials: "same-origin" });
      if (resp.status === 401) { window.location.assign("/review/signin"); return; }
      const state = await resp.json();
      if (page === "inbox" && state.version !== body.dataset.version) {
        await swapFrom(window.location.href);
      } else if (page === "hold" && state.status && state.status !== body.dataset.status) {
        await swapFrom(window.location.pathname + window.location.search);
      } else if (page === "hold" && state.claimed && body.dataset.status === "pending") {
        await swapFrom(window.location.pathname + window.location.search);
        body.dataset.status = "claimed";
      }
    } catch (err) {
      // The network or dmgate is briefly away: look again next time.
    }
    window.setTimeout(poll, pollMs);
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (page === "inbox") {
      mark(0, false);
      document.addEventListener("keydown", onInboxKey);
      document.addEventListener("change", selectedCount);
      document.addEventListener("click", (event) => {
        const row = event.target.closest && event.target.closest("#holds [data-hold-id]");
        if (row) mark(rows().indexOf(row), false);
      });
    } else if (page === "hold") {
      document.addEventListener("keydown", onHoldKey);
      wirePresets();
      focusFromHash();
    }
    if (pollMs > 0 && (page === "inbox" || page === "hold")) window.setTimeout(poll, pollMs);
  });
})();
