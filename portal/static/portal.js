// vdedup portal: a few enhancements; every page works without them.
"use strict";

function capitalize(s) { return s ? s.charAt(0).toUpperCase() + s.slice(1) : s; }

// Connect Database: the secret's name and an example address follow the provider.
function setupConnect() {
  const provider = document.getElementById("provider");
  if (!provider) return;
  const update = () => {
    const opt = provider.options[provider.selectedIndex];
    document.getElementById("secret-label").textContent = capitalize(opt.dataset.secret);
    document.getElementById("url").placeholder = opt.dataset.example;
  };
  provider.addEventListener("change", update);
  update();
}

// Restore: show the fields of the chosen mode only.
function setupRestore() {
  const radios = document.querySelectorAll("input[name=mode]");
  if (!radios.length) return;
  const update = () => {
    const chosen = document.querySelector("input[name=mode]:checked");
    const mode = chosen ? chosen.value : "";
    document.querySelectorAll(".mode-detail").forEach((el) => {
      el.hidden = !el.dataset.mode.split(" ").includes(mode);
    });
  };
  radios.forEach((r) => r.addEventListener("change", update));
  update();
}

// A job: poll its progress until it ends, then show the final page.
function setupJob() {
  const statusEl = document.getElementById("job-status");
  if (!statusEl || statusEl.dataset.finished === "yes") return;
  const id = statusEl.dataset.job;
  const phases = document.getElementById("phases");
  const elapsed = document.getElementById("elapsed");
  const fmt = (n) => (n === null || n === undefined) ? "" : n.toLocaleString("en-US");
  const poll = async () => {
    let data;
    try {
      const r = await fetch(`/jobs/${id}/status`, {credentials: "same-origin", cache: "no-store"});
      if (!r.ok) throw new Error(String(r.status));
      data = await r.json();
    } catch (e) {
      setTimeout(poll, 2000);
      return;
    }
    if (data.finished) { window.location.reload(); return; }
    phases.replaceChildren(...data.phases.map((p) => {
      const box = document.createElement("div");
      box.className = "phase" + (p.finished ? " finished" : "");
      const head = document.createElement("div");
      head.className = "phase-head";
      const name = document.createElement("span");
      name.textContent = p.name;
      const count = document.createElement("span");
      count.className = "muted";
      count.textContent = fmt(p.done) + (p.total !== null ? " / " + fmt(p.total) : "");
      head.append(name, count);
      const bar = document.createElement("div");
      bar.className = "bar" + (p.percent === null ? " indeterminate" : "");
      const fill = document.createElement("div");
      fill.className = "fill w" + (Math.floor((p.percent || 0) / 5) * 5);
      bar.append(fill);
      box.append(head, bar);
      return box;
    }));
    const q = document.getElementById("queued");
    if (q && data.status !== "queued") q.remove();
    elapsed.textContent = data.seconds + " s";
    setTimeout(poll, 600);
  };
  setTimeout(poll, 400);
}

document.addEventListener("DOMContentLoaded", () => {
  setupConnect();
  setupRestore();
  setupJob();
});
