// "Your calendars": each link with its status and reason, settings, last runs, events in
// error, and its actions (sync now with progress, reconnect, release a quarantined deletion,
// disconnect after a confirmation).

import { ApiError, call, seg } from "./api.js";
import { h, fill, timeEl } from "./dom.js";
import { PROVIDERS, clearErrors, consentWindow, frequencyOptions, policyOptions, showProblem } from "./connect.js";
import { accountToggle } from "./account.js";

const PROVIDER_NAMES = {
  google: "Google Calendar",
  outlook: "Outlook Calendar",
  caldav: "CalDAV calendar",
  ics: "Subscription (read only)",
};

const STATUS = {
  ok: ["Working", "ok"],
  error: ["Sync failed", "bad"],
  quarantined: ["Deletions held back", "warn"],
  reconnect_needed: ["Reconnect needed", "bad"],
  removing: ["Removing its copies", "warn"],
};

const FREQUENCIES = { 900: "15m", 3600: "hourly", 86400: "daily", 604800: "weekly", 2592000: "monthly" };

/** Milliseconds between looks at the run history while a sync is on its way. */
const POLL_MS = 1500;
/** How long "Sync now" waits for the run record before saying it is still queued. */
const WAIT_MS = 120000;

/** Render `links` into `box`; `ctx` gives `announce`, `confirm` and `reload`. */
export async function renderLinks(box, links, ctx) {
  if (links.length === 0) {
    fill(box, h("p", { class: "empty" }, "No calendars yet. Connect one below: its events then appear in every calendar of this list."));
    return;
  }
  const cards = links.map((l) => linkCard(l, ctx));
  fill(box, h("ul", { class: "links", role: "list" }, cards.map((c) => h("li", {}, c.el))));
  await Promise.all(cards.map((c) => c.load()));
}

function linkCard(link, ctx) {
  const id = link.link_id;
  const headId = `link-${id}-name`;
  const runsBox = h("div", { class: "runs" }, h("p", { class: "muted" }, "Loading the last syncs…"));
  const errorsBox = h("div", { class: "event-errors" });
  const progress = h("div", { class: "progress", role: "status", "aria-live": "polite" }, progressContent(id));
  const [label, tone] = STATUS[link.status] || [link.status, "warn"];
  let newestRun = null;

  const loadRuns = async () => {
    try {
      const r = await call("GET", `/v1/links/${seg(id)}/runs?limit=5`);
      newestRun = r.runs[0]?.run_id ?? newestRun;
      fill(runsBox, runsTable(r, id, headId));
      return r.runs;
    } catch (e) {
      fill(runsBox, h("p", { class: "error" }, `The sync history could not be loaded: ${e.message}`));
      return [];
    }
  };
  const loadErrors = async () => {
    try {
      const r = await call("GET", `/v1/links/${seg(id)}/errors`);
      fill(errorsBox, errorList(r, headId));
    } catch (e) {
      fill(errorsBox, h("p", { class: "error" }, `The events in error could not be loaded: ${e.message}`));
    }
  };

  // A calendar whose copies are being removed no longer syncs: it can only be disconnected
  // now, or reconnected when its calendar refused the credentials (below).
  const removing = link.status === "removing";
  const settings = removing ? null : settingsForm(link, ctx);
  const actions = h("div", { class: "actions" });
  const syncButton = h("button", { type: "button", class: "primary", "data-action": "sync", disabled: syncing.has(id), onclick: () => syncNow() }, "Sync now");
  if (!removing) actions.append(syncButton);
  const reconnectBox = h("div", { class: "reconnect" });
  // A removal the calendar's credentials stopped goes on once it is reconnected.
  if (link.status === "reconnect_needed" || (removing && link.status_reason)) {
    actions.append(h("button", { type: "button", "data-action": "reconnect", onclick: () => reconnect(link, reconnectBox, ctx) }, "Reconnect"));
  }
  if (link.status === "quarantined") {
    actions.append(h("button", { type: "button", "data-action": "release", onclick: () => release() }, "Let the deletions through once"));
  }
  const accountBox = h("div", { class: "account" });
  const account = accountToggle(link, accountBox, ctx);
  if (account.button && !removing) actions.append(account.button);
  actions.append(h("button", { type: "button", class: "danger", "data-action": "disconnect", onclick: () => disconnect() }, removing ? "Disconnect now" : "Disconnect"));

  const syncNow = () => watchSync(id, newestRun, ctx);
  const release = async () => {
    try {
      await call("POST", `/v1/links/${seg(id)}/release-deletions`, {});
      ctx.announce(`The held deletions of ${link.display_name} go through with its next sync, which is on its way.`);
      ctx.reload();
    } catch (e) {
      ctx.announce(`Could not release the deletions: ${e.message}`);
    }
  };
  const disconnect = async () => {
    const ok = removing
      ? await ctx.confirm(
        `Disconnect ${link.display_name} now?`,
        "The copies not removed yet stay in the calendar.",
        "Disconnect now",
      )
      : await ctx.confirm(
        `Disconnect ${link.display_name}?`,
        "It stops syncing. The events already copied stay where they are, in this app and in the calendar. If you connect it again, the copies of events deleted elsewhere in the meantime are removed from it.",
        "Disconnect",
        link.read_only ? undefined : "Also remove from this calendar the copies of the other calendars' events (its own events, and copies you changed there, stay)",
      );
    if (!ok) return;
    try {
      if (ok.option) {
        await call("DELETE", `/v1/links/${seg(id)}?remove_copies=true`);
        ctx.announce(`Removing the copies from ${link.display_name}; it is disconnected once they are gone.`);
      } else {
        await call("DELETE", `/v1/links/${seg(id)}`);
        ctx.announce(`${link.display_name} is disconnected.`);
      }
      ctx.reload();
    } catch (e) {
      ctx.announce(`Could not disconnect: ${e.message}`);
    }
  };

  const el = h(
    "article",
    { class: "card link", "aria-labelledby": headId, "data-link": id },
    h("header", { class: "link-head" },
      h("h3", { id: headId }, link.display_name),
      h("span", { class: "provider" }, PROVIDER_NAMES[link.provider] || link.provider),
      h("span", { class: `badge ${tone}`, "data-status": link.status }, label)),
    link.status_reason && link.status !== "ok" ? h("p", { class: "reason" }, link.status_reason) : null,
    h("p", { class: "muted" }, "Next scheduled sync: ", timeEl((link.next_sync_at || 0) * 1000)),
    reconnectBox,
    actions,
    accountBox,
    progress,
    settings,
    h("h4", {}, "Last syncs"),
    runsBox,
    errorsBox,
  );
  return { el, load: () => Promise.all([loadRuns(), loadErrors(), account.restore()]) };
}

