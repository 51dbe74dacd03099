// One column of replies. It keeps the elements it drew (one prompt and one reply per turn) and
// only touches what changed: a delta re-renders that one reply, and only the blocks of it that
// differ, so the reader can scroll up and select text while a reply streams. The column follows a
// streaming reply only while it is scrolled to (near) its bottom.

import { renderMarkdown } from "./markdown.js";

const NEAR_BOTTOM_PX = 32;
const NOT_STARTED = { status: "queued", text: "" };
// Said plainly rather than leaving a reply that stops mid-sentence unexplained.
const FILTERED_NOTE = "This model's content filter stopped the reply here.";

// Replace `target`'s children by those of `html`, keeping the leading ones that are unchanged
// (the paragraphs a streaming reply already had: a selection in them survives).
const inert = document.implementation.createHTMLDocument("");  // parses without loading anything
function morph(target, html) {
  const fresh = inert.createElement("div");
  fresh.innerHTML = html;  // sanitised by renderMarkdown, parsed as in any <div>
  const before = Array.from(target.childNodes);
  const after = Array.from(fresh.childNodes);
  let same = 0;
  while (same < before.length && same < after.length && before[same].isEqualNode(after[same])) same++;
  for (const node of before.slice(same)) node.remove();
  target.append(...after.slice(same));
}

function turnDraw(panel, turn) {
  const user = document.createElement("div");
  user.className = "msg user";
  user.dir = "auto";  // a prompt in Arabic or Hebrew reads right to left
  user.textContent = turn.prompt;  // the user's own text, shown verbatim
  const bot = document.createElement("div");
  const md = document.createElement("div");
  md.className = "md";
  md.dir = "auto";
  const note = document.createElement("span");
  note.className = "waiting";
  const cursor = document.createElement("span");
  cursor.className = "cursor";
  cursor.setAttribute("aria-hidden", "true");
  cursor.textContent = "▍";
  bot.append(md, note);
  panel.append(user, bot);
  return { index: turn.index, prompt: turn.prompt, attempt: null, status: null, text: null, user, bot, md, note, cursor };
}

// The streaming cursor sits right after the last character: inside the innermost last element
// of the reply (its last paragraph, the last item of a list, the code of a code block).
const VOID_TAGS = new Set(["BR", "HR", "IMG", "WBR", "INPUT"]);
function cursorPlace(md, cursor) {
  let holder = md;
  for (;;) {
    let last = holder.lastChild;
    while (last && last.nodeType === Node.TEXT_NODE && !last.data.trim()) last = last.previousSibling;
    if (!last || last.nodeType !== Node.ELEMENT_NODE || VOID_TAGS.has(last.tagName)) break;
    holder = last;
  }
  const tail = holder.lastChild;
  if (tail && tail.nodeType === Node.TEXT_NODE && tail.data.endsWith("\n") && holder.closest("pre")) {
    holder.insertBefore(cursor, tail.splitText(tail.data.length - 1));  // before a code block's closing newline
  } else {
    holder.append(cursor);
  }
}

// Taken out before the reply is compared with its next rendering, leaving its elements exactly
// as they were parsed (so unchanged ones still compare equal and are kept).
function cursorRemove(cursor) {
  const parent = cursor.parentNode;
  if (!parent) return;
  cursor.remove();
  parent.normalize();
}

function replyUpdate(d, turn, side) {
  const text = side.text || "";
  if (d.attempt !== turn.attempt) {
    d.attempt = turn.attempt;
    d.text = null;
    d.status = null;
  }
  if (d.text !== text) {
    cursorRemove(d.cursor);
    morph(d.md, text ? renderMarkdown(text) : "");
    d.text = text;
  }
  const typing = side.status === "streaming" && !!text;
  if (!typing) cursorRemove(d.cursor);
  else if (!d.cursor.parentNode) cursorPlace(d.md, d.cursor);
  const waiting = side.status === "queued" || (side.status === "streaming" && !text);
  // A reply that failed before saying anything has no bubble: the failure is said below.
  const empty = side.status === "failed" && !text;
  const filtered = side.status === "done" && side.finish_reason === "content_filter";
  const status = `${side.status}:${waiting}:${empty}:${filtered}`;
  if (d.status !== status) {
    d.status = status;
    d.bot.className = `msg bot ${side.status}`;
    d.bot.hidden = empty;
    d.note.textContent = waiting ? "waiting for the model…" : filtered ? FILTERED_NOTE : "";
  }
}

// A column `panel` showing side `s` of `turns`; draw(turns) brings it up to date.
export function replyColumn(panel, s) {
  const drawn = [];  // [{index, prompt, attempt, status, text, user, bot, md, note, cursor}]
  return {
    draw(turns) {
      const nearBottom = panel.scrollHeight - panel.scrollTop - panel.clientHeight <= NEAR_BOTTOM_PX;
      let keep = 0;
      while (keep < drawn.length && keep < turns.length && drawn[keep].index === turns[keep].index && drawn[keep].prompt === turns[keep].prompt) keep++;
      for (const d of drawn.splice(keep)) { d.user.remove(); d.bot.remove(); }
      const added = turns.length > keep;
      for (const turn of turns.slice(keep)) drawn.push(turnDraw(panel, turn));
      turns.forEach((turn, i) => replyUpdate(drawn[i], turn, turn.sides[s] || NOT_STARTED));
      if (added || nearBottom) panel.scrollTop = panel.scrollHeight;
    },
  };
}
