// Draws the page's state (see arena.js) into the arena page: both columns, each side's failure,
// the names once revealed, the vote result, the banners and which controls are on. DOM only: it
// decides nothing about the battle, and drawing twice what didn't change touches nothing.

import { SIDES, lastTurn } from "./battle_state.js";
import { replyColumn } from "./reply_view.js";

export const OUTCOMES = ["a", "b", "tie", "bothbad"];
const VERDICTS = { a: "A is better", b: "B is better", tie: "a tie", bothbad: "both are bad" };

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

export function battleView() {
  const columns = {};
  for (const s of SIDES) columns[s] = replyColumn(byTestId(`reply-${s}`), s);
  const heard = {};  // per side: "battle:turn:attempt:status" last seen, to announce each change once
  let composerErrorShown = null;

  function sideDraw(s, battle) {
    columns[s].draw(battle ? battle.turns : []);
    const turn = lastTurn(battle);
    const side = turn && turn.sides[s];
    const failed = !!(side && side.status === "failed");
    const errorBox = byTestId(`error-${s}`);
    setHidden(errorBox, !failed);
    setText(errorBox.querySelector(".side-error-text"), failed ? side.reason : "");
    // A failure that would only happen again (too long for the model) offers no retry.
    setHidden(byTestId(`retry-${s}`), failed && side.retryable === false);
    setText(byTestId(`model-${s}`), battle && battle.reveal ? `— ${battle.reveal[`model_${s}`]}` : "");
  }

  // Say politely when a reply ends (never the streaming text itself).
  function announce(battle) {
    const turn = lastTurn(battle);
    const said = [];
    for (const s of SIDES) {
      const side = turn && turn.sides[s];
      const key = side ? `${battle.battle}:${turn.index}:${turn.attempt}:${side.status}` : "";
      const before = heard[s];
      heard[s] = key;
      if (!side || key === before || !before || !before.startsWith(`${battle.battle}:${turn.index}:${turn.attempt}:`)) continue;
      if (side.status === "done") said.push(`Model ${s.toUpperCase()} has finished.`);
      if (side.status === "failed") said.push(`Model ${s.toUpperCase()} failed: ${side.reason}`);
    }
    if (said.length && battle.controls.may_vote) said.push("You can vote now.");
    if (said.length) byTestId("announcer").textContent = said.join(" ");
  }

  function voteResultDraw(battle, pendingVote) {
    const result = byTestId("vote-result");
    if (battle && battle.reveal) {
      const r = battle.reveal;
      setText(result, `You voted: ${VERDICTS[r.outcome]}. Model A was ${r.model_a}, model B was ${r.model_b}. ` +
        "Send a prompt to start a new round with two new models.");
    } else if (pendingVote) {
      setText(result, "Saving your vote…");
    }
    setHidden(result, !(battle && battle.reveal) && !pendingVote);
  }

  // Errors answering what the user just did appear by the prompt box, where they are looking.
  function composerErrorDraw(error) {
    const box = byTestId("composer-error");
    const text = error ? error.text : "";
    setText(box, text);
    setHidden(box, !text);
    if (text && error !== composerErrorShown) box.scrollIntoView({ block: "nearest" });
    composerErrorShown = error;
  }

  function noticesDraw(page) {
    const status = byTestId("status");
    setText(status, page.status);
    setHidden(status, !page.status);
    const notice = byTestId("no-models");
    if (notice.hidden !== page.modelsReady) {
      notice.hidden = page.modelsReady;
      if (!page.modelsReady) notice.scrollIntoView({ block: "nearest" });
    }
  }

  function controlsDraw(controls) {
    byTestId("send").disabled = !controls.send;
    const hint = byTestId("send-hint");
    setText(hint, controls.hint);
    setHidden(hint, !controls.hint);
    for (const o of OUTCOMES) {
      const button = byTestId(`vote-${o}`);
      button.disabled = !controls.vote;
      button.setAttribute("aria-pressed", controls.pressed === o ? "true" : "false");
    }
    byTestId("regenerate").disabled = !controls.regenerate;
    for (const s of SIDES) byTestId(`retry-${s}`).disabled = !controls.retry[s];
  }

  return {
    // `focusMove(controls)`, if given, runs after everything but the controls is drawn: focus
    // must move before the button that has it is disabled, or it falls to the page.
    draw(page, controls, focusMove) {
      for (const s of SIDES) sideDraw(s, page.battle);
      announce(page.battle);
      voteResultDraw(page.battle, page.pendingVote);
      composerErrorDraw(page.composerError);
      noticesDraw(page);
      if (focusMove) focusMove(controls);
      controlsDraw(controls);
    },

    // The box is emptied once the server has accepted its text, unless it was edited since.
    promptClear(text) {
      const box = byTestId("prompt");
      if (box.value.trim() === text) box.value = "";
    },

    // After Send: with a keyboard, to the prompt box for the next prompt; on a touch screen to
    // the replies, so that the on-screen keyboard doesn't come back over them.
    focusAfterSend(touchFirst) {
      const box = byTestId("prompt");
      if (document.activeElement === box) return;
      if (touchFirst) byTestId("replies").focus({ preventScroll: true });
      else box.focus();
    },

    focusVoteResult() {
      byTestId("vote-result").focus();
    },

    // After Regenerate (side null) or a retry: the reply being written again. Regenerate is down
    // by the prompt box, so the page stays where it is.
    focusRerun(side) {
      byTestId(`reply-${side || "a"}`).focus({ preventScroll: !side });
    },

    // A refused vote, once drawn: back to its button (or the prompt box if voting is off),
    // unless the reader has moved on meanwhile.
    focusVoteAgain(outcome) {
      const result = byTestId("vote-result");
      if (document.activeElement !== result && document.activeElement !== document.body) return;
      const button = byTestId(`vote-${outcome}`);
      (button.disabled ? byTestId("prompt") : button).focus();
    },

    focusPrompt() {
      byTestId("prompt").focus();
    },
  };
}
