// "Conflicts to resolve": an event changed in this app and in a calendar (policy "Ask me"),
// both versions side by side, each with a "Keep this one" button.

import { call, seg } from "./api.js";
import { h, fill, whenText } from "./dom.js";

/** Render the conflicts of `group` into `box`. */
export function renderConflicts(box, group, conflicts, ctx) {
  if (conflicts.length === 0) {
    fill(box, h("p", { class: "empty" }, "No conflicts. When an event changes in two places at once and its calendar is set to “Ask me”, both versions appear here for you to choose."));
    return;
  }
  fill(box, h("ul", { class: "conflicts", role: "list" }, conflicts.map((c) => h("li", {}, conflictCard(group, c, ctx)))));
}

function conflictCard(group, c, ctx) {
  const headId = `conflict-${c.link_id}-${c.event_id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const title = c.hub?.title || c.remote?.title || c.event_id;
  const keep = async (which, button) => {
    button.disabled = true;
    try {
      await call("POST", `/v1/groups/${seg(group)}/conflicts/${seg(c.event_id)}:resolve`, { keep: which, link_id: c.link_id });
      const kept = (which === "hub" ? c.hub : c.remote)?.title || title;
      ctx.announce(`Kept ${which === "hub" ? "this app's" : `${c.link_name}'s`} version, “${kept}”; every calendar gets it.`);
      ctx.reload();
    } catch (e) {
      button.disabled = false;
      ctx.announce(`Could not resolve the conflict: ${e.message}`);
    }
  };
  const side = (which, heading, ev) => {
    const button = h("button", { type: "button", class: "primary", "data-keep": which }, "Keep this one");
    button.addEventListener("click", () => keep(which, button));
    return h("section", { class: "version", "aria-label": `${heading}: ${ev?.title || "deleted"}` },
      h("h4", {}, heading),
      ev ? eventDetails(ev) : h("p", { class: "muted" }, "Deleted here."),
      button);
  };
  return h("article", { class: "card conflict", "aria-labelledby": headId, "data-event": c.event_id },
    h("h3", { id: headId }, title),
    c.detail ? h("p", { class: "reason" }, reasonText(c.detail)) : null,
    h("div", { class: "versions" },
      side("hub", "In this app", c.hub),
      side("remote", `In ${c.link_name}`, c.remote)));
}

function eventDetails(ev) {
  const rows = [
    ["Title", ev.title || "(no title)"],
    ["When", whenText(ev)],
  ];
  if (ev.duration) rows.push(["Length", durationText(ev.duration)]);
  const place = Object.values(ev.locations || {}).map((l) => l.name).filter(Boolean).join("; ");
  if (place) rows.push(["Where", place]);
  if (ev.recurrenceRules?.length) rows.push(["Repeats", ev.recurrenceRules.map((r) => r.frequency).join(", ")]);
  if (ev.description) rows.push(["Notes", ev.description]);
  return h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-name": k.toLowerCase() }, v)]));
}

/** An ISO 8601 / RFC 8984 §1.4.6 duration (`PT1H30M`, `P1D`) for people. */
export function durationText(d) {
  const m = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(d || "");
  if (!m) return d;
  const names = ["week", "day", "hour", "minute", "second"];
  const parts = m.slice(1).map((n, i) => (n && +n ? `${+n} ${names[i]}${+n === 1 ? "" : "s"}` : null)).filter(Boolean);
  return parts.length ? parts.join(" ") : "no time";
}

const FIELD_WORDS = {
  SUMMARY: "title",
  DTSTART: "start",
  DTEND: "end",
  DURATION: "length",
  LOCATION: "place",
  DESCRIPTION: "notes",
  RRULE: "repetition",
  RDATE: "extra dates",
  EXDATE: "skipped dates",
  STATUS: "status",
  TRANSP: "busy or free",
  ATTENDEE: "attendees",
  CATEGORIES: "categories",
  URL: "link",
};

/**
 * The engine's conflict note (`conflict on master/SUMMARY, 20270109T090000Z/LOCATION; resolve
 * manually`: component key / iCalendar property, RFC 5545 §3.8) in words; other notes as
 * they are.
 */
export function reasonText(detail) {
  const m = /^conflict on (.+); resolve manually$/.exec(detail || "");
  if (!m) return detail;
  const words = m[1].split(/,\s*/).map((f) => {
    const cut = f.lastIndexOf("/");
    const [comp, prop] = cut < 0 ? ["master", f] : [f.slice(0, cut), f.slice(cut + 1)];
    const w = FIELD_WORDS[prop.toUpperCase()] || prop.toLowerCase();
    return comp === "master" ? w : `${w} of one occurrence`;
  });
  return `Changed in both places: ${[...new Set(words)].join(", ")}. Choose the version to keep.`;
}
