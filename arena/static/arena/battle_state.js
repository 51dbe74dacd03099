// A battle as the page knows it: the server's snapshot (a `state` frame) brought up to date by the
// reply events that follow it. Pure: no DOM, no socket; every change returns a new battle.
// Protocol: see arena/consumers.py. Text offsets count Unicode code points (Python's len()).
//
// battle: {battle, turns: [{index, attempt, prompt, sides: {a, b}}], voted, reveal?, controls,
//          behind?}. `controls` is the server's word on what it accepts now (may_send, may_vote,
//          may_regenerate, may_retry, hint); `behind` marks an event this page could not place
//          (another tab's follow-up or regenerate, a lost delta): only a fresh snapshot helps.

export const SIDES = ["a", "b"];

const cpLen = (s) => Array.from(s).length;
const cpSlice = (s, start) => Array.from(s).slice(start).join("");
const QUEUED = { status: "queued", text: "", offset: 0, reason: "" };

export function lastTurn(battle) {
  return battle && battle.turns.length ? battle.turns[battle.turns.length - 1] : null;
}

// Is either side of the last turn in one of `statuses` (a side not heard of yet is queued)?
export function lastTurnAny(battle, statuses) {
  const turn = lastTurn(battle);
  return !!turn && SIDES.some((s) => !turn.sides[s] || statuses.includes(turn.sides[s].status));
}

// What a refusal by the prompt box can be about: the battle, its last turn and the sides' states.
export function stateKey(battle) {
  const turn = lastTurn(battle);
  if (!turn) return battle ? battle.battle : "";
  return [battle.battle, turn.index, turn.attempt, ...SIDES.map((s) => (turn.sides[s] ? turn.sides[s].status : ""))].join(":");
}

// Python's str.strip() and JavaScript's trim() disagree on a few characters at the ends.
const promptKey = (text) => (text || "").replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/g, "");

// Is this snapshot the server's answer to the prompt sent ({text, battle, index, previous}): a
// turn with that text at or after the index expected (later if another tab added turns
// meanwhile)? A snapshot answering an earlier join has fewer turns, or another prompt last, or is
// of the previous battle.
export function acceptsPrompt(state, pending) {
  if (!pending || !state || !state.turns.length) return false;
  const last = lastTurn(state);
  if (last.index < pending.index || promptKey(last.prompt) !== promptKey(pending.text)) return false;
  return pending.battle ? state.battle === pending.battle : state.battle !== pending.previous;
}

// Does this snapshot show the regenerate sent ({battle, index, attempt}): a newer attempt, or a
// battle that has moved on?
export function answersRegenerate(state, pending) {
  if (!pending) return false;
  if (!state || state.battle !== pending.battle || !state.turns.length) return true;
  const last = lastTurn(state);
  return last.index > pending.index || last.attempt > pending.attempt;
}

// The battle after one server frame (`state`, `started`, `delta`, `done`, `failed`, `revealed`).
export function reduceBattle(battle, frame) {
  switch (frame.type) {
    case "state":
      return frame.state;
    case "started":
      return sideUpdate(battle, frame, (side) => (side.status === "queued" ? { ...side, status: "streaming" } : side));
    case "delta":
      return deltaApply(battle, frame);
    case "done":
      return sideUpdate(battle, frame, () => ({
        status: "done", text: frame.text, offset: cpLen(frame.text), reason: "", finish_reason: frame.finish_reason || "",
      }));
    case "failed":
      return sideUpdate(battle, frame, () => ({
        status: "failed", text: frame.text, offset: cpLen(frame.text), reason: frame.reason,
        retryable: frame.retryable !== false, failure_kind: frame.failure_kind || "",
      }));
    case "revealed":
      if (!battle || frame.battle !== battle.battle) return battle;
      return {
        ...battle, voted: true, controls: frame.controls,
        reveal: { outcome: frame.outcome, model_a: frame.model_a, model_b: frame.model_b },
      };
    default:
      return battle;
  }
}

function deltaApply(battle, frame) {
  let gap = false;
  const next = sideUpdate(battle, frame, (side) => {
    if (side.status === "done" || side.status === "failed") return side;
    if (frame.offset > side.offset) {
      gap = true;  // a delta was lost: a fresh snapshot, rather than broken text
      return { ...side, status: "streaming" };
    }
    const fresh = cpSlice(frame.text, side.offset - frame.offset);
    return { ...side, status: "streaming", text: side.text + fresh, offset: side.offset + cpLen(fresh) };
  });
  return gap ? { ...next, behind: true } : next;
}

// Apply `change` to the side a reply event names. A `done` or `failed` event carries the battle's
// controls right after it. An event of an older attempt is dropped; one newer than anything here
// (another tab of this battle sent a follow-up or regenerated) marks the battle behind.
function sideUpdate(battle, frame, change) {
  if (!battle || frame.battle !== battle.battle) return battle;
  const at = battle.turns.findIndex((t) => t.index === frame.turn);
  const turn = battle.turns[at];
  if (!turn || turn.attempt !== frame.attempt) {
    const last = lastTurn(battle);
    const newer = !last || frame.turn > last.index || (turn && frame.attempt > turn.attempt);
    return newer ? { ...battle, behind: true } : battle;
  }
  const side = change(turn.sides[frame.side] || QUEUED);
  const turns = battle.turns.slice();
  turns[at] = { ...turn, sides: { ...turn.sides, [frame.side]: side } };
  return { ...battle, turns, ...(frame.controls ? { controls: frame.controls } : {}) };
}
