// client.js — the official `openai` npm client against `ipr serve`.
//   node client.js basic  URL KEY MODELS    plain and streamed completions, x-ipr-* headers, 4xx errors
//   node client.js faults URL KEY FALLBACK  upstream 500 / close mid-stream / stall -> fallback or a cut stream
//   node client.js load   URL KEY N         N concurrent streamed completions, all must finish
// URL is ipr's base (http://127.0.0.1:PORT/v1); MODELS the registry's model names
// (comma-separated). Prints one "ok"/"FAIL" line per check and ends with
// "N passed, N failed"; exits non-zero on any failure. Bounded: every request
// has a timeout, and the whole run a hard deadline.
'use strict';
const OpenAI = require('openai');

const [mode, baseURL, key, arg] = process.argv.slice(2);
let passed = 0, failed = 0;
function check(cond, name, detail) {
  if (cond) { passed++; console.log('ok   ' + name); } else { failed++; console.log('FAIL ' + name + (detail ? ': ' + detail : '')); }
}
const deadline = setTimeout(() => { console.log('FAIL deadline: client ran past 120 s'); console.log(passed + ' passed, ' + (failed + 1) + ' failed'); process.exit(1); }, 120000);
const client = new OpenAI({ baseURL, apiKey: key, maxRetries: 0, timeout: 30000 });
const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'write a python function to sort a list' }];

async function expectStatus(p, status, name) {
  try {
    await p;
    check(false, name, 'no error');
  } catch (e) {
    check(e.status === status, name, 'status ' + e.status + ' ' + e.message);
    return e;
  }
}

async function basic(models) {
  const { data, response } = await client.chat.completions.create({ model: 'ipr', messages }).withResponse();
  check(models.includes(data.model), 'plain: response model names a registry model', data.model);
  check(data.choices[0].message.content.startsWith('stub answer from'), 'plain: content from the upstream', data.choices[0].message.content);
  check(response.headers.get('x-ipr-model') === data.model, 'plain: x-ipr-model matches the body', response.headers.get('x-ipr-model'));
  check(response.headers.get('x-ipr-fallback') === 'none', 'plain: no fallback');
  check(/^ipr-/.test(response.headers.get('x-ipr-request-id') || ''), 'plain: x-ipr-request-id');
  check(!isNaN(parseFloat(response.headers.get('x-ipr-threshold'))), 'plain: x-ipr-threshold');
  check(!isNaN(parseFloat(response.headers.get('x-ipr-expected-cost'))), 'plain: x-ipr-expected-cost');

  const r2 = await client.chat.completions.create({ model: 'ipr:tau=0', messages }).withResponse();
  check(r2.response.headers.get('x-ipr-tau') === '0', 'plain: tau from the model string', r2.response.headers.get('x-ipr-tau'));

  const { data: stream, response: sr } = await client.chat.completions.create({ model: 'ipr:tau=1', messages, stream: true }).withResponse();
  let text = '', n = 0, allModels = true;
  for await (const ch of stream) {
    n++;
    if (!models.includes(ch.model)) allModels = false;
    text += (ch.choices[0] && ch.choices[0].delta && ch.choices[0].delta.content) || '';
  }
  check(n >= 3, 'stream: several chunks arrived', String(n));
  check(text.startsWith('stub answer from'), 'stream: content assembled', text);
  check(allModels, 'stream: every chunk names a registry model');
  check(sr.headers.get('content-type').startsWith('text/event-stream'), 'stream: content type', sr.headers.get('content-type'));
  check(models.includes(sr.headers.get('x-ipr-model')), 'stream: x-ipr-model header');

  // narrowing the candidates through the "ipr" extension object
  const only = models[models.length - 1];
  const r3 = await client.chat.completions.create({ model: 'ipr', messages, ipr: { models: [only] } });
  check(r3.model === only, 'plain: ipr.models narrows the choice', r3.model);

  await expectStatus(client.chat.completions.create({ model: 'nope', messages }), 404, 'error: unknown router -> 404');
  await expectStatus(client.chat.completions.create({ model: 'ipr:tau=3', messages }), 400, 'error: tau out of range -> 400');
  await expectStatus(client.chat.completions.create({ model: 'ipr', messages, ipr: { models: ['no-such-model'] } }), 400, 'error: unknown candidate -> 400');
  await expectStatus(client.chat.completions.create({ model: 'ipr', messages: [{ role: 'system', content: 'x' }] }), 400, 'error: no user turn -> 400');
  const bad = new OpenAI({ baseURL, apiKey: 'wrong-key-123', maxRetries: 0, timeout: 10000 });
  const e = await expectStatus(bad.chat.completions.create({ model: 'ipr', messages }), 401, 'error: wrong key -> 401');
  check(e && e.error && typeof e.error.message === 'string', 'error: JSON error body', e && JSON.stringify(e.error));
  const list = await client.models.list();
  check(list.data.some((m) => m.id === 'ipr'), 'models: lists the router');
}