// "Sync now" outlives a redraw of the list: which links wait for their run, and the words
// to show once it has arrived.
const syncing = new Set();
const queued = new Set();
const finished = new Map();

function progressContent(id) {
  if (syncing.has(id)) {
    const words = queued.has(id) ? " Sync queued; waiting for it to run…" : " Starting a sync…";
    return [h("progress", { "aria-label": "Sync in progress" }), words];
  }
  const said = finished.get(id);
  return said ? [said] : [];
}

function showProgress(id, ...content) {
  const card = document.querySelector(`[data-link="${CSS.escape(id)}"]`);
  const p = card?.querySelector(".progress");
  if (p) fill(p, ...content);
  const b = card?.querySelector('[data-action="sync"]');
  if (b) b.disabled = syncing.has(id);
}

/** Queue a pull of link `id` and follow its run history until a run newer than `before`. */
async function watchSync(id, before, ctx) {
  if (syncing.has(id)) return;
  syncing.add(id);
  finished.delete(id);
  showProgress(id, ...progressContent(id));
  const end = (words) => {
    syncing.delete(id);
    queued.delete(id);
    finished.set(id, words);
    showProgress(id, ...progressContent(id));
  };
  try {
    await call("POST", `/v1/links/${seg(id)}/sync`, {});
    queued.add(id);
    showProgress(id, ...progressContent(id));
    const started = Date.now();
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const r = await call("GET", `/v1/links/${seg(id)}/runs?limit=5`);
      const run = r.runs.find((x) => x.kind === "pull" && (before === null || x.run_id > before));
      if (run) {
        end(`Sync finished: ${runSummary(run)}.`);
        ctx.reload();
        return;
      }
      if (Date.now() - started > WAIT_MS) {
        end("The sync is still queued. This page shows it when it has run; reload later.");
        return;
      }
    }
  } catch (e) {
    end(h("span", { class: "error" }, `Sync could not finish: ${e.message}`));
  }
}

/** A labelled checkbox of the settings form. */
function check(id, name, checked, label) {
  return h("div", { class: "field check", "data-field": name },
    h("label", { for: id }, h("input", { type: "checkbox", id, name, checked }), ` ${label}`));
}

