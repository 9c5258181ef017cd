// The API through the official OpenAI SDK against `fp4serve serve models/default`,
// the repository's real checkpoint. References come from outside the server:
// `fp4serve generate` and `fp4serve logits` (the engine without the server), the
// special-token ids read from the model's tokenizer.json, and the serial run of
// the same requests.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { binary, defaultModelDir, startModelServer, waitFor } from './server_process.mjs';

const CONTEXT = 512;
const MODEL = 'default';

let server;
let client;
before(async () => {
  // A small step budget makes prompts go in chunks mixed with other sequences' decodes.
  server = await startModelServer(defaultModelDir, [
    '--max-model-len', String(CONTEXT), '--max-num-seqs', '64', '--max-num-batched-tokens', '96']);
  client = server.client();
});
after(async () => {
  assert.equal((await server.stop()).code, 0, 'server exits cleanly on SIGTERM');
});

const user = (content) => [{ role: 'user', content }];

// Special-token ids from the model's own tokenizer.json.
const special = Object.fromEntries(
  JSON.parse(readFileSync(join(defaultModelDir, 'tokenizer.json'), 'utf8')).added_tokens.map((t) => [t.content, t.id]));
const BOS = special['<｜begin▁of▁sentence｜>'];
const USER = special['<｜User｜>'];
const ASSISTANT = special['<｜Assistant｜>'];
const THINK = special['<think>'];
const THINK_END = special['</think>'];

async function streamChat(request, onChunk = () => {}, options = {}) {
  const stream = await client.chat.completions.create({ ...request, stream: true }, options);
  let reasoning = '';
  let content = '';
  let finish = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    reasoning += c?.delta?.reasoning_content ?? '';
    content += c?.delta?.content ?? '';
    finish = c?.finish_reason ?? finish;
    onChunk(chunk);
  }
  return { reasoning, content, finish };
}

// `fp4serve logits` of the default model: the logits of the last prompt position,
// read from the safetensors file it writes (8-byte header length, JSON header, data).
function engineLastLogits(tokens) {
  const out = join(mkdtempSync(join(tmpdir(), 'fp4serve-e2e-')), 'logits.safetensors');
  execFileSync(binary, ['logits', defaultModelDir, '--tokens', tokens.join(','), '--out', out], { stdio: 'pipe' });
  const file = readFileSync(out);
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8'));
  const [rows, vocab] = header.logits.shape;
  const [begin] = header.logits.data_offsets;
  const start = 8 + headerLength + begin + (rows - 1) * vocab * 4;
  return Array.from({ length: vocab }, (_, v) => file.readFloatLE(start + v * 4));
}

function logSoftmax(logits) {
  const max = Math.max(...logits);
  const sum = logits.reduce((s, l) => s + Math.exp(l - max), 0);
  return logits.map((l) => l - max - Math.log(sum));
}

