// The settings page: takes the user's token (URL fragment `#token=…&group=…`, or a
// `postMessage` `{type: "calsync:token", token, group_id}` from an allowed parent origin),
// finds the user's sync group, and renders the connect form, the linked calendars and the
// conflicts.

import { call, setToken, hasToken, whenExpired, seg } from "./api.js";
import { fill, h, userZone } from "./dom.js";
import { connectForm } from "./connect.js";
import { renderLinks } from "./links.js";
import { renderConflicts } from "./conflicts.js";

const $ = (id) => document.getElementById(id);
const parentOrigins = (document.querySelector('meta[name="calsync-parent-origins"]')?.content || "")
  .split(" ")
  .filter(Boolean);

let group = null;
let reloading = null;
let reloadAgain = false;

/** Say `text` in the page's live status line (read out by screen readers). */
function announce(text) {
  $("status").textContent = text;
}

/**
 * A modal yes/no question, with a checkbox labelled `option` when one is given (unchecked
 * at first). Resolves to false when the user cancels, else to `{ option }`: whether the box
 * was checked.
 */
function confirmDialog(title, text, yes, option) {
  const dlg = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yes;
  $("confirm-option").hidden = !option;
  $("confirm-option-text").textContent = option || "";
  $("confirm-option-box").checked = false;
  // Focus goes back where it was when the question ends (WAI-ARIA APG, dialog pattern).
  const back = document.activeElement;
  return new Promise((resolve) => {
    const done = (v) => {
      dlg.close();
      if (back && back.isConnected) back.focus();
      resolve(v);
    };
    $("confirm-yes").onclick = () => done({ option: Boolean(option) && $("confirm-option-box").checked });
    $("confirm-no").onclick = () => done(false);
    dlg.oncancel = (ev) => {
      ev.preventDefault();
      done(false);
    };
    dlg.showModal();
    $("confirm-no").focus();
  });
}

const ctx = { announce, confirm: confirmDialog, reload: () => reload() };

/** The group the page works on: the one named by the embedder, else the user's first. */
async function findGroup(wanted) {
  const r = await call("GET", "/v1/groups");
  const groups = r.groups || [];
  const pick = groups.find((g) => g.group_id === wanted) || groups[0] || null;
  return pick ? pick.group_id : null;
}

/** The group, created ("My calendars") when the user has none yet. */
async function ensureGroup() {
  if (group) return group;
  const g = await call("POST", "/v1/groups", { name: "My calendars" });
  group = g.group_id;
  return group;
}

/** Load and draw the calendars and conflicts again: one load at a time, and one more after
 * it when asked meanwhile (what was asked for may have changed after the first began). */
async function reload() {
  if (reloading) {
    reloadAgain = true;
    return reloading;
  }
  reloading = (async () => {
    const links = $("links");
    const conflicts = $("conflicts");
    links.setAttribute("aria-busy", "true");
    try {
      if (!group) {
        await renderLinks(links, [], ctx);
        renderConflicts(conflicts, null, [], ctx);
        return;
      }
      const [l, c] = await Promise.all([
        call("GET", `/v1/groups/${seg(group)}/links`),
        call("GET", `/v1/groups/${seg(group)}/conflicts`),
      ]);
      renderConflicts(conflicts, group, c.conflicts || [], ctx);
      await renderLinks(links, l.links || [], ctx);
    } catch (e) {
      if (hasToken()) {
        fill(links, h("p", { class: "error" }, `Your calendars could not be loaded: ${e.message} `,
          h("button", { type: "button", onclick: () => reload() }, "Try again")));
      }
    } finally {
      links.removeAttribute("aria-busy");
      reloading = null;
      if (reloadAgain) {
        reloadAgain = false;
        reload();
      }
    }
  })();
  return reloading;
}

function showSignIn(text) {
  $("content").hidden = true;
  $("signin").hidden = false;
  $("signin-text").textContent = text;
}

async function start(token, wantedGroup) {
  setToken(token);
  $("signin").hidden = true;
  $("content").hidden = false;
  $("zone").textContent = userZone;
  try {
    group = await findGroup(wantedGroup);
  } catch (e) {
    if (hasToken()) showSignIn(`The calendar service answered: ${e.message}`);
    return;
  }
  await reload();
}

whenExpired(() => {
  showSignIn("Your sign-in has ended. Open this page again from your application.");
  for (const o of parentOrigins) window.parent.postMessage({ type: "calsync:token-expired" }, o);
});

let formWired = false;
function wireForm() {
  if (formWired) return;
  formWired = true;
  connectForm($("connect"), {
    ensureGroup,
    connected: () => reload(),
    announce,
  });
  // Back from a provider's consent window: the new calendar is listed.
  window.addEventListener("focus", () => {
    if (hasToken()) reload();
  });
}

/** Take a token from the URL fragment; true when there was one. */
function fromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (!token) return false;
  // Out of the address bar and the history at once.
  history.replaceState(null, "", location.pathname + location.search);
  start(token, params.get("group"));
  return true;
}

function boot() {
  wireForm();
  // A fragment given later (the embedder moving the frame) signs in as well.
  window.addEventListener("hashchange", fromFragment);
  if (fromFragment()) return;
  window.addEventListener("message", (ev) => {
    if (!parentOrigins.includes(ev.origin) || ev.source !== window.parent) return;
    const d = ev.data;
    if (d && d.type === "calsync:token" && typeof d.token === "string") start(d.token, d.group_id || null);
  });
  if (window.parent !== window && parentOrigins.length) {
    for (const o of parentOrigins) window.parent.postMessage({ type: "calsync:ready" }, o);
    showSignIn("Waiting for your application to sign you in…");
  } else {
    showSignIn("Open this page from your application, which signs you in. (Running calsync locally? `make serve` prints a link that does.)");
  }
}

boot();