/** A labelled number field of the settings form, with its error line. */
function number(id, name, value, label, min, max) {
  return h("div", { class: "field", "data-field": name },
    h("label", { for: id }, label),
    h("input", { type: "number", id, name, value: String(value), min: String(min), max: max ? String(max) : undefined, step: "1", inputmode: "numeric", "aria-describedby": `${id}-error` }),
    h("p", { id: `${id}-error`, "data-error-for": name, class: "error", hidden: true }));
}

/** A labelled address field of the settings form, with its error line. */
function email(id, name, value, label) {
  return h("div", { class: "field", "data-field": name },
    h("label", { for: id }, label),
    h("input", { type: "email", id, name, value, placeholder: "name@example.com", maxlength: "200", autocomplete: "email", "aria-describedby": `${id}-error` }),
    h("p", { id: `${id}-error`, "data-error-for": name, class: "error", hidden: true }));
}

/** A labelled text field of the settings form, with its error line. */
function text(id, name, value, label, placeholder) {
  return h("div", { class: "field", "data-field": name },
    h("label", { for: id }, label),
    h("input", { type: "text", id, name, value, placeholder, maxlength: "200", autocomplete: "off", "aria-describedby": `${id}-error` }),
    h("p", { id: `${id}-error`, "data-error-for": name, class: "error", hidden: true }));
}

/** The time window of the settings form: days back and ahead, both empty for none. */
function windowField(id, w) {
  const day = (n, name, label, value) => h("div", { class: "day" },
    h("label", { for: `${n}-${id}` }, label),
    h("input", { type: "number", id: `${n}-${id}`, name, value: w ? String(value) : "", min: "0", max: "3650", step: "1", inputmode: "numeric", "aria-describedby": `window-${id}-error` }));
  return h("fieldset", { class: "field", "data-field": "window", name: "window" },
    h("legend", {}, "Only the other calendars’ events near today (leave both empty for all)"),
    day("past", "past_days", "Days back", w?.past_days),
    day("future", "future_days", "Days ahead", w?.future_days),
    h("p", { id: `window-${id}-error`, "data-error-for": "window", class: "error", hidden: true }));
}

/** Whole days 0 to 3650 from a field's text; `null` when it is not one. */
function days(value) {
  const t = value.trim();
  if (!/^\d{1,4}$/.test(t) || Number(t) > 3650) return null;
  return Number(t);
}

/**
 * What the form makes of the link's `transforms`: its boxes, the title pattern, the
 * user's address for leaving out what they declined, and the window (both day fields
 * empty: none; one empty: 0). `{ error, pointer }` names what the form can tell is wrong.
 */
function formTransforms(form, transforms) {
  const next = { ...transforms,
    busy_only: form.elements.busy_only.checked,
    exclude_all_day: form.elements.exclude_all_day.checked,
    exclude_declined: form.elements.exclude_declined.checked };
  const tpl = form.elements.title_template.value.trim();
  if (tpl) next.title_template = tpl; else delete next.title_template;
  const me = form.elements.self_address.value.trim();
  if (me) next.self_address = me; else delete next.self_address;
  if (next.exclude_declined && !me.includes("@")) {
    return { pointer: "#/transforms/self_address", error: "enter the address your invitations come to (name@example.com)" };
  }
  const past = form.elements.past_days.value, future = form.elements.future_days.value;
  if (past.trim() || future.trim()) {
    const w = { past_days: days(past || "0"), future_days: days(future || "0") };
    const pointer = "#/transforms/window";
    if (w.past_days === null || w.future_days === null) return { pointer, error: "enter whole days from 0 to 3650" };
    if (w.past_days + w.future_days === 0) return { pointer, error: "enter at least one day back or ahead" };
    next.window = w;
  } else {
    delete next.window;
  }
  return { next };
}

/** Do two transforms documents say the same? */
function sameTransforms(a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const norm = (v) => v === undefined || v === null || v === false ? null : JSON.stringify(v);
  return [...keys].every((k) => norm(a[k]) === norm(b[k]));
}

/**
 * The link's settings: how often it syncs, what a conflict does, what it gets of each event
 * from the group's other calendars (busy only, no all-day events, none the user declined
 * (with their address), a title pattern, a window of days around today; its own events
 * stay whole; not for a feed, which gets nothing),
 * for Outlook whether attendees are written (Outlook mails them), and the deletion brake
 * (a pull that would delete more than the share and at least the number of its events is
 * held back for the user to let through). Transforms are sent only when they changed: a
 * change rewrites every copy of the other calendars' events on the calendar.
 */
