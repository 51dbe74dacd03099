// Model output is untrusted: markdown is parsed by marked, with any raw HTML in it shown as text
// (so an unclosed tag can't swallow the rest of a reply), then every byte of the result goes
// through DOMPurify before it touches the page. Images, forms and embedded content are dropped
// outright (an image URL would let a reply phone home); links open in a new tab without a referrer.
// marked and DOMPurify are the vendored classic scripts loaded before this module.
const { marked, DOMPurify } = window;

const FORBID_TAGS = ["img", "style", "form", "input", "button", "textarea", "select", "iframe",
  "object", "embed", "svg", "math", "video", "audio", "source", "link", "meta", "base"];

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const escapeHtml = (text) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

marked.use({
  gfm: true,
  breaks: true,
  renderer: {
    html(token) { return escapeHtml(token.text); },
  },
});

const sanitize = (html) => DOMPurify.sanitize(html, { FORBID_TAGS, FORBID_ATTR: ["style"] });

export function renderMarkdown(text) {
  return sanitize(marked.parse(text || ""));
}

// How many of a growing reply's last blocks are parsed again with each new piece of text: the
// next characters can still change the last two (a paragraph becoming a heading or a table, a
// list going on after a blank line, text after ``` opening a code fence or not), never one
// before them.
const LIVE_BLOCKS = 2;

// A reply that grows. `next(text)`, with `text` extending the last one, gives the sanitised HTML
// of the blocks that this text finished (`finished`: they will not change again, draw them once)
// and of the blocks still live (`live`: replaces the last call's). Only the text after the
// finished blocks is parsed, so a piece of text costs the same however long the reply is.
// Together they are what renderMarkdown gives for the same text (checked in the browser tests);
// when a finished part's source can't be told apart exactly (e.g. a reference definition, which
// marked keeps out of the blocks), nothing is finished yet and all of it stays live.
export function markdownStream() {
  let done = 0;  // characters of the text in finished blocks
  return {
    next(text) {
      const rest = text.slice(done);
      const tokens = marked.lexer(rest);
      const solid = [];
      tokens.forEach((token, i) => { if (token.type !== "space") solid.push(i); });
      let split = solid.length > LIVE_BLOCKS ? solid[solid.length - LIVE_BLOCKS] : 0;
      const source = tokens.slice(0, split).map((token) => token.raw).join("");
      if (!rest.startsWith(source)) split = 0;
      const part = (from, to) => {
        const some = tokens.slice(from, to);
        some.links = tokens.links;
        return some.length ? sanitize(marked.parser(some)) : "";
      };
      if (split) done += source.length;
      return { finished: part(0, split), live: part(split, tokens.length) };
    },
  };
}
