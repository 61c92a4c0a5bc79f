// stub.js — a small OpenAI-compatible upstream for the gateway tests, on
// loopback only. The first path segment picks its behaviour, so one stub
// serves every upstream of a test config:
//   POST /<mode>/v1/chat/completions   mode is one of
//     ok        answers (plain JSON, or server-sent events when "stream": true)
//     slow      streams one event every SLOW_MS (default 100 ms), 8 events
//     500       HTTP 500 with a JSON error
//     429       HTTP 429
//     close     streams two events, then destroys the socket (no [DONE])
//     stall     accepts the request and never answers
//     stallmid  streams one event, then goes silent
//     big       streams BIG_EVENTS (default 20000) events of ~500 bytes as fast as
//               the socket takes them (backpressure through the gateway)
//   GET /stats  -> {"<mode>": count, ..., "open": n, "peak": n} requests seen per
//               mode, and the open and peak number of requests in progress
// Usage: node stub.js [PORT]   (0 or none = any free port). Prints
// "stub listening PORT" on stdout once it accepts connections.
'use strict';
const http = require('http');

const SLOW_MS = Number(process.env.SLOW_MS || 100);
const stats = { open: 0, peak: 0 };
const held = new Set(); // stalled responses, so they are not collected

function chunk(model, delta, finish) {
  return 'data: ' + JSON.stringify({
    id: 'chatcmpl-stub', object: 'chat.completion.chunk', created: 1700000000, model,
    choices: [{ index: 0, delta, finish_reason: finish || null }],
  }) + '\n\n';
}

function answerText(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  const last = msgs.length ? msgs[msgs.length - 1].content : '';
  return 'stub answer from ' + body.model + ' to: ' + String(last).slice(0, 40);
}

function stream(res, body, mode) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  const words = answerText(body).split(' ');
  const events = [chunk(body.model, { role: 'assistant', content: '' })];
  for (const w of words) events.push(chunk(body.model, { content: w + ' ' }));
  events.push(chunk(body.model, {}, 'stop'));
  events.push('data: [DONE]\n\n');
  if (mode === 'close') {
    res.write(events[0]);
    res.write(events[1]);
    setTimeout(() => res.socket.destroy(), 20);
    return;
  }
  if (mode === 'stallmid') {
    res.write(events[0]);
    held.add(res);
    res.on('close', () => held.delete(res));
    return;
  }
  if (mode === 'big') {
    const n = Number(process.env.BIG_EVENTS || 20000);
    const pad = 'x'.repeat(400);
    let i = 0;
    const pump = () => {
      while (i < n) {
        const ok = res.write(chunk(body.model, { content: 'w' + i + ' ' + pad }));
        i++;
        if (!ok) { res.once('drain', pump); return; }
      }
      res.end('data: [DONE]\n\n');
    };
    res.write(events[0]);
    pump();
    return;
  }
  if (mode === 'slow') {
    let i = 0;
    const slowEvents = events.slice(0, 7).concat(events.slice(-2));
    const t = setInterval(() => {
      if (res.destroyed) { clearInterval(t); return; }
      res.write(slowEvents[i++]);
      if (i === slowEvents.length) { clearInterval(t); res.end(); }
    }, SLOW_MS);
    return;
  }
  for (const e of events) res.write(e);
  res.end();
}

const server = http.createServer((req, res) => {
  const parts = req.url.split('/').filter(Boolean);
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  const mode = parts.length === 4 ? parts[0] : 'ok';
  stats[mode] = (stats[mode] || 0) + 1;
  stats.open++;
  stats.peak = Math.max(stats.peak, stats.open);
  res.on('close', () => { stats.open--; });
  let raw = '';
  req.setEncoding('utf8');
  req.on('data', (d) => { raw += d; });
  req.on('end', () => {
    let body;
    try { body = JSON.parse(raw); } catch (e) {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'stub: bad JSON' } }));
      return;
    }
    if (mode === '500' || mode === '429') {
      res.writeHead(Number(mode), { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'stub: failing on purpose', type: 'server_error' } }));
      return;
    }
    if (mode === 'stall') {
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    if (body.stream) { stream(res, body, mode); return; }
    if (mode === 'close') { res.socket.destroy(); return; }
    if (mode === 'stallmid') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"id": "chatcmpl-stub", ');
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({
      id: 'chatcmpl-stub', object: 'chat.completion', created: 1700000000, model: body.model,
      choices: [{ index: 0, message: { role: 'assistant', content: answerText(body) }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
    }));
  });
});
server.keepAliveTimeout = 30000;
server.maxConnections = 4000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write('stub listening ' + server.address().port + '\n');
});
process.on('SIGTERM', () => process.exit(0));
