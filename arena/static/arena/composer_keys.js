// The prompt box's keys. On a touch-first device (phone keyboards have no Shift) Enter is a new
// line and Send sends; with a keyboard and a mouse, Enter sends and Shift+Enter is a new line.

export function promptKeysWire(form, box, touchFirst) {
  box.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;  // 229: an IME is composing
    if (touchFirst.matches) return;  // a new line, as typed
    e.preventDefault();
    form.requestSubmit();
  });
  const placeholderSet = () => {
    box.placeholder = touchFirst.matches
      ? "Type a prompt, then tap Send"
      : "Type a prompt and press Enter (Shift+Enter for a new line)";
  };
  touchFirst.addEventListener("change", placeholderSet);
  placeholderSet();
}
