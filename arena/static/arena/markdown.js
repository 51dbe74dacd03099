// Model output is untrusted: markdown is parsed by marked, then every byte of HTML goes through
// DOMPurify before it touches the page. Images, forms and embedded content are dropped outright
// (an image URL would let a reply phone home); links open in a new tab without a referrer.
(function () {
  "use strict";
  const FORBID_TAGS = ["img", "style", "form", "input", "button", "textarea", "select", "iframe",
    "object", "embed", "svg", "math", "video", "audio", "source", "link", "meta", "base"];
  DOMPurify.addHook("afterSanitizeAttributes", function (node) {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });
  marked.use({ gfm: true, breaks: true });
  window.renderMarkdown = function (text) {
    const html = marked.parse(text || "");
    return DOMPurify.sanitize(html, { FORBID_TAGS: FORBID_TAGS, FORBID_ATTR: ["style"] });
  };
})();