function settingsForm(link, ctx) {
  const id = link.link_id;
  const freq = FREQUENCIES[link.frequency_secs];
  const fSel = h("select", { id: `freq-${id}`, name: "frequency", "aria-describedby": `freq-${id}-error` }, frequencyOptions(freq));
  if (!freq) {
    fSel.prepend(h("option", { value: String(link.frequency_secs), selected: true }, `${Math.round(link.frequency_secs / 60)} minutes`));
  }
  const pSel = h("select", { id: `policy-${id}`, name: "conflict_policy", disabled: link.read_only, "aria-describedby": `policy-${id}-error` }, policyOptions(link.conflict_policy));
  const transforms = link.transforms || {};
  const gets = link.read_only ? [] : [
    check(`busy-${id}`, "busy_only", !!transforms.busy_only, "Show the other calendars’ events here as “Busy” only (no title, place or notes)"),
    check(`allday-${id}`, "exclude_all_day", !!transforms.exclude_all_day, "Leave out the other calendars’ all-day events here"),
    check(`declined-${id}`, "exclude_declined", !!transforms.exclude_declined, "Leave out the other calendars’ invitations you declined"),
    email(`self-${id}`, "self_address", transforms.self_address || "", "Your address in those invitations"),
    text(`template-${id}`, "title_template", transforms.title_template || "",
      "Title of the other calendars’ events here, with {title} for theirs (empty: their own titles)", "{title} (personal)"),
    windowField(id, transforms.window),
  ];
  if (link.provider === "outlook") {
    gets.push(check(`attendees-${id}`, "write_attendees", !!link.write_attendees,
      "Add the attendees of events you organize (Outlook emails each of them an invitation)"));
  }
  const ratio = number(`brake-ratio-${id}`, "brake_ratio", Math.round((link.brake_ratio ?? 0.5) * 100),
    "Hold back a sync deleting more than (% of its events)", 1, 100);
  const least = number(`brake-min-${id}`, "brake_min", link.brake_min ?? 5, "…and at least (events)", 1);
  const form = h("form", { class: "settings", novalidate: true },
    h("div", { class: "field", "data-field": "frequency" },
      h("label", { for: `freq-${id}` }, "Sync every"), fSel,
      h("p", { id: `freq-${id}-error`, "data-error-for": "frequency", class: "error", hidden: true })),
    h("div", { class: "field", "data-field": "conflict_policy" },
      h("label", { for: `policy-${id}` }, "When both sides changed an event"), pSel,
      h("p", { id: `policy-${id}-error`, "data-error-for": "conflict_policy", class: "error", hidden: true })),
    ...gets, ratio, least,
    h("p", { "data-error-for": "transforms", class: "error", hidden: true }),
    h("button", { type: "submit" }, "Save settings"),
    h("p", { "data-error-for": "form", class: "error", role: "alert", hidden: true }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const percent = Number(form.elements.brake_ratio.value);
    if (!(percent >= 1 && percent <= 100)) {
      // The API takes a share above 0 and at most 1; the form asks for a percentage.
      showProblem(form, new ApiError(422, { detail: "Check the deletion brake.",
        errors: [{ pointer: "#/brake_ratio", detail: "enter a percentage from 1 to 100" }] }));
      return;
    }
    const body = {
      frequency: fSel.value,
      brake_ratio: percent / 100,
      brake_min: Number(form.elements.brake_min.value),
    };
    if (!link.read_only) {
      body.conflict_policy = pSel.value;
      const t = formTransforms(form, transforms);
      if (t.error) {
        showProblem(form, new ApiError(422, { detail: "Check what this calendar gets.",
          errors: [{ pointer: t.pointer, detail: t.error }] }));
        return;
      }
      if (!sameTransforms(t.next, transforms)) body.transforms = t.next;
      if (form.elements.write_attendees && form.elements.write_attendees.checked !== !!link.write_attendees) {
        body.write_attendees = form.elements.write_attendees.checked;
      }
    }
    try {
      await call("PATCH", `/v1/links/${seg(id)}`, body);
    } catch (e) {
      showProblem(form, e);
      return;
    }
    // Said once the list shows the saved settings (the form is drawn anew).
    await ctx.reload();
    ctx.announce(`Settings of ${link.display_name} saved.`);
  });
  return form;
}

