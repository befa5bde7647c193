// "Other calendars of this account": the calendars of the account behind a link (GET
// /v1/links/{id}/calendars), each connected to the same group with the link's credentials
// (POST …/links with from_link): no second sign-in or password.

import { call, seg } from "./api.js";
import { h, fill } from "./dom.js";

/** Providers whose links have an account with more calendars. */
const HAS_ACCOUNT = new Set(["google", "outlook", "caldav"]);

/** Links whose list is open: it stays open when the page redraws the links. */
const open = new Set();

/**
 * The "Other calendars of this account" toggle of `link` (`button`, null for a feed or a
 * link waiting for reconnection), showing the list in `box`; `restore()` shows the list
 * again after a redraw when it was open.
 */
export function accountToggle(link, box, ctx) {
  if (!HAS_ACCOUNT.has(link.provider) || link.status === "reconnect_needed") {
    return { button: null, restore: async () => {} };
  }
  const id = link.link_id;
  box.id = `account-${id}`;
  const button = h("button", {
    type: "button",
    "data-action": "other-calendars",
    "aria-expanded": open.has(id) ? "true" : "false",
    "aria-controls": box.id,
  }, "Other calendars of this account");
  button.addEventListener("click", () => {
    if (open.has(id)) {
      open.delete(id);
      fill(box);
    } else {
      open.add(id);
      otherCalendars(link, box, ctx);
    }
    button.setAttribute("aria-expanded", open.has(id) ? "true" : "false");
  });
  return { button, restore: async () => (open.has(id) ? otherCalendars(link, box, ctx) : undefined) };
}

/** Show the account's calendars of `link` in `box`; `ctx` gives `announce` and `reload`. */
async function otherCalendars(link, box, ctx) {
  const headId = `cals-${link.link_id}`;
  fill(box, h("p", { class: "muted", role: "status" }, "Looking up the calendars of this account…"));
  let listing;
  try {
    listing = await call("GET", `/v1/links/${seg(link.link_id)}/calendars`);
  } catch (e) {
    fill(box, h("p", { class: "error", role: "alert" }, `The account's calendars could not be read: ${e.message}`));
    return;
  }
  const connect = async (cal, button) => {
    button.disabled = true;
    try {
      await call("POST", `/v1/groups/${seg(link.group_id)}/links`, {
        provider: link.provider,
        from_link: link.link_id,
        calendar: cal.id,
      });
      ctx.announce(`${cal.name} is connected; its first sync is on its way.`);
      ctx.reload();
    } catch (e) {
      button.disabled = false;
      ctx.announce(`Could not connect ${cal.name}: ${e.message}`);
    }
  };
  const items = listing.calendars.map((cal, i) => {
    const tags = [cal.main ? "main calendar" : null, cal.writable ? null : "read only"].filter(Boolean);
    const state = cal.link_ids.length
      ? h("span", { class: "badge ok" }, "Connected")
      : h("button", { type: "button", "data-action": "connect-calendar", "aria-describedby": `${headId}-${i}`, onclick: (ev) => connect(cal, ev.currentTarget) }, "Connect");
    return h("li", { "data-calendar": cal.id },
      h("span", { id: `${headId}-${i}` }, cal.name), tags.length ? h("span", { class: "muted" }, ` (${tags.join(", ")})`) : null, " ", state);
  });
  fill(box,
    h("h4", { id: headId }, "Calendars of this account"),
    items.length
      ? h("ul", { class: "account-calendars", "aria-labelledby": headId }, items)
      : h("p", { class: "empty" }, "This account has no other calendars."));
}
