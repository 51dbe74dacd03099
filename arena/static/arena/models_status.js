// While no models are available, ask now and then whether a battle could start
// (GET data-models-status-url: {"available": bool}), and say so once one could.

const CHECK_EVERY_MS = 15000;

export function modelsWatch(url, onAvailable) {
  let timer = null;

  async function check() {
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const status = await answer.json();
      if (status.available === true) onAvailable();
    } catch (_) {
      // Offline for a moment: try again at the next check.
    }
  }

  return {
    start() { if (!timer) timer = setInterval(check, CHECK_EVERY_MS); },
    stop() { clearInterval(timer); timer = null; },
  };
}
