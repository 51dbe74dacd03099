// The arena websocket, reconnecting with a growing delay (0.5 s doubling up to 8 s) whenever it
// closes. Frames are JSON objects both ways.

const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 8000;

export function socketConnect({ path, onOpen, onFrame, onClose }) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let socket = null;
  let retryDelay = FIRST_RETRY_MS;

  function connect() {
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.addEventListener("open", () => {
      retryDelay = FIRST_RETRY_MS;
      onOpen();
    });
    socket.addEventListener("message", (e) => onFrame(JSON.parse(e.data)));
    socket.addEventListener("close", () => {
      onClose();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, LAST_RETRY_MS);
    });
  }

  connect();
  return {
    // False (and nothing sent) while the socket isn't open.
    send(frame) {
      if (socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    },
  };
}