async function faults(fallback) {
  // "big" -> upstream 500: retried on the fallback, and said so
  const r1 = await client.chat.completions.create({ model: 'ipr', messages, ipr: { models: ['big'] } }).withResponse();
  check(r1.data.model === fallback, 'fault 500: answered by the fallback', r1.data.model);
  check(r1.response.headers.get('x-ipr-fallback') === 'upstream', 'fault 500: x-ipr-fallback: upstream');
  check(/HTTP 500/.test(r1.response.headers.get('x-ipr-fallback-reason') || ''), 'fault 500: reason', r1.response.headers.get('x-ipr-fallback-reason'));
  check(r1.response.headers.get('x-ipr-routed-model') === 'big', 'fault 500: x-ipr-routed-model keeps the choice');
  // "big" streamed: the 500 comes before any byte, so the fallback streams
  const s1 = await client.chat.completions.create({ model: 'ipr', messages, stream: true, ipr: { models: ['big'] } });
  let t1 = '';
  for await (const ch of s1) t1 += (ch.choices[0] && ch.choices[0].delta.content) || '';
  check(t1.startsWith('stub answer from'), 'fault 500 stream: fallback streamed', t1);
  // "tiny" -> upstream stalls past the first-byte timeout: fallback
  const t0 = Date.now();
  const r2 = await client.chat.completions.create({ model: 'ipr', messages, ipr: { models: ['tiny'] } }).withResponse();
  check(r2.data.model === fallback, 'fault stall: answered by the fallback', r2.data.model);
  check(/timed out/.test(r2.response.headers.get('x-ipr-fallback-reason') || ''), 'fault stall: reason says timed out', r2.response.headers.get('x-ipr-fallback-reason'));
  check(Date.now() - t0 < 10000, 'fault stall: bounded by the timeout', String(Date.now() - t0));
  // "small" -> upstream closes: plain -> fallback; streamed -> the stream is cut, visibly
  const r3 = await client.chat.completions.create({ model: 'ipr', messages, ipr: { models: ['small'] } });
  check(r3.model === fallback, 'fault close (plain): answered by the fallback', r3.model);
  let cut = false, got = '';
  try {
    const s3 = await client.chat.completions.create({ model: 'ipr', messages, stream: true, ipr: { models: ['small'] } });
    for await (const ch of s3) got += (ch.choices[0] && ch.choices[0].delta.content) || '';
  } catch (e) { cut = true; }
  check(cut, 'fault close (stream): the client sees the stream cut short', 'got ' + JSON.stringify(got));
  // and the server still serves
  const r4 = await client.chat.completions.create({ model: 'ipr', messages, ipr: { models: [fallback] } });
  check(r4.model === fallback, 'after faults: still serving');
}

async function load(n) {
  // On a loaded 2-core machine a few of 1,000 simultaneous connects can time
  // out on the client side; the openai client's own retry covers that, and the
  // test script checks separately that the upstream saw them all open at once.
  const client = new OpenAI({ baseURL, apiKey: key, maxRetries: 2, timeout: 60000 });
  const t0 = Date.now();
  const one = async () => {
    const s = await client.chat.completions.create({ model: 'ipr', messages, stream: true });
    let k = 0;
    for await (const ch of s) { if (ch) k++; }
    return k;
  };
  const res = await Promise.allSettled(Array.from({ length: n }, one));
  const ok = res.filter((r) => r.status === 'fulfilled' && r.value >= 3).length;
  const firstErr = res.find((r) => r.status === 'rejected');
  check(ok === n, 'load: ' + n + ' concurrent streams completed (' + ok + ' ok in ' + (Date.now() - t0) + ' ms)',
        firstErr ? String(firstErr.reason) : '');
}

(async () => {
  try {
    if (mode === 'basic') await basic(arg.split(','));
    else if (mode === 'faults') await faults(arg);
    else if (mode === 'load') await load(Number(arg));
    else throw new Error('unknown mode ' + mode);
  } catch (e) {
    check(false, mode + ': unexpected error', e.stack || String(e));
  }
  clearTimeout(deadline);
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
})();
