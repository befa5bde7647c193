// DOM and time helpers. Every text from the API goes through textContent (never innerHTML):
// event titles, reasons and names are data from remote servers, not markup.

/** Element `tag` with attributes (`on*` functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat(Infinity)) if (c) el.append(c);
}

/** The user's own time zone (the browser's), e.g. `Europe/Berlin`. */
export const userZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

// (dateStyle / timeStyle do not combine with timeZoneName, ECMA-402 §11.1.2.)
const stamp = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
  timeZoneName: "short",
});

/** `<time>` for an instant in epoch milliseconds, shown in the user's zone. */
export function timeEl(ms) {
  if (!ms) return h("span", {}, "—");
  const d = new Date(ms);
  return h("time", { datetime: d.toISOString() }, stamp.format(d));
}

/** UTC offset of `zone` at instant `ms`, in milliseconds. */
function offsetMs(ms, zone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant of a JSCalendar LocalDateTime (`2026-01-09T10:00:00`, RFC 8984 §1.4.4) in
 * time zone `zone`; null for an unknown zone or an unreadable time.
 */
export function zonedInstant(local, zone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})/.exec(local || "");
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  try {
    let t = wall - offsetMs(wall, zone);
    t = wall - offsetMs(t, zone); // once more across an offset change
    return t;
  } catch {
    return null;
  }
}

const dayFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

/**
 * When a JSCalendar event happens, for people: in the user's zone when the event has one
 * (RFC 8984 §4.7.1 `timeZone`), as written when it floats, the date alone when all-day.
 */
export function whenText(ev) {
  if (!ev || !ev.start) return "no time";
  if (ev.showWithoutTime) {
    const [y, mo, d] = ev.start.slice(0, 10).split("-").map(Number);
    return `${dayFmt.format(new Date(Date.UTC(y, mo - 1, d, 12)))} (all day)`;
  }
  if (!ev.timeZone) return `${ev.start.replace("T", " ")} (floating time)`;
  const t = zonedInstant(ev.start, ev.timeZone);
  return t === null ? `${ev.start.replace("T", " ")} ${ev.timeZone}` : stamp.format(new Date(t));
}
