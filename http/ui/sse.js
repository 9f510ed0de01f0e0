// A Server-Sent Events client over fetch(): EventSource cannot send an
// Authorization header, so the console reads the stream itself.

/**
 * SSEParser turns the text of an event stream, fed in chunks of any size,
 * into messages {id, event, data}, as the HTML standard's parsing rules say:
 * lines end with CRLF, LF or CR; "field: value" (one leading space dropped);
 * data lines are joined with "\n"; a blank line dispatches; comments (":")
 * are heartbeats; the id persists across messages until a new one is given.
 */
export class SSEParser {
  constructor(onMessage, onComment = () => {}) {
    this.onMessage = onMessage;
    this.onComment = onComment;
    this.buf = '';
    this.afterCR = false;
    this.lastId = '';
    this.retry = undefined;
    this.reset();
  }

  reset() { this.event = ''; this.data = []; }

  /** feed parses a chunk of the stream. */
  feed(chunk) {
    // A CR ends a line at once; an LF right after it (perhaps in the next
    // chunk) is the rest of a CRLF, not a blank line.
    if (this.afterCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.afterCR = false;
    this.buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) return;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (m[0] === '\r' && this.buf === '') this.afterCR = true;
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) this.onMessage({ id: this.lastId, event: this.event || 'message', data: this.data.join('\n') });
      this.reset();
      return;
    }
    if (line.startsWith(':')) { this.onComment(line.slice(1)); return; }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/** NotSupported is thrown when the node has no such stream (404). */
export class NotSupported extends Error {}

/**
 * subscribe reads the stream at path through fetchFn (which adds the token)
 * until signal aborts, reconnecting after a drop with the last id it saw
 * (Last-Event-ID), and reports what happens:
 *   onEvent(message) for each message, data parsed as JSON;
 *   onState('connecting' | 'live' | 'reconnecting' | 'unsupported', detail).
 * It resolves when aborted, or when the node answers 404 (no stream there).
 */
export async function subscribe(path, { fetchFn, signal, onEvent, onState, from = '' }) {
  let lastId = from;
  let delay = 500;
  while (!signal.aborted) {
    onState('connecting');
    try {
      const headers = { Accept: 'text/event-stream' };
      if (lastId) headers['Last-Event-ID'] = lastId;
      const res = await fetchFn(path, { headers, signal });
      if (res.status === 404 || res.status === 405) { onState('unsupported', `${res.status}`); return; }
      if (!res.ok) throw new Error(`${res.status} ${await res.text().catch(() => '')}`.trim());
      onState('live');
      delay = 500;
      const parser = new SSEParser((m) => {
        if (m.event === 'dropped') { onState('reconnecting', `dropped by the node: ${m.data}`); return; }
        lastId = m.id || lastId;
        let data;
        try { data = JSON.parse(m.data); } catch { data = m.data; }
        onEvent({ id: m.id, event: m.event, data });
      }, () => onState('live', 'heartbeat'));
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
      if (parser.retry !== undefined) delay = parser.retry;
      onState('reconnecting', 'the stream ended');
    } catch (err) {
      if (signal.aborted) return;
      onState('reconnecting', String(err.message || err));
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 8000);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
