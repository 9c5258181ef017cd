// The API surface through the official OpenAI SDK against a live server with
// the fake model (byte-level tokenizer: one token per byte, so expected token
// counts follow from Buffer.byteLength).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { scripted, startServer } from './server_process.mjs';

let server;
let client;
before(async () => {
  server = await startServer();
  client = server.client();
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, 'server exits cleanly on SIGTERM');
});

const user = (content) => [{ role: 'user', content }];

describe('models and health', () => {
  it('lists the served model', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['fake-v4']);
    assert.equal(models.data[0].object, 'model');
    assert.equal(models.data[0].max_model_len, 4096);
  });
  it('answers /health', async () => {
    assert.equal((await server.get('/health')).status, 200);
  });
});

describe('chat completions', () => {
  it('splits reasoning from content in thinking mode (the default)', async () => {
    const r = await client.chat.completions.create({
      model: 'fake-v4',
      messages: user(scripted('Two and two.</think>2 + 2 = 4')),
    });
    const m = r.choices[0].message;
    assert.equal(m.reasoning_content, 'Two and two.');
    assert.equal(m.content, '2 + 2 = 4');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
  });

  for (const [label, extra] of [
    ['reasoning_effort none', { reasoning_effort: 'none' }],
    ['chat_template_kwargs.thinking false', { chat_template_kwargs: { thinking: false } }],
    ['thinking disabled', { thinking: { type: 'disabled' } }],
  ]) {
    it(`gives plain content in chat mode (${label})`, async () => {
      const r = await client.chat.completions.create({ model: 'fake-v4', messages: user(scripted('plain')), ...extra });
      assert.equal(r.choices[0].message.content, 'plain');
      assert.equal(r.choices[0].message.reasoning_content, undefined);
    });
  }

  it('counts tokens: prompt as /tokenize says, completion = reply bytes + EOS', async () => {
    const messages = user(scripted('abc'));
    const r = await client.chat.completions.create({ model: 'fake-v4', messages, reasoning_effort: 'none' });
    const tokenized = await server.post('/tokenize', JSON.stringify({ messages, reasoning_effort: 'none' }));
    assert.equal(r.usage.prompt_tokens, tokenized.json.count);
    assert.equal(r.usage.completion_tokens, 4);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 4);
  });

  it('streams the same text as the plain response, with usage last', async () => {
    const request = { model: 'fake-v4', messages: user('tell me something'), temperature: 0, max_tokens: 40 };
    const plain = await client.chat.completions.create(request);
    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let reasoning = '';
    let content = '';
    const chunks = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      const delta = chunk.choices[0]?.delta ?? {};
      reasoning += delta.reasoning_content ?? '';
      content += delta.content ?? '';
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(reasoning, plain.choices[0].message.reasoning_content);
    assert.equal(content, plain.choices[0].message.content);
    assert.equal(Buffer.byteLength(reasoning + content), 40);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(
      [last.usage.prompt_tokens, last.usage.completion_tokens],
      [plain.usage.prompt_tokens, plain.usage.completion_tokens],
    );
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(finish.length, 1);
    assert.equal(finish[0].choices[0].finish_reason, 'length');
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  });

  it('honours max_completion_tokens over max_tokens', async () => {
    const r = await client.chat.completions.create({
      model: 'fake-v4', messages: user('x'), max_tokens: 30, max_completion_tokens: 5,
    });
    assert.equal(r.usage.completion_tokens, 5);
    assert.equal(r.choices[0].finish_reason, 'length');
  });

  it('reports logprobs whose best alternative is the greedy token', async () => {
    const r = await client.chat.completions.create({
      model: 'fake-v4', messages: user('logprobs please'), temperature: 0, max_tokens: 10, logprobs: true, top_logprobs: 3,
    });
    const entries = r.choices[0].logprobs.content;
    assert.equal(entries.length, 10);
    for (const e of entries) {
      assert.equal(e.top_logprobs.length, 3);
      assert.equal(e.top_logprobs[0].token, e.token);
      assert.ok(e.logprob <= 0);
      assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob);
      assert.ok(e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob);
      assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
    }
    assert.equal(entries.map((e) => e.token).join(''), r.choices[0].message.reasoning_content);
  });

  it('is reproducible with a seed and differs across seeds and choices', async () => {
    const request = { model: 'fake-v4', messages: user('seeded'), temperature: 1, max_tokens: 30, n: 2 };
    const a = await client.chat.completions.create({ ...request, seed: 7 });
    const b = await client.chat.completions.create({ ...request, seed: 7 });
    const c = await client.chat.completions.create({ ...request, seed: 8 });
    const texts = (r) => r.choices.map((ch) => ch.message.reasoning_content);
    assert.deepEqual(texts(a), texts(b));
    assert.notDeepEqual(texts(a), texts(c));
    assert.notEqual(texts(a)[0], texts(a)[1]);
    assert.deepEqual(a.choices.map((ch) => ch.index), [0, 1]);
  });

  it('validates json_object output: valid JSON passes, anything else is a 422', async () => {
    const ok = await client.chat.completions.create({
      model: 'fake-v4', messages: user(scripted('{"answer": 4}')), response_format: { type: 'json_object' }, reasoning_effort: 'none',
    });
    assert.deepEqual(JSON.parse(ok.choices[0].message.content), { answer: 4 });
    await assert.rejects(
      client.chat.completions.create({
        model: 'fake-v4', messages: user(scripted('not json')), response_format: { type: 'json_object' }, reasoning_effort: 'none',
      }),
      (e) => e.status === 422 && /not valid JSON/.test(e.message),
    );
  });
});

