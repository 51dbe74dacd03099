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

export function renderMarkdown(text) {
  const html = marked.parse(text || "");
  return DOMPurify.sanitize(html, { FORBID_TAGS, FORBID_ATTR: ["style"] });
}
