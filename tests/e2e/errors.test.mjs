// Every error case of the API: the OpenAI SDK's exception class (chosen from
// the status), OpenAI's nested error object, and a server that stays up.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startServer } from './server_process.mjs';

let server;
let client;
before(async () => {
  server = await startServer(['--api-key', 'sekret', '--max-model-len', '256']);
  client = server.client({ apiKey: 'sekret' });
});
after(async () => {
  assert.equal((await server.stop()).code, 0);
});

const auth = { Authorization: 'Bearer sekret' };
const messages = [{ role: 'user', content: 'hi' }];

function assertErrorShape(json, status) {
  assert.equal(typeof json.error.message, 'string');
  assert.ok(json.error.message.length > 0);
  assert.equal(typeof json.error.type, 'string');
  assert.ok('param' in json.error && 'code' in json.error);
  if (status === 400) assert.equal(json.error.type, 'invalid_request_error');
}

describe('errors through the SDK', () => {
  it('401 without the API key', async () => {
    await assert.rejects(server.client({ apiKey: 'wrong' }).models.list(), OpenAI.AuthenticationError);
  });

  it('404 for an unknown model', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o', messages }),
      (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && /gpt-4o/.test(e.message),
    );
  });

  it('400 for empty messages', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'fake-v4', messages: [] }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages',
    );
  });

  it('400 for a wrong type and for a value out of range', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'fake-v4', messages, temperature: 'hot' }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature' && /number/.test(e.message),
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'fake-v4', messages, top_p: 1.5 }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'top_p',
    );
  });

  it('400 with the numbers when the prompt exceeds the context', async () => {
    const long = 'x'.repeat(300);
    await assert.rejects(client.chat.completions.create({ model: 'fake-v4', messages: [{ role: 'user', content: long }] }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.code, 'context_length_exceeded');
      assert.match(e.message, /256/);
      assert.equal(e.error.n_ctx, 256);
      assert.ok(e.error.n_prompt_tokens > 300);
      return true;
    });
    await assert.rejects(
      client.completions.create({ model: 'fake-v4', prompt: 'short', max_tokens: 1000 }),
      (e) => e instanceof OpenAI.BadRequestError && /1006 tokens \(6 in the prompt, 1000 for the completion\)/.test(e.message),
    );
  });

  it('400, not 429 (which SDKs retry), for more choices than the server ever holds', async () => {
    // Capacity here: 64 running + 256 queued = 320 sequences.
    const prompts = Array.from({ length: 400 }, (_, i) => `prompt ${i}`);
    await assert.rejects(client.completions.create({ model: 'fake-v4', prompt: prompts, max_tokens: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.status} ${e.message}`);
      assert.equal(e.code, 'request_too_large');
      assert.equal(e.param, 'prompt');
      assert.match(e.message, /at most 320 sequences .* requested 400 \(400 prompts x n=1\)/);
      return true;
    });
    await assert.rejects(client.completions.create({ model: 'fake-v4', prompt: ['a', 'b', 'c'], n: 128, max_tokens: 2 }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'n' && /requested 384 \(3 prompts x n=128\)/.test(e.message));
    // At the capacity it runs.
    const fits = await client.completions.create({ model: 'fake-v4', prompt: prompts.slice(0, 320), max_tokens: 1 });
    assert.equal(fits.choices.length, 320);
  });
});

describe('raw bad input', () => {
  it('400 for malformed JSON', async () => {
    const r = await server.post('/v1/chat/completions', '{"messages": [', auth);
    assert.equal(r.status, 400);
    assertErrorShape(r.json, 400);
    assert.match(r.json.error.message, /not valid JSON/);
  });

  it('400 for invalid UTF-8, naming the byte offset', async () => {
    const body = Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"a'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')]);
    const r = await server.post('/v1/chat/completions', body, auth);
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /UTF-8 \(byte offset 40\)/);
  });

  it('404 JSON for an unknown route', async () => {
    const r = await server.post('/v1/nothing', '{}', auth);
    assert.equal(r.status, 404);
    assertErrorShape(r.json, 404);
  });

  // Each body must be refused with 400 and a message naming the culprit.
  const battery = [
    ['[]', /JSON object/],
    ['"just a string"', /JSON object/],
    ['{}', /'messages' is required/],
    ['{"messages": "hi"}', /'messages' must be an array/],
    ['{"messages": [1]}', /messages\[0\]/],
    ['{"messages": [{"content": "x"}]}', /messages\[0\]\.role/],
    ['{"messages": [{"role": "wizard", "content": "x"}]}', /wizard/],
    ['{"messages": [{"role": "user"}]}', /content' is required/],
    ['{"messages": [{"role": "user", "content": 5}]}', /content/],
    ['{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', /only text parts/],
    ['{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', /max_tokens/],
    ['{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}', /max_tokens' must be an integer/],
    ['{"messages": [{"role": "user", "content": "x"}], "n": 0}', /'n'/],
    ['{"messages": [{"role": "user", "content": "x"}], "temperature": -1}', /temperature/],
    ['{"messages": [{"role": "user", "content": "x"}], "temperature": 3}', /temperature/],
    ['{"messages": [{"role": "user", "content": "x"}], "top_p": 0}', /top_p/],
    ['{"messages": [{"role": "user", "content": "x"}], "top_k": -2}', /top_k/],
    ['{"messages": [{"role": "user", "content": "x"}], "min_p": 2}', /min_p/],
    ['{"messages": [{"role": "user", "content": "x"}], "presence_penalty": 9}', /presence_penalty/],
    ['{"messages": [{"role": "user", "content": "x"}], "frequency_penalty": "a"}', /frequency_penalty/],
    ['{"messages": [{"role": "user", "content": "x"}], "seed": "abc"}', /seed/],
    ['{"messages": [{"role": "user", "content": "x"}], "stop": 5}', /stop/],
    ['{"messages": [{"role": "user", "content": "x"}], "stop": [""]}', /stop/],
    ['{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', /stream/],
    ['{"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": true}}', /stream_options/],
    ['{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}', /logprobs/],
    ['{"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 50}', /top_logprobs/],
    ['{"messages": [{"role": "user", "content": "x"}], "logit_bias": {"abc": 1}}', /logit_bias/],
    ['{"messages": [{"role": "user", "content": "x"}], "logit_bias": {"5": 500}}', /logit_bias/],
    ['{"messages": [{"role": "user", "content": "x"}], "logit_bias": {"999999": 1}}', /vocabulary/],
    ['{"messages": [{"role": "user", "content": "x"}], "stop_token_ids": [999999]}', /vocabulary/],
    ['{"messages": [{"role": "user", "content": "x"}], "tools": []}', /empty array/],
    ['{"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}', /needs 'tools'/],
    ['{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}', /function/],
    ['{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}', /response_format/],
    ['{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}', /json_schema/],
    ['{"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"}', /reasoning_effort/],
    ['{"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "maybe"}}', /thinking/],
    ['{"messages": [{"role": "user", "content": "x"}], "model": 5}', /model/],
    ['{"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]}', /arguments/],
  ];
  for (const [body, pattern] of battery) {
    it(`400 for ${body.slice(0, 90)}`, async () => {
      const r = await server.post('/v1/chat/completions', body, auth);
      assert.equal(r.status, 400, r.text);
      assertErrorShape(r.json, 400);
      assert.match(r.json.error.message, pattern);
    });
  }

  const completionBattery = [
    ['{}', /'prompt' is required/],
    ['{"prompt": 5}', /prompt/],
    ['{"prompt": []}', /must not be empty/],
    ['{"prompt": [1, -2]}', /token id/],
    ['{"prompt": [1, 999999]}', /vocabulary/],
    ['{"prompt": [[1], "a", 3]}', /prompt/],
    ['{"prompt": "a", "suffix": "b"}', /suffix/],
    ['{"prompt": "a", "logprobs": 99}', /logprobs/],
  ];
  for (const [body, pattern] of completionBattery) {
    it(`400 for completions ${body}`, async () => {
      const r = await server.post('/v1/completions', body, auth);
      assert.equal(r.status, 400, r.text);
      assertErrorShape(r.json, 400);
      assert.match(r.json.error.message, pattern);
    });
  }

  it('still serves after all of that', async () => {
    const r = await client.chat.completions.create({ model: 'fake-v4', messages, max_tokens: 3 });
    assert.equal(r.usage.completion_tokens, 3);
    assert.equal((await server.get('/health')).status, 200);
  });
});