async function reconnect(link, box, ctx) {
  const id = link.link_id;
  if (PROVIDERS[link.provider]?.oauth) {
    let tab = null;
    try {
      tab = consentWindow("Reconnect");
      const r = await call("POST", `/v1/links/${seg(id)}/reconnect`, {});
      tab.location.href = r.consent_url;
      ctx.announce("Finish signing in in the new window; the calendar syncs again when you have.");
    } catch (e) {
      tab?.close();
      ctx.announce(`Could not reconnect: ${e.message}`);
    }
    return;
  }
  const fields = link.provider === "ics"
    ? [["url", "New subscription link", "url", "url"]]
    : [["username", "Username", "text", "username"], ["password", "New password", "password", "current-password"]];
  const form = h("form", { class: "reconnect-form", novalidate: true },
    fields.map(([n, label, type, auto]) => h("div", { class: "field", "data-field": n },
      h("label", { for: `re-${n}-${id}` }, label),
      h("input", { id: `re-${n}-${id}`, name: n, type, autocomplete: auto, required: true, "aria-describedby": `re-${n}-${id}-error` }),
      h("p", { id: `re-${n}-${id}-error`, "data-error-for": n, class: "error", hidden: true }))),
    h("button", { type: "submit", class: "primary" }, "Reconnect"),
    h("p", { "data-error-for": "form", class: "error", role: "alert", hidden: true }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [n] of fields) body[n] = form.elements[n].value;
    try {
      await call("POST", `/v1/links/${seg(id)}/reconnect`, body);
      ctx.announce(`${link.display_name} is connected again and syncing.`);
      ctx.reload();
    } catch (e) {
      showProblem(form, e);
    }
  });
  fill(box, form);
  form.elements[fields[0][0]].focus();
}

function runSummary(r) {
  if (r.outcome === "failed") return `failed: ${r.error || "no reason given"}`;
  if (r.outcome === "busy") return "skipped, another sync was running";
  const parts = [`${r.created} new`, `${r.updated} changed`, `${r.deleted} deleted`];
  if (r.conflicts) parts.push(`${r.conflicts} in conflict`);
  if (r.errors) parts.push(`${r.errors} with errors`);
  if (r.outcome === "quarantined") parts.push("deletions held back");
  return parts.join(", ");
}

const KINDS = { pull: "From the calendar", push: "To the calendar" };

function runRow(r) {
  return h("tr", { "data-run": r.run_id, "data-outcome": r.outcome },
    h("td", {}, timeEl(r.ended_ms || r.started_ms)),
    h("td", {}, KINDS[r.kind] || r.kind),
    h("td", { class: r.outcome === "ok" ? "" : "error" }, runSummary(r)));
}

/** Older syncs a press of "Show older syncs" adds. */
const OLDER_RUNS = 10;

/**
 * The runs of page `page` (`{runs, cursor}` of `GET …/runs`, newest first) of link `id`,
 * and while older ones remain a "Show older syncs" button that adds the next page under
 * them (the API's `cursor`), moving the focus to the first row it added.
 */
function runsTable(page, id, headId) {
  if (page.runs.length === 0) return h("p", { class: "empty" }, "No sync has run yet. Press Sync now to start one.");
  const body = h("tbody", {}, page.runs.map(runRow));
  const table = h("table", { class: "runs-table", "aria-describedby": headId },
    h("caption", { class: "visually-hidden" }, "Last syncs, newest first"),
    h("thead", {}, h("tr", {}, ["When", "Direction", "Result"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  let cursor = page.cursor;
  if (!cursor) return table;
  const note = h("p", { class: "error", role: "alert", hidden: true });
  const more = h("button", { type: "button", "data-action": "older-runs" }, "Show older syncs");
  more.addEventListener("click", async () => {
    more.disabled = true;
    note.hidden = true;
    try {
      const next = await call("GET", `/v1/links/${seg(id)}/runs?limit=${OLDER_RUNS}&cursor=${encodeURIComponent(cursor)}`);
      const rows = next.runs.map(runRow);
      body.append(...rows);
      cursor = next.cursor;
      if (rows[0]) {
        rows[0].tabIndex = -1;
        rows[0].focus();
      }
      if (cursor) more.disabled = false;
      else more.remove();
    } catch (e) {
      note.textContent = `The older syncs could not be loaded: ${e.message}`;
      note.hidden = false;
      more.disabled = false;
    }
  });
  return h("div", {}, table, h("div", { class: "actions" }, more), note);
}

function errorList(r, headId) {
  if (!r.errors.length) return null;
  return h("div", {},
    h("h4", {}, `Events that could not sync (${r.total})`),
    h("ul", { class: "problems", "aria-describedby": headId }, r.errors.map((e) => h("li", { "data-event": e.event_id },
      h("strong", {}, e.title || "An unreadable event"), ": ", e.detail || "no reason given", " (", timeEl(e.updated_ms), ")"))),
    r.total > r.errors.length ? h("p", { class: "muted" }, `and ${r.total - r.errors.length} more`) : null);
}