describe('completions', () => {
  it('generates max_tokens tokens (default 16) and echoes the prompt', async () => {
    const r = await client.completions.create({ model: 'fake-v4', prompt: 'hello', temperature: 0 });
    assert.equal(Buffer.byteLength(r.choices[0].text), 16);
    assert.equal(r.usage.prompt_tokens, 1 + 5);  // BOS + five bytes
    const echoed = await client.completions.create({ model: 'fake-v4', prompt: 'hello', temperature: 0, echo: true });
    assert.equal(echoed.choices[0].text, 'hello' + r.choices[0].text);
  });

  it('takes several prompts and token-id prompts', async () => {
    const r = await client.completions.create({ model: 'fake-v4', prompt: ['ab', 'cd'], max_tokens: 4, temperature: 0 });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
    const byIds = await client.completions.create({
      model: 'fake-v4', prompt: [0, 6 + 97, 6 + 98], max_tokens: 4, temperature: 0,  // <bos> a b
    });
    assert.equal(byIds.choices[0].text, r.choices[0].text);
  });

  it('stops at a stop string spanning tokens, without emitting it', async () => {
    const free = await client.completions.create({ model: 'fake-v4', prompt: 'stop test', max_tokens: 60, temperature: 0 });
    const text = free.choices[0].text;
    const stop = text.slice(20, 23);
    const expected = text.slice(0, text.indexOf(stop));
    const r = await client.completions.create({ model: 'fake-v4', prompt: 'stop test', max_tokens: 60, temperature: 0, stop });
    assert.equal(r.choices[0].text, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].stop_reason, stop);
    const kept = await client.completions.create({
      model: 'fake-v4', prompt: 'stop test', max_tokens: 60, temperature: 0, stop: [stop], include_stop_str_in_output: true,
    });
    assert.equal(kept.choices[0].text, expected + stop);
    const stream = await client.completions.create({
      model: 'fake-v4', prompt: 'stop test', max_tokens: 60, temperature: 0, stop, stream: true,
    });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? '';
    assert.equal(streamed, expected);
  });

  it('stops at a stop token id', async () => {
    const free = await client.completions.create({ model: 'fake-v4', prompt: 'ids', max_tokens: 60, temperature: 0 });
    const text = free.choices[0].text;
    const letter = text.trim()[0];
    const r = await client.completions.create({
      model: 'fake-v4', prompt: 'ids', max_tokens: 60, temperature: 0, stop_token_ids: [6 + letter.charCodeAt(0)],
    });
    assert.equal(r.choices[0].text, text.slice(0, text.indexOf(letter)));
    assert.equal(r.choices[0].stop_reason, 6 + letter.charCodeAt(0));
  });

  it('returns legacy logprobs', async () => {
    const r = await client.completions.create({ model: 'fake-v4', prompt: 'lp', max_tokens: 5, temperature: 0, logprobs: 2 });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.join(''), r.choices[0].text);
    assert.equal(lp.token_logprobs.length, 5);
    for (const top of lp.top_logprobs) assert.equal(Object.keys(top).length, 2);
  });
});

describe('tokenize, detokenize, metrics', () => {
  it('round-trips text through the tokenizer', async () => {
    const text = 'héllo ✓';
    const t = await server.post('/tokenize', JSON.stringify({ prompt: text }));
    assert.equal(t.json.count, 1 + Buffer.byteLength(text));
    const d = await server.post('/detokenize', JSON.stringify({ tokens: t.json.tokens.slice(1) }));
    assert.equal(d.json.prompt, text);
  });

  it('exposes vLLM metric names', async () => {
    const { text } = await server.get('/metrics');
    for (const name of [
      'vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:prompt_tokens_total', 'vllm:generation_tokens_total',
      'vllm:request_success_total', 'vllm:time_to_first_token_seconds_bucket', 'vllm:inter_token_latency_seconds_bucket',
      'vllm:e2e_request_latency_seconds_count',
    ]) {
      assert.ok(text.includes(name + '{'), `${name} missing`);
    }
    assert.ok((await server.metric('vllm:generation_tokens_total')) > 0);
  });
});
