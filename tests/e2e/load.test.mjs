// The runtime under load through the SDK: continuous batching must not change
// a token, aborted streams must free their state at once, the queue bound,
// timeouts and graceful drain must behave as documented.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { sleep, startServer, waitFor } from './server_process.mjs';


async function streamText(client, request, onChunk = () => {}) {
  const stream = await client.chat.completions.create({ ...request, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    text += (c?.delta?.reasoning_content ?? '') + (c?.delta?.content ?? '');
    finish = c?.finish_reason ?? finish;
    onChunk(text);
  }
  return { text, finish };
}

describe('continuous batching', () => {
  it('64 concurrent streams give exactly the serial outputs', async () => {
    // A small step budget forces chunked prefill mixed with decodes; a small
    // step delay lets the batch fill up.
    const server = await startServer(['--max-num-seqs', '64', '--max-num-batched-tokens', '48', '--fake-model-step-delay-us', '200']);
    try {
      const client = server.client();
      const requests = Array.from({ length: 64 }, (_, i) => ({
        model: 'fake-v4',
        messages: [{ role: 'user', content: `request ${i}: ` + 'word '.repeat(i % 17) + 'x'.repeat((i * 37) % 150) }],
        max_tokens: 20 + ((i * 13) % 41),
        ...(i % 4 === 3 ? { temperature: 0.9, top_p: 0.9, seed: 1000 + i } : { temperature: 0 }),
      }));
      const serial = [];
      for (const r of requests) {
        const response = await client.chat.completions.create(r);
        serial.push(response.choices[0].message.reasoning_content + response.choices[0].message.content);
      }
      const steps = async () => [
        await server.metric('vllm:iteration_tokens_total_count'), await server.metric('vllm:iteration_tokens_total_sum')];
      const [stepsBefore, tokensBefore] = await steps();
      const concurrent = await Promise.all(requests.map((r) => streamText(client, r)));
      const [stepsAfter, tokensAfter] = await steps();
      for (let i = 0; i < requests.length; i++) {
        assert.equal(concurrent[i].text, serial[i], `request ${i} differs under load`);
        assert.equal(Buffer.byteLength(concurrent[i].text), requests[i].max_tokens);
      }
      // Serially every decode step carries one token; batched, many.
      const tokensPerStep = (tokensAfter - tokensBefore) / (stepsAfter - stepsBefore);
      assert.ok(tokensPerStep > 8, `batches never grew (${tokensPerStep} tokens per step)`);
    } finally {
      await server.stop();
    }
  });
});

describe('limits, aborts, timeouts', () => {
  it('aborted streams free their state: nothing running, memory back to baseline', async () => {
    const server = await startServer(['--fake-model-step-delay-us', '2000', '--max-num-seqs', '16']);
    try {
      const client = server.client();
      // 16 streams that are aborted once each has produced 300 tokens.
      const abortedLoad = async () => {
        const controllers = Array.from({ length: 16 }, () => new AbortController());
        const progress = new Array(16).fill(0);
        const streams = controllers.map(async (controller, i) => {
          const stream = await client.chat.completions.create(
            { model: 'fake-v4', messages: [{ role: 'user', content: `long ${i}` }], max_tokens: 4000, stream: true },
            { signal: controller.signal },
          );
          try {
            for await (const chunk of stream) progress[i] += chunk.choices[0]?.delta?.reasoning_content?.length ?? 0;
          } catch (e) {
            if (!(e instanceof OpenAI.APIUserAbortError) && e.name !== 'AbortError') throw e;
          }
        });
        await waitFor(() => progress.every((p) => p >= 300), 'streams to produce 300 tokens each', 10000);
        assert.equal(await server.metric('vllm:num_requests_running'), 16);
        const during = server.rssBytes();
        for (const c of controllers) c.abort();
        await Promise.all(streams);
        await waitFor(async () => (await server.metric('vllm:num_requests_running')) === 0, 'nothing running', 2000);
        assert.equal(await server.metric('vllm:num_requests_waiting'), 0);
        assert.equal(await server.metric('fp4serve:sequence_state_bytes'), 0);
        return during;
      };
      // The baseline is taken after one full round of the same load, so that
      // what the allocator and the HTTP workers keep for reuse is in it; a
      // second round must come back to it. Sequence state that was not freed
      // (16 x 300 tokens x 4 KiB = 19 MiB per round) would not.
      await abortedLoad();
      await sleep(200);
      const baseline = server.rssBytes();
      const during = await abortedLoad();
      assert.ok(during > baseline + 16 * 300 * 4096 * 0.9, `state memory not visible: baseline ${baseline}, during ${during}`);
      await sleep(200);
      const afterAbort = server.rssBytes();
      // An AddressSanitizer build keeps the shadow bytes of unmapped memory, so
      // its RSS cannot come back; there LeakSanitizer checks at exit instead.
      if (!process.env.FP4SERVE_ASAN) {
        assert.ok(afterAbort < baseline + 4 * 1024 * 1024, `RSS ${afterAbort} not back to baseline ${baseline}`);
      }
      assert.ok((await server.metric('vllm:request_success_total', 'finished_reason="abort"')) >= 32);
    } finally {
      await server.stop();
    }
  });

  it('a client that hangs up on a plain (non-streaming) request cancels it too', async () => {
    const server = await startServer(['--fake-model-step-delay-us', '2000']);
    try {
      const controller = new AbortController();
      const pending = server.client().chat.completions.create(
        { model: 'fake-v4', messages: [{ role: 'user', content: 'plain' }], max_tokens: 4000 }, { signal: controller.signal });
      await waitFor(async () => (await server.metric('vllm:num_requests_running')) === 1, 'the request to run');
      controller.abort();
      await assert.rejects(pending);
      await waitFor(async () => (await server.metric('vllm:num_requests_running')) === 0, 'the request to be cancelled', 1500);
      assert.ok((await server.metric('vllm:generation_tokens_total')) < 3000, 'generation went on after the hang-up');
    } finally {
      await server.stop();
    }
  });

  it('a full queue answers 429 with Retry-After', async () => {
    const server = await startServer(['--fake-model-step-delay-us', '2000', '--max-num-seqs', '4', '--max-waiting-requests', '2']);
    try {
      const body = JSON.stringify({ messages: [{ role: 'user', content: 'fill' }], max_tokens: 4000, stream: true });
      const controllers = [];
      const responses = await Promise.all(Array.from({ length: 9 }, async () => {
        const controller = new AbortController();
        controllers.push(controller);
        const r = await fetch(server.baseURL + '/v1/chat/completions', {
          method: 'POST', body, headers: { 'Content-Type': 'application/json' }, signal: controller.signal,
        });
        return { status: r.status, retryAfter: r.headers.get('retry-after'), text: r.status === 200 ? '' : await r.text() };
      }));
      const rejected = responses.filter((r) => r.status === 429);
      assert.equal(responses.filter((r) => r.status === 200).length, 6);
      assert.equal(rejected.length, 3);
      for (const r of rejected) {
        assert.equal(r.retryAfter, '1');
        assert.equal(JSON.parse(r.text).error.type, 'rate_limit_error');
      }
      for (const c of controllers) c.abort();
      await waitFor(async () => (await server.metric('vllm:num_requests_running')) === 0, 'nothing running', 2000);
      // Room again once they are gone.
      const after = await server.client().chat.completions.create({ model: 'fake-v4', messages: [{ role: 'user', content: 'x' }], max_tokens: 3 });
      assert.equal(after.usage.completion_tokens, 3);
    } finally {
      await server.stop();
    }
  });

  it('a request past --request-timeout ends with 408 (plain) or an error event (stream)', async () => {
    const server = await startServer(['--fake-model-step-delay-us', '2000', '--request-timeout', '0.5']);
    try {
      const client = server.client();
      const request = { model: 'fake-v4', messages: [{ role: 'user', content: 'slow' }], max_tokens: 4000 };
      await assert.rejects(client.chat.completions.create(request), (e) => e.status === 408 && /timed out/.test(e.message));
      await assert.rejects(streamText(client, request), (e) => e instanceof OpenAI.APIError && /timed out/.test(e.message));
      await waitFor(async () => (await server.metric('vllm:num_requests_running')) === 0, 'nothing running', 2000);
    } finally {
      await server.stop();
    }
  });

  it('SIGTERM drains: the running stream completes, new requests are refused, exit 0', async () => {
    const server = await startServer(['--fake-model-step-delay-us', '2000']);
    const client = server.client();
    let signalled = false;
    const running = streamText(client, { model: 'fake-v4', messages: [{ role: 'user', content: 'drain' }], max_tokens: 400 }, () => {
      if (!signalled) {
        signalled = true;
        server.child.kill('SIGTERM');
      }
    });
    await waitFor(() => signalled, 'the first chunk');
    await sleep(50);
    const refused = await server.post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'late' }] }))
      .catch(() => ({ status: 'connection refused' }));
    assert.ok(refused.status === 503 || refused.status === 'connection refused', `late request got ${refused.status}`);
    const { text, finish } = await running;
    assert.equal(Buffer.byteLength(text), 400);
    assert.equal(finish, 'length');
    assert.deepEqual(await server.exit, { code: 0, signal: null });
  });
});
