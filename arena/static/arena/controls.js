// Which buttons are on, from the page's state. What the battle accepts is the server's word (its
// `controls`); the page adds only what the server can't know: whether the socket is open, what it
// sent and hasn't heard back about, and whether models are there for a new battle. Pure.

import { SIDES } from "./battle_state.js";

const NOTHING_ACCEPTED = { may_send: false, may_vote: false, may_regenerate: false, may_retry: [], hint: "" };

export function controlsOf(page) {
  const { battle } = page;
  const accepts = (battle && battle.controls) || NOTHING_ACCEPTED;
  // A prompt without a battle, or after the vote, starts a new one: that needs models, nothing else.
  const newBattle = !battle || battle.voted;
  // Not while a fresh snapshot is due: a vote or a regenerate would be about replies not shown here.
  const current = page.connected && !page.resyncing && !(battle && battle.behind);
  const rerunFree = current && !page.pendingPrompt && !page.pendingRegenerate;
  const retry = {};
  for (const s of SIDES) retry[s] = rerunFree && accepts.may_retry.includes(s);
  return {
    send: page.connected && !page.pendingPrompt && (newBattle ? page.modelsReady : accepts.may_send),
    hint: newBattle ? "" : accepts.hint,
    vote: current && accepts.may_vote && !page.pendingVote,
    pressed: battle && battle.reveal ? battle.reveal.outcome : page.pendingVote,
    regenerate: rerunFree && accepts.may_regenerate,
    retry,
  };
}
