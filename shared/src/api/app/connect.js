// The "Connect a calendar" form: which fields each provider needs, its submission, and the
// API's errors shown at the field they concern (RFC 9457 `errors[].pointer`).

import { call, seg, ApiError } from "./api.js";
import { h } from "./dom.js";

/** Per provider: the fields shown, and the hint under the address field. */
export const PROVIDERS = {
  google: { fields: ["calendar_id"], oauth: true },
  outlook: { fields: ["calendar_id"], oauth: true },
  icloud: {
    fields: ["username", "password", "calendar"],
    urlHint: "",
  },
  caldav: {
    fields: ["url", "username", "password", "calendar"],
    urlHint: "The address of the calendar, or of the account or server to look for calendars on.",
  },
  ics: {
    fields: ["url"],
    urlHint: "The subscription link (webcal:// or https://) the calendar's publisher gives. It is read only.",
  },
};

const PASSWORD_HINTS = {
  icloud:
    "Use an app-specific password, not your Apple ID password: sign in at appleid.apple.com, open Sign-In and Security, choose App-Specific Passwords and create one for this app.",
  caldav: "Your calendar server's password. Some servers call it an app password or device password.",
};

const CALENDAR_ID_HINTS = {
  google: "Leave empty for your main calendar. Once it is connected, \"Other calendars of this account\" lists the rest to pick from.",
  outlook: "Leave empty for your main calendar. Once it is connected, \"Other calendars of this account\" lists the rest to pick from.",
};

/** Wire the form `form`; `ensureGroup()` gives the group id, `connected(link)` follows a connection. */
export function connectForm(form, { ensureGroup, connected, announce }) {
  const provider = form.elements.provider;
  const show = () => {
    const p = PROVIDERS[provider.value];
    for (const box of form.querySelectorAll("[data-field]")) {
      const name = box.dataset.field;
      const always = ["provider", "display_name", "frequency", "conflict_policy"].includes(name);
      box.hidden = !(always || p.fields.includes(name));
    }
    form.querySelector("#url-hint").textContent = p.urlHint || "";
    form.querySelector("#password-hint").textContent = PASSWORD_HINTS[provider.value] || "";
    form.querySelector("#calendar_id-hint").textContent = CALENDAR_ID_HINTS[provider.value] || "";
    form.querySelector("#submit-connect").textContent = p.oauth
      ? `Continue to ${provider.selectedOptions[0].textContent}`
      : "Connect calendar";
    clearErrors(form);
  };
  provider.addEventListener("change", show);
  show();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const p = PROVIDERS[provider.value];
    const val = (n) => form.elements[n].value.trim();
    const button = form.querySelector("#submit-connect");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    announce("Connecting…");
    let tab = null;
    try {
      if (p.oauth) tab = consentWindow("the button");
      const group = await ensureGroup();
      if (p.oauth) {
        const body = {
          display_name: val("display_name") || undefined,
          calendar_id: val("calendar_id") || undefined,
          frequency: val("frequency"),
          conflict_policy: val("conflict_policy"),
        };
        const before = await linkIds(group);
        const r = await call("POST", `/v1/groups/${seg(group)}/links/oauth/${seg(provider.value)}`, body);
        tab.location.href = r.consent_url;
        announce("Finish signing in in the new window; the calendar appears below when it is connected.");
        watchConsent(tab, group, before, { connected, announce });
        return;
      }
      const body = {
        provider: provider.value,
        frequency: val("frequency"),
        conflict_policy: val("conflict_policy"),
      };
      for (const n of [...p.fields.filter((f) => f !== "password"), "display_name"]) {
        if (val(n)) body[n] = val(n);
      }
      if (p.fields.includes("password")) body.password = form.elements.password.value;
      const link = await call("POST", `/v1/groups/${seg(group)}/links`, body);
      form.elements.password.value = "";
      form.reset();
      show();
      announce(`Connected ${link.display_name}. Its first sync is on its way.`);
      connected(link);
    } catch (e) {
      tab?.close();
      announce("");
      showProblem(form, e);
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}

/**
 * A window of its own for a provider's consent page, which refuses to be framed. Call it
 * before any `await`, while the click still counts as the user's; throws when the browser
 * blocked it (`button`: what to press again).
 */
export function consentWindow(button) {
  const tab = window.open("about:blank", "_blank");
  if (!tab) throw new Error(`Your browser blocked the sign-in window: allow pop-ups for this page, then press ${button} again.`);
  tab.opener = null;
  return tab;
}

/** How often, and how long, the page looks for the calendar a consent window connects. */
const CONSENT_POLL_MS = 2000;
const CONSENT_WAIT_MS = 10 * 60 * 1000;

async function linkIds(group) {
  const r = await call("GET", `/v1/groups/${seg(group)}/links`);
  return new Set((r.links || []).map((l) => l.link_id));
}

/**
 * Follow a provider's consent window: the calendar it connects shows up among the group's
 * links (the consent is single-use and lasts 10 minutes); a window closed without it ends
 * the wait.
 */
async function watchConsent(tab, group, before, { connected, announce }) {
  const end = Date.now() + CONSENT_WAIT_MS;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, CONSENT_POLL_MS));
    const closed = tab.closed;
    let links;
    try {
      links = (await call("GET", `/v1/groups/${seg(group)}/links`)).links || [];
    } catch {
      continue;
    }
    const fresh = links.find((l) => !before.has(l.link_id));
    if (fresh) {
      announce(`Connected ${fresh.display_name}. Its first sync is on its way.`);
      connected(fresh);
      return;
    }
    if (closed) {
      // A consent for a calendar the group links already renews that link: nothing new.
      announce("The sign-in window closed without connecting another calendar. If that calendar was in this group already, it now syncs with this sign-in; otherwise press the button again to retry.");
      return;
    }
  }
}

