"""The page's style sheet and its one small script, served from /admin/ui/assets/."""

from __future__ import annotations

CSS = """
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fff; --muted: #59636e;
  --line: #d1d9e0; --accent: #0a5bd3; --bad: #b42318; --card: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1;
  --line: #30363d; --accent: #58a6ff; --bad: #ff7b72; --card: #161b22; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center;
  padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
header strong { font-size: 1.05rem; }
nav { display: flex; gap: .25rem; flex-wrap: wrap; }
nav a { padding: .35rem .7rem; border-radius: 6px; color: var(--fg); text-decoration: none; }
nav a[aria-current="page"] { background: var(--card); font-weight: 600; }
header form { margin-left: auto; }
main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
h1 { font-size: 1.3rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: .75rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: .7rem; }
.card b { display: block; font-size: 1.35rem; }
.card span { color: var(--muted); font-size: .85rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; padding: .6rem; }
figure.chart svg[role="img"] { width: 100%; height: auto; aspect-ratio: 640 / 200; display: block; }
figure.chart text { font-size: 11px; fill: var(--muted); }
figure.chart .grid { stroke: var(--line); stroke-width: 1; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
.legend { list-style: none; padding: 0; margin: .3rem 0 0; display: flex; flex-wrap: wrap;
  gap: .2rem .8rem; font-size: .85rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.bad { color: var(--bad); }
form.inline { display: inline; }
.grid-form { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr));
  gap: .6rem; align-items: end; }
label { display: grid; gap: .2rem; font-size: .85rem; color: var(--muted); min-width: 0; }
label input, label select { width: 100%; min-width: 0; }
input, select, button { font: inherit; padding: .4rem .55rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); color: var(--fg); min-height: 2.2rem; }
button { cursor: pointer; background: var(--card); }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
button.danger { color: var(--bad); }
.actions { display: flex; gap: .3rem; flex-wrap: wrap; }
.alert { min-height: 1.5rem; color: var(--bad); margin: .4rem 0; }
dialog { border: 1px solid var(--line); border-radius: 10px; max-width: min(560px, 94vw);
  width: 100%; color: var(--fg); background: var(--bg); }
dialog::backdrop { background: rgb(0 0 0 / .4); }
code.key { display: block; word-break: break-all; padding: .6rem; background: var(--card);
  border-radius: 6px; user-select: all; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--card); padding: .7rem;
  border-radius: 6px; border: 1px solid var(--line); font-size: .85rem; }
.signin { max-width: 380px; margin: 12vh auto; display: grid; gap: .8rem; }
"""

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" '
    'rx="3" fill="#0a5bd3"/><path d="M4 8h8M9 5l3 3-3 3" stroke="#fff" stroke-width="2" '
    'fill="none"/></svg>'
)

JS = r"""
"use strict";
const csrf = document.querySelector('meta[name="csrf"]')?.content || "";

async function call(method, path, body) {
  const response = await fetch(path, {
    method, credentials: "same-origin",
    headers: {"content-type": "application/json", "x-csrf-token": csrf},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error?.message || response.statusText);
  return data;
}

function list(text) { return text.split(",").map((s) => s.trim()).filter(Boolean); }
function orNull(text) { return text.trim() === "" ? null : text.trim(); }
function number(text) { return text.trim() === "" ? null : Number(text); }

function userFields(form) {
  const f = form.elements;
  return {
    rpm: number(f.rpm.value), tpm: number(f.tpm.value),
    models: list(f.models.value), routes: list(f.routes.value),
    expires_at: orNull(f.expires_at.value), budget: orNull(f.budget.value),
  };
}

function showKey(name, key) {
  const dialog = document.getElementById("key-dialog");
  dialog.querySelector("[data-name]").textContent = name;
  dialog.querySelector("code").textContent = key;
  dialog.addEventListener("close", () => location.reload(), {once: true});
  dialog.showModal();
}

function guard(form, work) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const alert = form.querySelector(".alert");
    alert.textContent = "";
    try { await work(form); } catch (error) { alert.textContent = error.message; }
  });
}

const create = document.getElementById("create-user");
if (create) guard(create, async (form) => {
  const body = {name: form.elements.name.value.trim(), ...userFields(form)};
  const made = await call("POST", "/admin/users", body);
  form.reset();
  showKey(made.name, made.key);
});

const edit = document.getElementById("edit-dialog");
if (edit) {
  const form = edit.querySelector("form");
  guard(form, async () => {
    await call("PATCH", "/admin/users/" + encodeURIComponent(form.dataset.user), userFields(form));
    edit.close();
    location.reload();
  });
  form.querySelector("[data-cancel]").addEventListener("click", () => edit.close());
}

document.querySelectorAll("[data-edit]").forEach((button) => button.addEventListener("click",
  () => {
  const user = JSON.parse(button.dataset.edit);
  const form = edit.querySelector("form");
  form.dataset.user = user.name;
  edit.querySelector("[data-name]").textContent = user.name;
  const f = form.elements;
  f.rpm.value = user.rpm ?? ""; f.tpm.value = user.tpm ?? "";
  f.models.value = user.models.join(", "); f.routes.value = user.routes.join(", ");
  f.expires_at.value = user.expires_at ?? "";
  f.budget.value = user.budget ? `${user.budget.amount}/${user.budget.period}` : "";
  form.querySelector(".alert").textContent = "";
  edit.showModal();
}));

document.querySelectorAll("[data-reset]").forEach((button) => button.addEventListener("click",
  async () => {
    const name = button.dataset.reset;
    if (!confirm(`Issue a new key for ${name}? The old one stops working at once.`)) return;
    try {
      const made = await call("POST", `/admin/users/${encodeURIComponent(name)}/reset`);
      showKey(made.name, made.key);
    } catch (error) { document.getElementById("list-alert").textContent = error.message; }
  }));

document.querySelectorAll("[data-delete]").forEach((button) => button.addEventListener("click",
  async () => {
    const name = button.dataset.delete;
    if (!confirm(`Delete ${name}? Its key stops working at once.`)) return;
    try {
      await call("DELETE", "/admin/users/" + encodeURIComponent(name));
      location.reload();
    } catch (error) { document.getElementById("list-alert").textContent = error.message; }
  }));

document.querySelectorAll("[data-close]").forEach((button) =>
  button.addEventListener("click", () => button.closest("dialog").close()));
"""