describe('the default model behind the API', () => {
  it('lists the model with its context', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
    assert.equal(models.data[0].max_model_len, CONTEXT);
  });

  it('greedy completions equal `fp4serve generate` (the engine without the server)', async () => {
    const cli = execFileSync(binary, ['generate', defaultModelDir, '--prompt', 'The history of', '--max-tokens', '48'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    // Both put BOS first: the model's tokenizer_config.json has add_bos_token true.
    const r = await client.completions.create({ model: MODEL, prompt: 'The history of', max_tokens: 48, temperature: 0 });
    assert.equal(r.choices[0].text + '\n', cli);
    assert.equal(r.usage.prompt_tokens, 4);
  });

  it('renders the chat template from the tokenizer\'s special tokens, thinking off and on', async () => {
    const messages = user('What kind of text is this? The jury praised the city.');
    const chat = await server.post('/tokenize', JSON.stringify({ messages, reasoning_effort: 'none' }));
    const thinking = await server.post('/tokenize', JSON.stringify({ messages, reasoning_effort: 'high' }));
    const text = await server.post('/tokenize', JSON.stringify({ prompt: messages[0].content, add_special_tokens: false }));
    assert.deepEqual(chat.json.tokens, [BOS, USER, ...text.json.tokens, ASSISTANT, THINK_END]);
    assert.deepEqual(thinking.json.tokens, [BOS, USER, ...text.json.tokens, ASSISTANT, THINK]);
    // No thinking flags: the model directory's default (generation_config.json), chat mode.
    const unflagged = await server.post('/tokenize', JSON.stringify({ messages }));
    assert.deepEqual(unflagged.json.tokens, chat.json.tokens);
  });

  it('answers chat in chat mode with content only, and with reasoning_content in thinking mode', async () => {
    const messages = user('What kind of text is this? The jury praised the city for the election.');
    const plain = await client.chat.completions.create({ model: MODEL, messages, reasoning_effort: 'none', temperature: 0, max_tokens: 60 });
    assert.ok(plain.choices[0].message.content.length > 0);
    assert.equal(plain.choices[0].message.reasoning_content, undefined);
    assert.equal(plain.usage.completion_tokens_details.reasoning_tokens, 0);
    const thinking = await client.chat.completions.create({ model: MODEL, messages, reasoning_effort: 'high', temperature: 0, max_tokens: 60 });
    const m = thinking.choices[0].message;
    assert.equal(typeof m.reasoning_content, 'string');
    assert.ok(m.reasoning_content.length > 0, 'no reasoning_content in thinking mode');
    assert.ok(thinking.usage.completion_tokens_details.reasoning_tokens > 0);
  });

  it('answers a plain OpenAI request (no thinking flags) in content, as generation_config.json says', async () => {
    const shipped = JSON.parse(readFileSync(join(defaultModelDir, 'generation_config.json'), 'utf8'));
    assert.equal(shipped.default_chat_template_kwargs.thinking, false);
    const messages = user('Tell me about the jury and the election.');
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 40 });
    const m = r.choices[0].message;
    assert.ok(m.content.length > 0, 'empty content');
    assert.ok(m.reasoning_content === undefined || m.reasoning_content === '', `reasoning: ${m.reasoning_content}`);
    assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
    const streamed = await streamChat({ model: MODEL, messages, max_tokens: 40 });
    assert.ok(streamed.content.length > 0);
    assert.equal(streamed.reasoning, '');
  });

  it('streams what the plain response says, with usage in the last chunk', async () => {
    const request = { model: MODEL, messages: user('Tell me about the city.'), temperature: 0, max_tokens: 40, reasoning_effort: 'none' };
    const plain = await client.chat.completions.create(request);
    const chunks = [];
    const streamed = await streamChat({ ...request, stream_options: { include_usage: true } }, (c) => chunks.push(c));
    assert.equal(streamed.content, plain.choices[0].message.content);
    assert.equal(streamed.finish, plain.choices[0].finish_reason);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, plain.usage);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  });

  it('completes text: max_tokens (default 16), usage as /tokenize counts', async () => {
    const prompt = 'The jury said that the city';
    const r = await client.completions.create({ model: MODEL, prompt, temperature: 0, ignore_eos: true });
    assert.equal(r.usage.completion_tokens, 16);
    assert.equal(r.choices[0].finish_reason, 'length');
    const tokenized = await server.post('/tokenize', JSON.stringify({ prompt }));
    assert.equal(r.usage.prompt_tokens, tokenized.json.count);
    const echoed = await client.completions.create({ model: MODEL, prompt, temperature: 0, ignore_eos: true, echo: true });
    assert.equal(echoed.choices[0].text, prompt + r.choices[0].text);
  });

  it('stops at a stop string, without emitting it, streamed or not', async () => {
    const request = { model: MODEL, prompt: 'The history of', max_tokens: 48, temperature: 0 };
    const free = (await client.completions.create(request)).choices[0].text;
    const stop = free.slice(20, 26);
    const expected = free.slice(0, free.indexOf(stop));
    const r = await client.completions.create({ ...request, stop });
    assert.equal(r.choices[0].text, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].stop_reason, stop);
    let streamed = '';
    for await (const chunk of await client.completions.create({ ...request, stop, stream: true })) streamed += chunk.choices[0]?.text ?? '';
    assert.equal(streamed, expected);
  });

  it('reproduces a seed, differs across seeds and across the n choices', async () => {
    const request = { model: MODEL, prompt: 'The city of', temperature: 1, max_tokens: 24, ignore_eos: true, n: 3 };
    const a = await client.completions.create({ ...request, seed: 7 });
    const b = await client.completions.create({ ...request, seed: 7 });
    const c = await client.completions.create({ ...request, seed: 8 });
    const texts = (r) => r.choices.map((ch) => ch.text);
    assert.deepEqual(a.choices.map((ch) => ch.index), [0, 1, 2]);
    assert.deepEqual(texts(a), texts(b));
    assert.notDeepEqual(texts(a), texts(c));
    assert.equal(new Set(texts(a)).size, 3, 'the n choices are not independent');
    assert.equal(a.usage.completion_tokens, 3 * 24);
  });

  it('takes the sampling fields a request leaves out from generation_config.json', async () => {
    const shipped = JSON.parse(readFileSync(join(defaultModelDir, 'generation_config.json'), 'utf8'));
    assert.ok(shipped.temperature !== 1 || shipped.top_p !== 1, 'the shipped config sets no sampling defaults');
    const request = { model: MODEL, prompt: 'The city of', max_tokens: 24, ignore_eos: true, seed: 11 };
    const implicit = await client.completions.create(request);
    const explicit = await client.completions.create({
      ...request, temperature: shipped.temperature ?? 1, top_p: shipped.top_p ?? 1 });
    const openai = await client.completions.create({ ...request, temperature: 1, top_p: 1 });
    assert.equal(implicit.choices[0].text, explicit.choices[0].text);
    assert.notEqual(implicit.choices[0].text, openai.choices[0].text);
  });

  it('reports the logprobs `fp4serve logits` gives', async () => {
    const prompt = [BOS, 470, 1767, 291];  // BOS "The history of"
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 1, temperature: 0, logprobs: 5 });
    const reference = logSoftmax(engineLastLogits(prompt));
    const best = [...reference.keys()].sort((x, y) => reference[y] - reference[x]).slice(0, 5);
    const served = Object.values(r.choices[0].logprobs.top_logprobs[0]).sort((x, y) => y - x);
    assert.equal(served.length, 5);
    best.forEach((id, i) => assert.ok(Math.abs(served[i] - reference[id]) < 1e-4, `top ${i}: ${served[i]} vs ${reference[id]}`));
    assert.ok(Math.abs(r.choices[0].logprobs.token_logprobs[0] - reference[best[0]]) < 1e-4);
    const detok = await server.post('/detokenize', JSON.stringify({ tokens: [best[0]] }));
    assert.equal(r.choices[0].text, detok.json.prompt);
  });

  it('refuses what does not fit the context, naming the numbers, and unknown models', async () => {
    const long = 'The jury said the city was fine. '.repeat(80);
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages: user(long) }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.code, 'context_length_exceeded');
      assert.equal(e.error.n_ctx, CONTEXT);
      assert.ok(e.error.n_prompt_tokens > CONTEXT);
      assert.match(e.message, new RegExp(`maximum context length is ${CONTEXT} tokens, but the prompt has ${e.error.n_prompt_tokens} tokens`));
      return true;
    });
    await assert.rejects(  // the prompt: BOS + 2 tokens
      client.completions.create({ model: MODEL, prompt: 'The city', max_tokens: 600 }),
      (e) => e instanceof OpenAI.BadRequestError && /603 tokens \(3 in the prompt, 600 for the completion\)/.test(e.message),
    );
    await assert.rejects(
      client.completions.create({ model: 'gpt-4o', prompt: 'x' }),
      (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
    );
    await assert.rejects(
      client.completions.create({ model: MODEL, prompt: [5, 8192] }),
      (e) => e instanceof OpenAI.BadRequestError && /8192/.test(e.message),
    );
  });
});

