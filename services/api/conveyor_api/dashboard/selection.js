// Pure logic of the job list's selection for bulk actions: rows picked by id, or "all
// matching this filter" (the server counts and selects them), and the body of
// POST /api/v1/jobs/bulk it stands for.

export const BULK_ACTIONS = ["stop", "restart", "delete"];
export const MAX_BULK = 10000; // the server's cap on ids and on a filter's matches

/** The API's filter object for the store's filter (empty parts left out). */
export function filterBody(filter) {
  const body = {};
  if (filter.statuses?.length) body.status = [...filter.statuses];
  if (filter.priority) body.priority = filter.priority;
  if (filter.type) body.type = filter.type;
  if (filter.q) body.q = filter.q;
  return body;
}

export const emptySelection = () => ({ mode: "ids", ids: new Set(), filter: null, matched: null });

/** Toggle one row (leaving "all matching" for the rows shown minus/plus this one). */
export function toggle(sel, id, on, shownIds = []) {
  const ids = sel.mode === "filter" ? new Set(shownIds) : new Set(sel.ids);
  if (on) ids.add(id);
  else ids.delete(id);
  return { mode: "ids", ids, filter: null, matched: null };
}

/** Every row shown selected (on) or none (off). */
export function togglePage(sel, shownIds, on) {
  const ids = sel.mode === "filter" ? new Set() : new Set(sel.ids);
  for (const id of shownIds) {
    if (on) ids.add(id);
    else ids.delete(id);
  }
  return { mode: "ids", ids, filter: null, matched: null };
}

/** Every job the filter matches (`matched` as the server counted them). */
export const allMatching = (filter, matched) => ({
  mode: "filter", ids: new Set(), filter: { ...filter }, matched,
});

export const isSelected = (sel, id) => sel.mode === "filter" || sel.ids.has(id);

/** How many jobs the selection names (null: not counted yet). */
export const selectedCount = (sel) => (sel.mode === "filter" ? sel.matched : sel.ids.size);

/** The bulk request for `action` on the selection, with an optional reason. */
export function bulkBody(sel, action, reason = "") {
  if (!BULK_ACTIONS.includes(action)) throw new Error(`unknown bulk action ${action}`);
  const body = sel.mode === "filter"
    ? { action, filter: filterBody(sel.filter) }
    : { action, ids: [...sel.ids] };
  const why = String(reason ?? "").trim();
  if (why) body.reason = why;
  return body;
}

const PAST = { stop: "Stopped", restart: "Restarted", delete: "Deleted" };

/** "Restart 200 jobs? 180 can be restarted now; 20 would be refused." from a dry run. */
export function confirmText(action, plan) {
  const n = plan.matched;
  const refused = plan.refused?.length ?? 0;
  const jobs = `${n} job${n === 1 ? "" : "s"}`;
  const head = `${action[0].toUpperCase()}${action.slice(1)} ${jobs}?`;
  const done = PAST[action].toLowerCase();
  if (!refused) return `${head} Every one can be ${done} now.`;
  return `${head} ${plan.acted} can be ${done} now;`
    + ` ${refused} would be refused (their state does not allow it).`;
}

/** "Restarted 200 of 200 jobs; 0 refused." from the server's answer. */
export function resultText(action, out) {
  const refused = out.refused?.length ?? 0;
  return `${PAST[action]} ${out.acted} of ${out.matched} job${out.matched === 1 ? "" : "s"}; `
    + `${refused} refused.`;
}