/** Show an API error in `form`: at each field it names, the rest at the form's foot. */
export function showProblem(form, e) {
  if (!(e instanceof ApiError)) {
    showError(form, "form", sentence(e.message || String(e)));
    return;
  }
  const fields = e.fieldErrors();
  let first = null;
  let shown = 0;
  for (const [name, detail] of Object.entries(fields)) {
    if (form.elements[name] && !form.querySelector(`[data-field="${name}"]`)?.hidden) {
      showError(form, name, sentence(detail));
      first = first || inputsOf(form.elements[name])[0];
      shown += 1;
    }
  }
  if (shown === 0) showError(form, "form", sentence(e.message));
  if (first) first.focus();
}

function sentence(s) {
  const t = String(s || "").trim();
  return t ? t[0].toUpperCase() + t.slice(1) : "Something went wrong. Try again.";
}

function showError(form, name, text) {
  const out = form.querySelector(`[data-error-for="${name}"]`);
  if (!out) return;
  out.textContent = text;
  out.hidden = false;
  for (const input of inputsOf(form.elements[name])) input.setAttribute("aria-invalid", "true");
}

/** Hide every error line of `form` and unmark its fields. */
export function clearErrors(form) {
  for (const out of form.querySelectorAll("[data-error-for]")) {
    out.textContent = "";
    out.hidden = true;
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** The inputs a named form member stands for (a fieldset: the inputs in it). */
function inputsOf(member) {
  if (!member) return [];
  return member instanceof HTMLFieldSetElement ? [...member.elements] : [member];
}

/** `<option>`s of the frequencies the API takes (`frequency`), `selected` chosen. */
export function frequencyOptions(selected) {
  const all = [
    ["15m", "15 minutes"],
    ["hourly", "hour"],
    ["daily", "day"],
    ["weekly", "week"],
    ["monthly", "month"],
  ];
  return all.map(([v, label]) => h("option", { value: v, selected: v === selected }, label));
}

/** `<option>`s of the conflict policies, `selected` chosen. */
export function policyOptions(selected) {
  const all = [
    ["merge", "Merge both changes"],
    ["prefer-hub", "This app's version wins"],
    ["prefer-remote", "The calendar's version wins"],
    ["manual", "Ask me"],
  ];
  return all.map(([v, label]) => h("option", { value: v, selected: v === selected }, label));
}