describe('serve on a bad checkpoint', () => {
  it('exits before listening, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fp4serve-bad-model-'));
    copyFileSync(join(defaultModelDir, 'config.json'), join(dir, 'config.json'));
    copyFileSync(join(defaultModelDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(defaultModelDir, 'model.safetensors')).subarray(0, 100000));
    for (const [modelDir, named] of [[dir, 'model.safetensors'], [join(dir, 'missing'), 'missing']]) {
      assert.throws(() => execFileSync(binary, ['serve', modelDir, '--port', '0'], { stdio: 'pipe', timeout: 20000 }), (e) => {
        assert.notEqual(e.status, 0);
        assert.ok(e.stderr.toString().includes(named), e.stderr.toString());
        assert.ok(!e.stdout.toString().includes('serving'), 'it listened');
        return true;
      });
    }
  });
});

describe('the default model under load', () => {
  it('64 concurrent streams give exactly the serial outputs', async () => {
    const words = ['city', 'jury', 'election', 'history', 'music', 'church', 'science', 'war'];
    const requests = Array.from({ length: 64 }, (_, i) => ({
      model: MODEL,
      messages: user(`Tell me about the ${words[i % 8]} ` + 'and the people '.repeat(i % 9) + `(${i}).`),
      max_tokens: 12 + ((i * 13) % 29),
      reasoning_effort: i % 2 ? 'none' : 'high',
      ...(i % 4 === 3 ? { temperature: 0.9, top_p: 0.9, seed: 1000 + i } : { temperature: 0 }),
    }));
    const serial = [];
    for (const r of requests) {
      const m = (await client.chat.completions.create(r)).choices[0];
      serial.push({ reasoning: m.message.reasoning_content ?? '', content: m.message.content, finish: m.finish_reason });
    }
    const steps = async () => [
      await server.metric('vllm:iteration_tokens_total_count'), await server.metric('vllm:iteration_tokens_total_sum')];
    const [stepsBefore, tokensBefore] = await steps();
    const concurrent = await Promise.all(requests.map((r) => streamChat(r)));
    const [stepsAfter, tokensAfter] = await steps();
    for (let i = 0; i < requests.length; i++) assert.deepEqual(concurrent[i], serial[i], `request ${i} differs under load`);
    const tokensPerStep = (tokensAfter - tokensBefore) / (stepsAfter - stepsBefore);
    assert.ok(tokensPerStep > 8, `batches never grew (${tokensPerStep} tokens per step)`);
  });

  it('aborted streams free their state at once: nothing running, state bytes back to zero', async () => {
    const baseline = await server.metric('fp4serve:sequence_state_bytes');
    assert.equal(baseline, 0);
    const controllers = Array.from({ length: 8 }, () => new AbortController());
    const chunks = new Array(8).fill(0);
    const streams = controllers.map((controller, i) => streamChat(
      { model: MODEL, messages: user(`A long story, number ${i}.`), max_tokens: 450, ignore_eos: true },
      () => chunks[i]++, { signal: controller.signal },
    ).catch((e) => {
      if (!(e instanceof OpenAI.APIUserAbortError) && e.name !== 'AbortError') throw e;
    }));
    await waitFor(() => chunks.every((n) => n >= 5), 'every stream to start', 5000);
    assert.equal(await server.metric('vllm:num_requests_running'), 8);
    const during = await server.metric('fp4serve:sequence_state_bytes');
    assert.ok(during > 0 && during % 8 === 0, `state bytes while 8 run: ${during}`);
    const abortsBefore = await server.metric('vllm:request_success_total', 'finished_reason="abort"');
    for (const c of controllers) c.abort();
    await Promise.all(streams);
    await waitFor(async () => (await server.metric('vllm:num_requests_running')) === 0, 'nothing running', 3000);
    assert.equal(await server.metric('vllm:num_requests_waiting'), 0);
    assert.equal(await server.metric('fp4serve:sequence_state_bytes'), baseline);
    assert.equal(await server.metric('vllm:request_success_total', 'finished_reason="abort"'), abortsBefore + 8);
    assert.ok(chunks.every((n) => n < 450), 'a stream ran to its end before the abort');
  });
});
